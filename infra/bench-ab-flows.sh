#!/usr/bin/env bash
# Benchmark: two builds of `bulwark serve` (A: before a change, B: after) on the four paths a
# refactoring must not slow down, interleaved in one run so that both see the same machine:
# client_credentials as a fraction of the irreducible work (../shared/peer-bench/ceiling),
# introspection (oha, c=16), authorization-code redemption and refresh rotation (each build's own
# `bench_flows` example, c=16). ROUNDS rounds, the order of A and B alternating. On 2 shared
# cores single numbers move by ±20%: compare the two columns of one run, not runs.
#
#   BENCH_A=old/serve/bulwark FLOWS_A=old/serve/examples/bench_flows \
#   BENCH_B=new/serve/bulwark FLOWS_B=new/serve/examples/bench_flows ROUNDS=2 bash infra/bench-ab-flows.sh
#
# (without BENCH_B/FLOWS_B: this checkout's `--profile serve` build.) Writes
# infra/bench-results/ab-flows$BENCH_SUFFIX.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/infra/bench-results"
mkdir -p "$OUT"
PEER_BENCH="${PEER_BENCH:-$ROOT/../shared/peer-bench}"
OHA="${OHA:-${PEER_BENCH_HOME:-$HOME/.cache/bulwark-peer-bench}/.tools/bin/oha}"
[[ -x "$OHA" ]] || { echo "ab: oha not found at $OHA (infra/bench-login-storm.sh installs it)" >&2; exit 2; }
[[ -n "${BENCH_A:-}" && -n "${FLOWS_A:-}" ]] || { echo "ab: set BENCH_A and FLOWS_A (the build to compare against)" >&2; exit 2; }
if [[ -z "${BENCH_B:-}" ]]; then
  echo "[ab] building bulwark and bench_flows (--profile serve)" >&2
  cargo build --profile serve --locked -p bulwark --bin bulwark --example bench_flows >&2
  BENCH_B="${CARGO_TARGET_DIR:-$ROOT/target}/serve/bulwark"
  FLOWS_B="${CARGO_TARGET_DIR:-$ROOT/target}/serve/examples/bench_flows"
fi
ROUNDS="${ROUNDS:-2}"
PORT="${BENCH_PORT:-18621}"
CEILING="$(mktemp -d)"
cp -r "$PEER_BENCH/ceiling/." "$CEILING/"
SERVER_PID=""; DATA=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$CEILING" "$DATA"
}
trap cleanup EXIT
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# One build, one round: sets RESULT to "ceiling-ratio introspection/s redemption/s refresh/s".
measure() {
  local bin="$1" flows="$2" ratio intro red ref
  ratio="$(CEILING_TARGET="${CEILING_TARGET:-$HOME/.cache/bulwark-peer-bench/ceiling-target}" \
    bash "$CEILING/interleaved.sh" "$bin" | tail -1 | sed -E 's/.*ratio ([0-9.]+).*/\1/')"
  DATA="$(mktemp -d)"
  export BULWARK_DATA_DIR="$DATA"
  "$bin" --json tenant create bench >/dev/null
  "$bin" --json scope add --tenant bench api:read "Read" >/dev/null
  local cc web
  cc="$("$bin" --json client create --tenant bench --name cc --grant-type client_credentials --scope api:read)"
  echo 'bench-password-bench' | "$bin" --json user create --tenant bench --username bencher --password-stdin >/dev/null
  web="$("$bin" --json client create --tenant bench --name web --grant-type authorization_code --grant-type refresh_token \
    --redirect-uri http://127.0.0.1/callback --scope "api:read offline_access")"
  RUST_LOG=warn "$bin" serve --addr "127.0.0.1:$PORT" >/dev/null 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/.well-known/jwks.json" >/dev/null && break
    sleep 0.1
  done
  local auth token
  auth="$(python3 -c 'import json,sys,base64;c=json.loads(sys.argv[1]);print(base64.b64encode((c["client_id"]+":"+c["client_secret"]).encode()).decode())' "$cc")"
  token="$(curl -sf -H "Authorization: Basic $auth" -d grant_type=client_credentials "http://127.0.0.1:$PORT/oauth2/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
  # Introspection by the token's own client (which may always be told about its own tokens).
  intro="$("$OHA" -n 20000 -c 16 -m POST -H "Authorization: Basic $auth" -H 'Content-Type: application/x-www-form-urlencoded' \
    -d "token=$token" --no-tui --output-format json "http://127.0.0.1:$PORT/oauth2/introspect" |
    python3 -c 'import json,sys;d=json.load(sys.stdin);ok=d["statusCodeDistribution"].get("200",0);print(round(d["summary"]["requestsPerSec"]*ok/max(1,sum(d["statusCodeDistribution"].values()))))')"
  local flows_out
  flows_out="$("$flows" "http://127.0.0.1:$PORT" "$(field "$web" client_id)" "$(field "$web" client_secret)" bencher bench-password-bench 8000 16)"
  red="$(echo "$flows_out" | awk '/authorization_code redemption/ {print $5}')"
  ref="$(echo "$flows_out" | awk '/refresh_token rotation/ {print $5}')"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  rm -rf "$DATA"; DATA=""
  RESULT="$ratio $intro $red $ref"
}

declare -a A_ROWS B_ROWS
for r in $(seq 1 "$ROUNDS"); do
  if (( r % 2 )); then order="A B"; else order="B A"; fi
  for side in $order; do
    if [[ $side == A ]]; then
      measure "$BENCH_A" "$FLOWS_A"; row="$RESULT"; A_ROWS+=("$row")
    else
      measure "$BENCH_B" "$FLOWS_B"; row="$RESULT"; B_ROWS+=("$row")
    fi
    echo "[ab] round $r $side: ceiling ratio, introspection/s, redemption/s, refresh/s = $row" >&2
  done
done

{
  echo "A/B, interleaved, $ROUNDS rounds (c=16): A = $BENCH_A, B = $BENCH_B"
  python3 - "${A_ROWS[*]}" "${B_ROWS[*]}" <<'PY'
import sys
def rows(s):
    v = [float(x) for x in s.split()]
    return [v[i:i + 4] for i in range(0, len(v), 4)]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
names = ["client_credentials / ceiling", "introspection /s", "code redemption /s", "refresh rotation /s"]
print(f"{'':32}{'A (each round)':>36}{'B (each round)':>36}{'B/A (means)':>14}")
for i, n in enumerate(names):
    ra = [r[i] for r in a]; rb = [r[i] for r in b]
    fa = " ".join(f"{x:g}" for x in ra); fb = " ".join(f"{x:g}" for x in rb)
    ratio = (sum(rb) / len(rb)) / (sum(ra) / len(ra)) if sum(ra) else float("nan")
    print(f"{n:32}{fa:>36}{fb:>36}{ratio:>14.3f}")
PY
  echo "machine: $(nproc) cores; $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
} | tee "$OUT/ab-flows${BENCH_SUFFIX:-}.txt"
