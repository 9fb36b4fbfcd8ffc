"""Interop: authlib authenticates with private_key_jwt (RFC 7523 §2.2), configured from
discovery alone, exactly as authlib signs client assertions by default (`typ: JWT`, `aud` =
the endpoint URL, `exp` = `iat` + 3600): a client_credentials token, then introspection of it,
each with a fresh ES256-signed client assertion.

    python authlib_private_key_jwt.py ISSUER CLIENT_ID PRIVATE_KEY_PEM_FILE KID [refused]

Prints one JSON object (discovery's methods, the lifetime of the assertions authlib sent, the
token response and the introspection; or, with `refused`, the error the token endpoint
answered); exits non-zero with a message if any step fails, or if `refused` was expected and
the token request succeeded.
"""

import base64
import json
import sys
import urllib.parse

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT


def claims_of(assertion: str) -> dict:
    part = assertion.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def main() -> int:
    issuer, client_id, pem_file, kid = sys.argv[1:5]
    expect_refused = sys.argv[5:6] == ["refused"]
    meta = requests.get(issuer.rstrip("/") + "/.well-known/oauth-authorization-server", timeout=10).json()
    if "private_key_jwt" not in meta["token_endpoint_auth_methods_supported"]:
        print("discovery does not list private_key_jwt", file=sys.stderr)
        return 1
    if "ES256" not in meta["token_endpoint_auth_signing_alg_values_supported"]:
        print("discovery does not list ES256 for client assertions", file=sys.stderr)
        return 1
    with open(pem_file, encoding="ascii") as f:
        private_key = f.read()
    lifetimes = []

    def seen(response, *args, **kwargs):
        body = response.request.body or ""
        if isinstance(body, bytes):
            body = body.decode()
        form = urllib.parse.parse_qs(body)
        for a in form.get("client_assertion", []):
            c = claims_of(a)
            lifetimes.append(c["exp"] - c["iat"])

    def session() -> OAuth2Session:
        # A new auth object per request, authlib's defaults otherwise (no claims of ours).
        s = OAuth2Session(
            client_id,
            private_key,
            token_endpoint_auth_method=PrivateKeyJWT(alg="ES256", headers={"kid": kid}),
            scope="api:read",
        )
        s.hooks["response"].append(seen)
        return s

    try:
        token = session().fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    except OAuthError as e:
        if expect_refused:
            print(json.dumps({"refused": e.error, "assertion_lifetimes": lifetimes}))
            return 0
        raise
    if expect_refused:
        print("the token endpoint accepted an assertion it should have refused", file=sys.stderr)
        return 1
    introspected = session().introspect_token(
        meta["introspection_endpoint"], token=token["access_token"]
    ).json()
    print(
        json.dumps(
            {
                "methods": meta["token_endpoint_auth_methods_supported"],
                "assertion_lifetimes": lifetimes,
                "token": dict(token),
                "introspection": introspected,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
