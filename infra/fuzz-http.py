#!/usr/bin/env python3
"""Replay fuzzer-made inputs against a running `bulwark serve` and count the answers by class.

    python3 infra/fuzz-http.py BASE_URL CORPUS_DIR... [--tenant T --client ID:SECRET]

Every file of the corpora (e.g. target/fuzz/corpus/params after `bash infra/fuzz.sh`) is sent,
as it is, as a form body to the token, introspection, revocation, authorization and account
endpoints, as a JSON body to registration, as a query string to the authorization endpoint
and as an `Authorization` header to userinfo and the token endpoint. Any 5xx is a failure
(503 included: nothing here touches a failing backend). Prints one line per endpoint and a
total; exits 1 on any 5xx or connection error. Stdlib only.
"""
import base64
import collections
import http.client
import os
import sys
import urllib.parse


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    base = urllib.parse.urlparse(args[0])
    tenant, client = "demo", None
    corpora = []
    it = iter(args[1:])
    for a in it:
        if a == "--tenant":
            tenant = next(it)
        elif a == "--client":
            client = next(it)
        else:
            corpora.append(a)
    files = []
    for d in corpora:
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                files.append(f.read()[:8192])
    if not files:
        sys.exit("no inputs found")
    basic = None
    if client:
        basic = "Basic " + base64.b64encode(client.encode()).decode()
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
    counts = collections.defaultdict(collections.Counter)
    bad = []

    def send(label, method, path, body=None, headers=None):
        nonlocal conn
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            r.read()
            status = r.status
        except ValueError:
            # A header value http.client will not send (control characters): not a request.
            conn.close()
            conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
            counts[label]["unsendable"] += 1
            return
        except (http.client.HTTPException, OSError) as e:
            conn.close()
            conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
            counts[label]["error"] += 1
            bad.append((label, repr(e)))
            return
        counts[label][f"{status // 100}xx"] += 1
        if status >= 500:
            bad.append((label, status))

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for body in files:
        with_auth = dict(form, **({"Authorization": basic} if basic else {}))
        send("POST /oauth2/token", "POST", "/oauth2/token", body, with_auth)
        send("POST /oauth2/introspect", "POST", "/oauth2/introspect", body, with_auth)
        send("POST /oauth2/revoke", "POST", "/oauth2/revoke", body, with_auth)
        send("POST /oauth2/authorize", "POST", "/oauth2/authorize", body, form)
        send("POST /account/login", "POST", "/account/login", body, form)
        query = urllib.parse.quote_from_bytes(body, safe="=&%+")
        send("GET /oauth2/authorize?...", "GET", "/oauth2/authorize?" + query)
        send("GET /account?...", "GET", "/account?" + query)
        send("POST /oauth2/register", "POST", "/oauth2/register", body,
             {"Content-Type": "application/json", "X-Bulwark-Tenant": tenant})
        header = body.decode("latin-1").replace("\r", " ").replace("\n", " ")
        send("GET /oauth2/userinfo (Authorization)", "GET", "/oauth2/userinfo", None,
             {"Authorization": header})
        send("POST /oauth2/token (Authorization)", "POST", "/oauth2/token",
             b"grant_type=client_credentials", dict(form, Authorization=header))
    total = collections.Counter()
    for label in sorted(counts):
        c = counts[label]
        total.update(c)
        print(f"{label:40} " + " ".join(f"{k}={v}" for k, v in sorted(c.items())))
    print(f"{'total (' + str(len(files)) + ' inputs)':40} " + " ".join(f"{k}={v}" for k, v in sorted(total.items())))
    if bad:
        print(f"FAILED: {len(bad)} answers were 5xx or errors, e.g. {bad[:5]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
