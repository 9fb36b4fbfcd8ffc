"""Cold start of each Lambda function binary: the time from starting the process to its first
`GET /2018-06-01/runtime/invocation/next` on a minimal Lambda Runtime API (the same protocol as
the emulator in tests/e2e/lambda.rs), i.e. what Lambda reports as Init Duration, less the
sandbox's own part. Each binary is started RUNS times; the median and the fastest are printed.

    python infra/cold_start.py BIN_DIR AWS_ENDPOINT TABLE_PREFIX RUNS NAME[=VAR=VALUE,...] ...

Each NAME is a binary in BIN_DIR; `name=VAR=VALUE,VAR=VALUE` adds environment variables (the
token function's BULWARK_WRAPPING_KEY_ID, to include its one KMS Decrypt). The invocation is
never answered: the process is killed once it has asked for one.

    python infra/cold_start.py cpu TOKEN_BINARY AWS_ENDPOINT TABLE_PREFIX N CLIENT_ID SECRET [VAR=VALUE ...]

CPU time (user + system, from /proc) the token function spends per client_credentials request,
over N requests after 20 to warm up: what a smaller but slower build (opt-level) would cost.
Stdlib only.
"""

import base64
import http.server
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

NEXT = "/2018-06-01/runtime/invocation/next"


def measure(binary, env):
    polled = threading.Event()
    first = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == NEXT and not polled.is_set():
                first["t"] = time.perf_counter()
                polled.set()
            # Hold the request: no invocation is ever handed out.
            time.sleep(5)

        def do_POST(self):  # init/error: the start failed
            n = int(self.headers.get("content-length") or 0)
            first["error"] = self.rfile.read(n).decode(errors="replace")
            first["t"] = time.perf_counter()
            self.send_response(202)
            self.end_headers()
            polled.set()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda *_: None  # the killed process's held connection
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % server.server_address[1])
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ok = polled.wait(30)
    proc.kill()
    out = proc.communicate()[0].decode(errors="replace")
    server.shutdown()
    server.server_close()
    if not ok:
        sys.exit("%s never asked for an invocation:\n%s" % (binary, out))
    if "error" in first:
        sys.exit("%s failed its start: %s\n%s" % (binary, first["error"], out))
    return (first["t"] - t0) * 1000.0


def base_env(endpoint, prefix):
    return {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "BULWARK_ISSUER": "https://auth.example.test",
        "BULWARK_TABLE_PREFIX": prefix,
        "BULWARK_SIGNING_MODE": "kms-wrapped",
        "BULWARK_STACK": prefix.rstrip("-"),
    }


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(binary, endpoint, prefix, n, client_id, secret, extra):
    events, answers = queue.Queue(), queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            rid, event = events.get()
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.send_header("lambda-runtime-aws-request-id", rid)
            self.send_header("lambda-runtime-deadline-ms", str(int(time.time() * 1000) + 30000))
            self.send_header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:token")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("content-length") or 0)
            answers.put((self.path, self.rfile.read(n)))
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda *_: None  # the killed process's held connection
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(base_env(endpoint, prefix), AWS_LAMBDA_FUNCTION_NAME="token",
               AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/token",
               AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % server.server_address[1])
    env.update(kv.split("=", 1) for kv in extra)
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    basic = "Basic " + base64.b64encode(("%s:%s" % (client_id, secret)).encode()).decode()

    def invoke(i):
        event = {
            "version": "2.0", "routeKey": "$default", "rawPath": "/oauth2/token", "rawQueryString": "",
            "headers": {"authorization": basic, "content-type": "application/x-www-form-urlencoded"},
            "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "auth.example.test",
                               "domainPrefix": "auth", "http": {"method": "POST", "path": "/oauth2/token",
                               "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "cpu"},
                               "requestId": str(i), "routeKey": "$default", "stage": "$default",
                               "time": "22/Nov/2026:12:00:00 +0000", "timeEpoch": 1795348800000},
            "body": "grant_type=client_credentials", "isBase64Encoded": False,
        }
        events.put((str(i), event))
        path, body = answers.get(timeout=30)
        answer = json.loads(body)
        if not path.endswith("/response") or answer.get("statusCode") != 200:
            sys.exit("the token function answered %s: %s" % (path, body[:300]))

    try:
        for i in range(20):
            invoke(i)
        c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        for i in range(n):
            invoke(100 + i)
        c1, t1 = cpu_seconds(proc.pid), time.perf_counter()
    finally:
        proc.kill()
        proc.wait()
        server.shutdown()
    return (c1 - c0) * 1000.0 / n, (t1 - t0) * 1000.0 / n


def main():
    if sys.argv[1] == "cpu":
        binary, endpoint, prefix, n, client_id, secret = sys.argv[2:8]
        cpu, wall = cpu_per_request(binary, endpoint, prefix, int(n), client_id, secret, sys.argv[8:])
        print("%-34s %10.2f %10.2f" % ("token: CPU ms, wall ms / request", cpu, wall))
        return
    bin_dir, endpoint, prefix, runs = sys.argv[1:5]
    base = base_env(endpoint, prefix)
    print("%-34s %10s %10s" % ("function", "median ms", "min ms"))
    for spec in sys.argv[5:]:
        name, _, extra = spec.partition("=")
        env = dict(base, AWS_LAMBDA_FUNCTION_NAME=name, AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/" + name)
        for kv in filter(None, extra.split(",")):
            k, _, v = kv.partition("=")
            env[k] = v
        binary = os.path.join(bin_dir, name)
        times = [measure(binary, env) for _ in range(int(runs))]
        label = name + (" (+ KMS Decrypt)" if "BULWARK_WRAPPING_KEY_ID" in env else "")
        print("%-34s %10.1f %10.1f" % (label, statistics.median(times), min(times)), flush=True)


if __name__ == "__main__":
    main()
