"""Interop: authlib authenticates with private_key_jwt (RFC 7523 §2.2), configured from
discovery alone: a client_credentials token, then introspection of it, each with a fresh
ES256-signed client assertion (authlib's defaults: `typ: JWT`, `aud` = the endpoint URL; its
default lifetime of an hour is beyond the 5 minutes we accept, so `exp` is set to 2 minutes).

    python authlib_private_key_jwt.py ISSUER CLIENT_ID PRIVATE_KEY_PEM_FILE KID

Prints one JSON object (discovery's methods, the token response, the introspection); exits
non-zero with a message if any step fails.
"""

import json
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT


def main() -> int:
    issuer, client_id, pem_file, kid = sys.argv[1:5]
    meta = requests.get(issuer.rstrip("/") + "/.well-known/oauth-authorization-server", timeout=10).json()
    if "private_key_jwt" not in meta["token_endpoint_auth_methods_supported"]:
        print("discovery does not list private_key_jwt", file=sys.stderr)
        return 1
    if "ES256" not in meta["token_endpoint_auth_signing_alg_values_supported"]:
        print("discovery does not list ES256 for client assertions", file=sys.stderr)
        return 1
    with open(pem_file, encoding="ascii") as f:
        private_key = f.read()

    def session() -> OAuth2Session:
        # A new auth object per request: authlib keeps the claims dict it was given and would
        # send the same jti again, which the server rightly refuses as a replay.
        return OAuth2Session(
            client_id,
            private_key,
            token_endpoint_auth_method=PrivateKeyJWT(
                alg="ES256", headers={"kid": kid}, claims={"exp": int(time.time()) + 120}
            ),
            scope="api:read",
        )

    token = session().fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    introspected = session().introspect_token(
        meta["introspection_endpoint"], token=token["access_token"]
    ).json()
    print(
        json.dumps(
            {
                "methods": meta["token_endpoint_auth_methods_supported"],
                "token": dict(token),
                "introspection": introspected,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
