"""End-to-end proof that the official MCP Python SDK works against Bulwark.

Run by tests/e2e/mcp.rs (in .venv-mcp, from infra/venv.sh) against a running `bulwark serve`:

1. Starts an MCP server (`MCPServer`, streamable HTTP, 127.0.0.1:$MCP_PORT/mcp) that is an
   RFC 9728 protected resource of the tenant's issuer. Its TokenVerifier asks the tenant's
   introspection endpoint (as a resource-server client) and accepts only active tokens whose
   `aud` is this server's URL and whose `tid` is the tenant. One tool, `whoami`, answers the
   token's `sub`.
2. Runs the SDK's client with `OAuthClientProvider`: it discovers the protected resource and
   the authorization server, registers itself by open DCR (public client, loopback redirect),
   and its redirect/callback handlers drive Bulwark's login and consent forms with a
   cookie-keeping HTTP client (no browser), handing the SDK the code, state and iss of the
   redirect. The client lists the tools and calls `whoami`.
   With `--cimd` the client does not register: it is given `client_metadata_url`, a Client ID
   Metadata Document this script serves over https on 127.0.0.1 (as `https://localhost:PORT/
   client.json`, with a certificate from tests/mcp/certs.py whose CA the server trusts), and
   uses that URL as its client_id because the issuer advertises
   `client_id_metadata_document_supported`. The document host counts who fetched it.
3. Shows the server refuses (401) a token of the tenant for another audience and a token of
   another tenant for this very audience.

Prints one JSON line with the results; exits non-zero on any failure. Needs no stdin and talks
only to 127.0.0.1. Arguments: none, or `--cimd`. Environment:

  BULWARK_TENANT_ISSUER    the tenant's issuer, http://127.0.0.1:PORT/t/TENANT
  BULWARK_TENANT           the tenant id (expected `tid`)
  MCP_PORT                 the port the MCP server listens on (127.0.0.1)
  MCP_RS_CLIENT_ID/SECRET  the resource server's client (client_secret_basic) for introspection
  MCP_USERNAME/PASSWORD    the end user who logs in on the hosted login page
  MCP_OTHER_AUD_TOKEN      an access token of the tenant for another audience (must be refused)
  MCP_OTHER_TENANT_TOKEN   an access token of another tenant for this server's URL (refused)
  MCP_CIMD_CERT/KEY        with --cimd: the PEM certificate (for localhost) and key of the
                           document host
"""

import base64
import html
import json
import logging
import os
import re
import ssl
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urljoin, urlparse

import anyio
import httpx2
import uvicorn
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

ISSUER = os.environ["BULWARK_TENANT_ISSUER"]
TENANT = os.environ["BULWARK_TENANT"]
PORT = int(os.environ["MCP_PORT"])
RS_ID = os.environ["MCP_RS_CLIENT_ID"]
RS_SECRET = os.environ["MCP_RS_CLIENT_SECRET"]
USERNAME = os.environ["MCP_USERNAME"]
PASSWORD = os.environ["MCP_PASSWORD"]
OTHER_AUD_TOKEN = os.environ["MCP_OTHER_AUD_TOKEN"]
OTHER_TENANT_TOKEN = os.environ["MCP_OTHER_TENANT_TOKEN"]

MCP_URL = f"http://127.0.0.1:{PORT}/mcp"
SCOPE = "mcp:tools"
# Nothing listens here: the "browser" below reads the code off the redirect's Location.
REDIRECT_URI = "http://127.0.0.1:8976/callback"
CLIENT_NAME = "MCP SDK proof"
GRANT_TYPES = ["authorization_code", "refresh_token"]

log = logging.getLogger("proof")


def fail(msg: str) -> None:
    raise AssertionError(msg)


def jwt_claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# ---------------------------------------------------------------- the MCP server (resource server)


class IntrospectionVerifier(TokenVerifier):
    """RFC 7662 introspection at the tenant's issuer; active, for us (`aud`), of our tenant."""

    def __init__(self) -> None:
        self.introspect_url = f"{ISSUER}/oauth2/introspect"
        self.decisions: list[dict] = []

    async def verify_token(self, token: str) -> AccessToken | None:
        async with httpx2.AsyncClient(timeout=10) as http:
            r = await http.post(self.introspect_url, data={"token": token}, auth=(RS_ID, RS_SECRET))
        if r.status_code != 200:
            self.decisions.append({"accepted": False, "why": f"introspection HTTP {r.status_code}"})
            return None
        info = r.json()
        aud = info.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        why = None
        if info.get("active") is not True:
            why = "inactive"
        elif MCP_URL not in auds:
            why = f"aud {aud!r}"
        elif info.get("tid") != TENANT:
            why = f"tid {info.get('tid')!r}"
        self.decisions.append({"accepted": why is None, "why": why})
        if why is not None:
            return None
        return AccessToken(
            token=token,
            client_id=info.get("client_id", ""),
            scopes=(info.get("scope") or "").split(),
            expires_at=info.get("exp"),
            # RFC 8707: the audience this server is (checked above; the SDK checks it again
            # with `validate_token_resource`).
            resource=MCP_URL if MCP_URL in auds else None,
            subject=info.get("sub"),
            claims={k: info[k] for k in ("iss", "tid", "aud") if k in info},
        )


def build_server(verifier: IntrospectionVerifier) -> MCPServer:
    mcp = MCPServer(
        name="bulwark-proof",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=ISSUER,
            resource_server_url=MCP_URL,
            required_scopes=[SCOPE],
            validate_token_resource=True,
        ),
        log_level="WARNING",
    )

    @mcp.tool()
    async def whoami() -> str:
        """The subject of the access token this call came with."""
        token = get_access_token()
        return token.subject if token and token.subject else ""

    return mcp


# ---------------------------------------------------------------- the metadata document's host


class DocumentHost:
    """https on 127.0.0.1 (an ephemeral port), serving the client's metadata document at
    `https://localhost:PORT/client.json`; counts the requests and notes their User-Agent."""

    PATH = "/client.json"

    def __init__(self, cert: str, key: str) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        host = self
        self.requests: list[dict] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            timeout = 5

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with host.lock:
                    host.requests.append({"path": self.path, "user_agent": self.headers.get("user-agent")})
                if self.path != DocumentHost.PATH:
                    self.send_error(404)
                    return
                body = json.dumps(host.document).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", "max-age=3600")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://localhost:{self.httpd.server_address[1]}{self.PATH}"
        # What the SDK would publish for itself: its own URL as client_id, the metadata it
        # would otherwise have registered.
        self.document = {
            "client_id": self.url,
            "client_name": CLIENT_NAME,
            "redirect_uris": [REDIRECT_URI],
            "grant_types": GRANT_TYPES,
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            # The SDK adds offline_access where the issuer offers it and the client may refresh
            # (SEP-2207), so the document names it too.
            "scope": f"{SCOPE} offline_access",
        }
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> "DocumentHost":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def fetches(self) -> list[dict]:
        with self.lock:
            return list(self.requests)


# ---------------------------------------------------------------- the MCP client's side


class MemoryStorage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def hidden(page: str, name: str) -> str | None:
    m = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), page)
    return html.unescape(m.group(1)) if m else None


def form_action(page: str, base: str) -> str:
    m = re.search(r'<form method="post" action="([^"]*)"', page)
    if not m:
        fail(f"no form on the page: {page[:500]}")
    return urljoin(base, html.unescape(m.group(1)))


class HeadlessUser:
    """The user at a browser: a cookie jar (by hand: the cookies are host-only on loopback
    http), no redirects followed, the hosted login and consent forms filled in."""

    def __init__(self) -> None:
        self.jar: dict[str, str] = {}
        self.http = httpx2.AsyncClient(follow_redirects=False, timeout=30)
        self.authorize_url: str | None = None
        self.steps: list[str] = []
        # The consent page's heading: whom the user is asked to let in.
        self.consent_heading: str | None = None

    def _keep(self, r: httpx2.Response) -> None:
        for c in r.headers.get_list("set-cookie"):
            name, _, value = c.split(";", 1)[0].partition("=")
            if "max-age=0" in c.lower():
                self.jar.pop(name.strip(), None)
            else:
                self.jar[name.strip()] = value.strip()

    async def _send(self, method: str, url: str, form: dict | None = None) -> httpx2.Response:
        if urlparse(url).hostname != "127.0.0.1":
            fail(f"refusing to leave loopback: {url}")
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items())} if self.jar else {}
        r = await self.http.request(method, url, data=form, headers=headers)
        self._keep(r)
        return r

    async def redirect_handler(self, url: str) -> None:
        self.authorize_url = url

    async def callback_handler(self) -> AuthorizationCodeResult:
        if not self.authorize_url:
            fail("no authorization URL")
        q = parse_qs(urlparse(self.authorize_url).query)
        if q.get("resource") != [MCP_URL]:
            fail(f"the SDK did not send resource={MCP_URL}: {self.authorize_url}")
        url = self.authorize_url
        r = await self._send("GET", url)
        for _ in range(4):
            if r.status_code in (302, 303):
                break
            if r.status_code != 200:
                fail(f"authorize page {r.status_code}: {r.text[:500]}")
            page = r.text
            action = form_action(page, url)
            if 'name="password"' in page:
                self.steps.append("login")
                form = {
                    "action": "login",
                    "interaction": hidden(page, "interaction") or "",
                    "csrf": hidden(page, "csrf") or "",
                    "username": USERNAME,
                    "password": PASSWORD,
                }
            elif 'name="decision"' in page:
                self.steps.append("consent")
                m = re.search(r"<h1>(.*?)</h1>", page, re.S)
                self.consent_heading = html.unescape(re.sub(r"<[^>]*>", "", m.group(1))).strip() if m else None
                form = {
                    "action": "consent",
                    "interaction": hidden(page, "interaction") or "",
                    "csrf": hidden(page, "csrf") or "",
                    "decision": "approve",
                }
            else:
                fail(f"unexpected page: {page[:800]}")
            if "bulwark_bid" not in "".join(self.jar):
                fail(f"no browser-binding cookie kept: {list(self.jar)}")
            r = await self._send("POST", action, form)
        else:
            fail("too many pages before the redirect")
        loc = r.headers["location"]
        if not loc.startswith(REDIRECT_URI + "?"):
            fail(f"redirected elsewhere: {loc}")
        q = parse_qs(urlparse(loc).query)
        if "error" in q:
            fail(f"authorization error: {q}")
        return AuthorizationCodeResult(code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0])


async def raw_initialize(token: str) -> int:
    """POST an MCP initialize with `token`; the HTTP status."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    async with httpx2.AsyncClient(timeout=10) as http:
        r = await http.post(
            MCP_URL,
            json=body,
            headers={
                "authorization": f"Bearer {token}",
                "accept": "application/json, text/event-stream",
                "content-type": "application/json",
            },
        )
        return r.status_code


async def prove(verifier: IntrospectionVerifier, documents: DocumentHost | None) -> dict:
    """The client's flow and the refusals; with `documents`, the client is known by the URL of
    its metadata document there instead of registering."""
    user = HeadlessUser()
    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=OAuthClientMetadata(
            client_name=CLIENT_NAME,
            redirect_uris=[REDIRECT_URI],
            grant_types=GRANT_TYPES,
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
        client_metadata_url=documents.url if documents else None,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(30, read=60)) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [t.name for t in (await session.list_tools()).tools]
                result = await session.call_tool("whoami", {})
    if result.isError if hasattr(result, "isError") else getattr(result, "is_error", False):
        fail(f"whoami failed: {result}")
    texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
    sub = texts[0] if texts else None
    if "whoami" not in tools:
        fail(f"tools: {tools}")
    if not sub:
        fail(f"whoami answered nothing: {result}")

    client_info = storage.client_info
    tokens = storage.tokens
    if client_info is None or tokens is None:
        fail("the SDK stored no registration or tokens")
    claims = jwt_claims(tokens.access_token)
    if claims.get("iss") != ISSUER or claims.get("aud") not in (MCP_URL, [MCP_URL]) or claims.get("tid") != TENANT:
        fail(f"unexpected access token claims: {claims}")
    if claims.get("sub") != sub:
        fail(f"whoami {sub!r} is not the token's sub {claims.get('sub')!r}")
    if client_info.token_endpoint_auth_method != "none" or client_info.client_secret:
        fail(f"not a public client: {client_info}")
    if documents and client_info.client_id != documents.url:
        fail(f"the SDK did not use its metadata document's URL as client_id: {client_info.client_id}")
    if claims.get("client_id") != client_info.client_id:
        fail(f"the token's client_id {claims.get('client_id')!r} is not the SDK's {client_info.client_id!r}")

    # The refusals: a token of ours for another audience (active at introspection), and a token
    # of another tenant for this very URL. Alice's token, sent the same way, is accepted.
    other_aud = jwt_claims(OTHER_AUD_TOKEN)
    if other_aud.get("tid") != TENANT or other_aud.get("aud") in (MCP_URL, [MCP_URL]):
        fail(f"MCP_OTHER_AUD_TOKEN is not a token of {TENANT} for another audience: {other_aud}")
    other_tenant = jwt_claims(OTHER_TENANT_TOKEN)
    if other_tenant.get("tid") == TENANT or other_tenant.get("aud") not in (MCP_URL, [MCP_URL]):
        fail(f"MCP_OTHER_TENANT_TOKEN is not another tenant's token for {MCP_URL}: {other_tenant}")
    refused = {}
    for label, tok in (("other_audience", OTHER_AUD_TOKEN), ("other_tenant", OTHER_TENANT_TOKEN)):
        status = await raw_initialize(tok)
        refused[label] = {"status": status, "why": verifier.decisions[-1]["why"] if verifier.decisions else None}
        if status != 401:
            fail(f"{label} token: HTTP {status}, expected 401")
    if refused["other_audience"]["why"] != f"aud {other_aud.get('aud')!r}":
        fail(f"the other-audience token was not refused for its audience: {refused}")
    control = await raw_initialize(tokens.access_token)
    if control != 200:
        fail(f"alice's token sent the same way: HTTP {control}, expected 200")

    out = {
        "ok": True,
        "sub": sub,
        "tools": tools,
        "client_id": client_info.client_id,
        "scope": tokens.scope,
        "aud": claims.get("aud"),
        "iss": claims.get("iss"),
        "pages": user.steps,
        "consent_heading": user.consent_heading,
        "refused": refused,
    }
    if documents:
        out["document_url"] = documents.url
        out["document_fetches"] = documents.fetches()
    return out


async def main(cimd: bool) -> dict:
    if cimd:
        with DocumentHost(os.environ["MCP_CIMD_CERT"], os.environ["MCP_CIMD_KEY"]) as documents:
            return await serve_and_prove(documents)
    return await serve_and_prove(None)


async def serve_and_prove(documents: DocumentHost | None) -> dict:
    verifier = IntrospectionVerifier()
    app = build_server(verifier).streamable_http_app(host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=PORT, log_level="warning", lifespan="on"))
    out: dict = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        try:
            with anyio.fail_after(20):
                while not server.started:
                    await anyio.sleep(0.05)
            with anyio.fail_after(120):
                out = await prove(verifier, documents)
        finally:
            server.should_exit = True
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if sys.argv[1:] not in ([], ["--cimd"]):
        sys.exit("usage: proof.py [--cimd]")
    try:
        result = anyio.run(main, sys.argv[1:] == ["--cimd"])
    except BaseException as e:  # noqa: BLE001 - the exit status carries it
        traceback.print_exc()
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
        sys.exit(1)
    print(json.dumps(result), flush=True)
