#!/usr/bin/env bash
# Benchmark: does a storm of password logins (argon2id, deliberately expensive) slow the other
# endpoints down? JWKS latency alone, then JWKS latency while 16 connections log in as fast as
# they can, then again with the store busy too: the same storm (each login writes its throttle
# counter and a session), client_credentials token requests (a store read each) at c=4,
# revocations of an access token (a transaction each: the deny-list entry and its audit event)
# at c=4, and another process holding SQLite's write lock for BENCH_WRITER_HOLD_MS (25) of every
# BENCH_WRITER_PERIOD_MS (100), as the CLI or a backup does on the same file. Password hashing
# and every SQLite call run off the async workers, so the workers that answer JWKS (and token,
# introspection, ...) stay free.
#
#   bash infra/bench-login-storm.sh                 # `serve` profile build of this checkout
#   BENCH_BIN=/path/to/bulwark BENCH_SUFFIX=-before BENCH_LABEL="main, 6f069c1" bash infra/bench-login-storm.sh
#                                                   # another build (e.g. an older commit's,
#                                                   # `cargo build --profile serve -p bulwark`)
#
# Writes infra/bench-results/login-storm$BENCH_SUFFIX.txt (and the raw oha JSON next to it). Uses the same
# pinned load generator as ../shared/peer-bench (oha, installed there on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PORT="${BENCH_PORT:-8081}"
SECS="${BENCH_SECONDS:-15}"
OUT="$ROOT/infra/bench-results"
mkdir -p "$OUT"
OHA_VERSION="1.16.0"
TOOLS="${PEER_BENCH_HOME:-$HOME/.cache/bulwark-peer-bench}/.tools"
OHA="${OHA:-$TOOLS/bin/oha}"
if [[ ! -x "$OHA" ]] || ! "$OHA" --version 2>/dev/null | grep -q "$OHA_VERSION"; then
  echo "[storm] installing oha $OHA_VERSION into $TOOLS (cargo install --locked; several minutes)" >&2
  cargo install oha --version "$OHA_VERSION" --locked --root "$TOOLS" >&2
  OHA="$TOOLS/bin/oha"
fi

if [[ -z "${BENCH_BIN:-}" ]]; then
  echo "[storm] building bulwark (--profile serve, as infra/bench.sh)" >&2
  cargo build --profile serve --locked -p bulwark --bin bulwark >&2
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/serve/bulwark"
  LABEL="this checkout ($(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ', with local changes'))"
else
  BIN="$BENCH_BIN"
  LABEL="${BENCH_LABEL:-$BENCH_BIN}"
fi

DATA="$(mktemp -d)"
SERVER_PID=""
STORM_PID=""
cleanup() {
  for pid in $STORM_PID "$SERVER_PID"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$DATA"
}
trap cleanup EXIT

export BULWARK_DATA_DIR="$DATA"
PASSWORD="storm password $RANDOM$RANDOM"
STORM_USERS=16
"$BIN" --json tenant create storm >/dev/null
"$BIN" --json scope add --tenant storm api:read "Read" >/dev/null
CLIENT="$("$BIN" --json client create --tenant storm --name storm --grant-type client_credentials --scope api:read)"
AUTH="$(python3 -c 'import json,sys,base64;c=json.loads(sys.argv[1]);print(base64.b64encode((c["client_id"]+":"+c["client_secret"]).encode()).decode())' "$CLIENT")"
# One user per storm connection: attempts for one username are throttled (at most five in
# flight or failed per window), so each connection logs its own user in, one at a time.
for i in $(seq 1 "$STORM_USERS"); do
  echo "$PASSWORD" | "$BIN" --json user create --tenant storm --username "user$i" --password-stdin >/dev/null
done

RUST_LOG=warn "$BIN" --json serve --addr "127.0.0.1:$PORT" >"$DATA/serve.out" 2>"$DATA/serve.log" &
SERVER_PID=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -sf "$BASE/.well-known/jwks.json" >/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$DATA/serve.log" >&2; exit 1; }
  sleep 0.1
done

# The account page's login form: its browser cookie and CSRF token, reused by every storm request.
PAGE="$(curl -s -D "$DATA/headers" "$BASE/account?tenant=storm")"
BID="$(grep -i '^set-cookie: bulwark_bid=' "$DATA/headers" | sed -E 's/^[^:]*: bulwark_bid=([^;]*).*/\1/I' | tr -d '\r')"
CSRF="$(printf '%s' "$PAGE" | sed -nE 's/.*name="csrf" value="([^"]*)".*/\1/p' | head -1)"
[[ -n "$BID" && -n "$CSRF" ]] || { echo "[storm] could not read the login form" >&2; exit 1; }
ENC_PASSWORD="$(python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$PASSWORD")"
body() { echo "tenant=storm&csrf=$CSRF&username=user$1&password=$ENC_PASSWORD"; }
# One login by hand: it must succeed (a 303 to the account page), or the storm measures nothing.
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: bulwark_bid=$BID" -H 'Content-Type: application/x-www-form-urlencoded' --data "$(body 1)" "$BASE/account/login")"
[[ "$code" == "303" ]] || { echo "[storm] a login answered $code, not 303" >&2; exit 1; }
# The access token the busy phase revokes, again and again (each time a store transaction).
ACCESS_TOKEN="$(curl -sf -H "Authorization: Basic $AUTH" -d grant_type=client_credentials "$BASE/oauth2/token" |
  python3 -c 'import json,sys;print(json.load(sys.stdin)["access_token"])')"

jwks() { # $1: label
  "$OHA" -z "${SECS}s" -c 4 --no-tui --output-format json "$BASE/.well-known/jwks.json" >"$OUT/login-storm${BENCH_SUFFIX:-}-$1.json"
}
echo "[storm] JWKS alone, ${SECS}s at c=4" >&2
jwks alone
# A storm: $1 = label; each of the STORM_USERS connections logs its user in, in a loop.
storm_start() {
  STORM_PIDS=()
  for i in $(seq 1 "$STORM_USERS"); do
    "$OHA" -z "$((SECS + 4))s" -c 1 --no-tui --output-format json -m POST \
      -H "Cookie: bulwark_bid=$BID" -H 'Content-Type: application/x-www-form-urlencoded' -d "$(body "$i")" \
      "$BASE/account/login" >"$DATA/logins-$1-$i.json" &
    STORM_PIDS+=("$!")
  done
  STORM_PID="${STORM_PIDS[*]}"
}
storm_end() { # $1 = label: waits for the storm, sums its connections into one result file
  wait "${STORM_PIDS[@]}"; STORM_PID=""
  local out="$OUT/login-storm${BENCH_SUFFIX:-}-logins.json"
  [[ "$1" == storm ]] || out="$OUT/login-storm${BENCH_SUFFIX:-}-$1-logins.json"
  python3 - "$DATA" "$1" "$STORM_USERS" "$out" <<'PY'
import json, sys
d, label, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = [json.load(open(f"{d}/logins-{label}-{i}.json")) for i in range(1, n + 1)]
codes = {}
for r in runs:
    for k, v in r.get("statusCodeDistribution", {}).items():
        codes[k] = codes.get(k, 0) + v
json.dump({
    "summary": {"requestsPerSec": sum(r["summary"]["requestsPerSec"] for r in runs)},
    "latencyPercentiles": {p: max(r["latencyPercentiles"][p] for r in runs) for p in ("p50", "p99")},
    "statusCodeDistribution": codes,
}, open(out, "w"))
PY
}

echo "[storm] JWKS during a login storm ($STORM_USERS connections logging in)" >&2
storm_start storm
sleep 2
jwks storm
storm_end storm

HOLD_MS="${BENCH_WRITER_HOLD_MS:-25}"
PERIOD_MS="${BENCH_WRITER_PERIOD_MS:-100}"
echo "[storm] JWKS during the storm with the store busy (token requests at c=4; another process holding the write lock ${HOLD_MS} ms of every ${PERIOD_MS} ms)" >&2
storm_start busy
"$OHA" -z "$((SECS + 4))s" -c 4 --no-tui --output-format json -m POST -H "Authorization: Basic $AUTH" \
  -H 'Content-Type: application/x-www-form-urlencoded' -d 'grant_type=client_credentials' \
  "$BASE/oauth2/token" >"$OUT/login-storm${BENCH_SUFFIX:-}-busy-tokens.json" &
TOKENS_PID=$!
"$OHA" -z "$((SECS + 4))s" -c 4 --no-tui --output-format json -m POST -H "Authorization: Basic $AUTH" \
  -H 'Content-Type: application/x-www-form-urlencoded' -d "token=$ACCESS_TOKEN" \
  "$BASE/oauth2/revoke" >"$OUT/login-storm${BENCH_SUFFIX:-}-busy-revocations.json" &
REVOKE_PID=$!
STORM_PID="$STORM_PID $TOKENS_PID $REVOKE_PID"
# The contending writer: another process with the same file open, its own rows (`tbl`
# bench-writer, which no table of ours reads), holding the write lock in bursts.
python3 - "$DATA/bulwark.db" "$((SECS + 4))" "$HOLD_MS" "$PERIOD_MS" >"$DATA/writer.out" <<'PY' &
import sqlite3, sys, time
path, secs, hold, period = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]) / 1000, int(sys.argv[4]) / 1000
db = sqlite3.connect(path, timeout=5, isolation_level=None)
end, n, waited = time.monotonic() + secs, 0, 0.0
while time.monotonic() < end:
    t = time.monotonic()
    db.execute("BEGIN IMMEDIATE")
    waited += time.monotonic() - t
    db.execute("INSERT OR REPLACE INTO items (tbl, pk, sk, data, version) VALUES ('bench-writer', 'k', 'k', ?, 1)", (str(n),))
    time.sleep(hold)
    db.execute("COMMIT")
    n += 1
    time.sleep(max(0.0, period - hold))
print(n, round(waited / max(n, 1) * 1000, 2))
PY
WRITER_PID=$!
STORM_PID="$STORM_PID $WRITER_PID"
sleep 2
jwks busy
storm_end busy
wait "$TOKENS_PID" "$REVOKE_PID" "$WRITER_PID"; STORM_PID=""
read -r w_n w_wait <"$DATA/writer.out"

summary() { # $1: file, $2: the status that counts as success; prints "rps p50 p99 errors"
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != sys.argv[2])
print(f'{s["requestsPerSec"]:.0f} {p["p50"]*1000:.2f} {p["p99"]*1000:.2f} {bad}')
PY
}
R="$OUT/login-storm${BENCH_SUFFIX:-}"
row() { # $1: scenario, $2: file, $3: success status
  read -r rps p50 p99 bad < <(summary "$2" "$3")
  printf '%-44s %8s %9s %9s %8s\n' "$1" "$rps" "$p50" "$p99" "$bad"
}
{
  echo "login storm: JWKS latency alone, while $STORM_USERS connections log in (argon2id), and with the store busy too"
  echo "server: $LABEL"
  printf '%-44s %8s %9s %9s %8s\n' scenario req/s p50_ms p99_ms errors
  row "jwks c=4 alone" "$R-alone.json" 200
  row "jwks c=4 during the storm" "$R-storm.json" 200
  row "  logins ($STORM_USERS x c=1)" "$R-logins.json" 303
  row "jwks c=4 during the storm, store busy" "$R-busy.json" 200
  row "  logins ($STORM_USERS x c=1)" "$R-busy-logins.json" 303
  row "  client_credentials c=4" "$R-busy-tokens.json" 200
  row "  revocations c=4" "$R-busy-revocations.json" 200
  echo "  other process: write lock held ${HOLD_MS} ms of every ${PERIOD_MS} ms, $w_n times (waited $w_wait ms each for it)"
  echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} | tee "$R.txt"
