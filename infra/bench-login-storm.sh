#!/usr/bin/env bash
# Benchmark: does a storm of password logins (argon2id, deliberately expensive) slow the other
# endpoints down? JWKS latency alone, then JWKS latency while 16 connections log in as fast as
# they can. Password hashing runs on a bounded blocking pool, so the async workers that answer
# JWKS (and token, introspection, ...) stay free.
#
#   bash infra/bench-login-storm.sh                 # release build of this checkout
#   BENCH_BIN=/path/to/bulwark BENCH_SUFFIX=-before bash infra/bench-login-storm.sh
#                                                   # another build (e.g. an older commit)
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
  echo "[storm] building bulwark (release)" >&2
  cargo build --release --locked -p bulwark >&2
  BIN="$ROOT/target/release/bulwark"
  LABEL="this checkout ($(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ', with local changes'))"
else
  BIN="$BENCH_BIN"
  LABEL="$BENCH_BIN"
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

jwks() { # $1: label
  "$OHA" -z "${SECS}s" -c 4 --no-tui --output-format json "$BASE/.well-known/jwks.json" >"$OUT/login-storm${BENCH_SUFFIX:-}-$1.json"
}
stats() { # $1: file; prints "rps p50 p99 non-200"
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != "200")
print(f'{s["requestsPerSec"]:.0f} {p["p50"]*1000:.2f} {p["p99"]*1000:.2f} {bad}')
PY
}

echo "[storm] JWKS alone, ${SECS}s at c=4" >&2
jwks alone
echo "[storm] JWKS during a login storm ($STORM_USERS connections logging in)" >&2
STORM_PIDS=()
for i in $(seq 1 "$STORM_USERS"); do
  "$OHA" -z "$((SECS + 4))s" -c 1 --no-tui --output-format json -m POST \
    -H "Cookie: bulwark_bid=$BID" -H 'Content-Type: application/x-www-form-urlencoded' -d "$(body "$i")" \
    "$BASE/account/login" >"$DATA/logins-$i.json" &
  STORM_PIDS+=("$!")
done
STORM_PID="${STORM_PIDS[*]}"
sleep 2
jwks storm
wait "${STORM_PIDS[@]}"; STORM_PID=""
python3 - "$DATA" "$STORM_USERS" "$OUT/login-storm${BENCH_SUFFIX:-}-logins.json" <<'PY'
import json, sys
d, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = [json.load(open(f"{d}/logins-{i}.json")) for i in range(1, n + 1)]
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

read -r a_rps a_p50 a_p99 a_bad < <(stats "$OUT/login-storm${BENCH_SUFFIX:-}-alone.json")
read -r s_rps s_p50 s_p99 s_bad < <(stats "$OUT/login-storm${BENCH_SUFFIX:-}-storm.json")
read -r l_rps l_p50 l_p99 l_bad < <(python3 - "$OUT/login-storm${BENCH_SUFFIX:-}-logins.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
bad = sum(v for k, v in codes.items() if k != "303")
print(f'{s["requestsPerSec"]:.0f} {p["p50"]*1000:.2f} {p["p99"]*1000:.2f} {bad}')
PY
)
{
  echo "login storm: JWKS latency with and without $STORM_USERS connections logging in (argon2id)"
  echo "server: $LABEL"
  printf '%-28s %8s %9s %9s %8s\n' scenario req/s p50_ms p99_ms errors
  printf '%-28s %8s %9s %9s %8s\n' "jwks c=4 alone" "$a_rps" "$a_p50" "$a_p99" "$a_bad"
  printf '%-28s %8s %9s %9s %8s\n' "jwks c=4 during the storm" "$s_rps" "$s_p50" "$s_p99" "$s_bad"
  printf '%-28s %8s %9s %9s %8s\n' "logins ($STORM_USERS x c=1)" "$l_rps" "$l_p50" "$l_p99" "$l_bad"
  echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} | tee "$OUT/login-storm${BENCH_SUFFIX:-}.txt"
