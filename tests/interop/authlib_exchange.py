"""Interop: authlib, a third-party OAuth client library, drives RFC 8693 token exchange and
RFC 7662 introspection against a running Bulwark, configured from discovery alone.

    python authlib_exchange.py ISSUER AGENT_ID AGENT_SECRET SUBJECT_TOKEN SCOPE

Prints one JSON object: the discovery's grant types, authlib's token response, and authlib's
introspection of the new token. Exits non-zero (with a message) if any step fails.
"""

import json
import sys

import requests
from authlib.integrations.requests_client import OAuth2Session

TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


def main() -> int:
    issuer, agent_id, agent_secret, subject_token, scope = sys.argv[1:6]
    meta = requests.get(issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10).json()
    if meta["issuer"] != issuer:
        print(f"issuer mismatch: {meta['issuer']} != {issuer}", file=sys.stderr)
        return 1
    if TE not in meta["grant_types_supported"]:
        print("discovery does not list token exchange", file=sys.stderr)
        return 1
    session = OAuth2Session(
        client_id=agent_id,
        client_secret=agent_secret,
        token_endpoint_auth_method="client_secret_basic",
        scope=scope,
    )
    token = session.fetch_token(
        meta["token_endpoint"],
        grant_type=TE,
        subject_token=subject_token,
        subject_token_type=AT,
        requested_token_type=AT,
    )
    introspected = session.introspect_token(
        meta["introspection_endpoint"], token=token["access_token"]
    ).json()
    print(
        json.dumps(
            {
                "grant_types_supported": meta["grant_types_supported"],
                "token": dict(token),
                "introspection": introspected,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
