#!/usr/bin/env bash
# Benchmark: two builds of `bulwark serve` on the token path, interleaved. Each serves its own
# temporary data dir with one client_credentials client; then ROUNDS rounds of oha (N requests
# at c=16) against each in turn, the order rotating. Reports each build's rate and its server's
# CPU time (user + system, every thread) per request: on 2 cores shared with other work the rate
# moves by ±20% between runs, the CPU per request by a few percent.
#
#   BENCH_A=path/to/old/bulwark bash infra/bench-ab.sh     # A against this checkout's serve build
#   BENCH_A=... BENCH_B=path/to/new/bulwark ROUNDS=10 N=20000 bash infra/bench-ab.sh
#
# Writes infra/bench-results/ab$BENCH_SUFFIX.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="$ROOT/infra/bench-results"
mkdir -p "$OUT"
OHA="${OHA:-${PEER_BENCH_HOME:-$HOME/.cache/bulwark-peer-bench}/.tools/bin/oha}"
[[ -x "$OHA" ]] || { echo "ab: oha not found at $OHA (infra/bench-login-storm.sh installs it)" >&2; exit 2; }
[[ -n "${BENCH_A:-}" ]] || { echo "ab: set BENCH_A to the build to compare against" >&2; exit 2; }
ROUNDS="${ROUNDS:-10}"
N="${N:-20000}"
PORT="${BENCH_PORT:-18611}"
if [[ -z "${BENCH_B:-}" ]]; then
  echo "[ab] building bulwark (--profile serve)" >&2
  cargo build --profile serve --locked -p bulwark --bin bulwark >&2
  BENCH_B="${CARGO_TARGET_DIR:-$ROOT/target}/serve/bulwark"
fi
TICK_US=$((1000000 / $(getconf CLK_TCK)))

PIDS=(); DIRS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "${DIRS[@]}"
}
trap cleanup EXIT
AUTHS=()
for i in 0 1; do
  bin="$BENCH_A"; [[ $i == 1 ]] && bin="$BENCH_B"
  D="$(mktemp -d)"; DIRS+=("$D")
  export BULWARK_DATA_DIR="$D"
  "$bin" --json tenant create bench >/dev/null
  "$bin" --json scope add --tenant bench api:read "Read" >/dev/null
  C="$("$bin" --json client create --tenant bench --name b --grant-type client_credentials --scope api:read)"
  AUTHS+=("$(python3 -c 'import json,sys,base64;c=json.loads(sys.argv[1]);print(base64.b64encode((c["client_id"]+":"+c["client_secret"]).encode()).decode())' "$C")")
  RUST_LOG=warn "$bin" serve --addr "127.0.0.1:$((PORT + i))" >/dev/null 2>&1 &
  PIDS+=("$!")
done
for i in 0 1; do
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$((PORT + i))/.well-known/jwks.json" >/dev/null && break
    sleep 0.1
  done
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
RAW="$(mktemp)"; DIRS+=("$RAW")
for r in $(seq 1 "$ROUNDS"); do
  for k in 0 1; do
    i=$(( (k + r) % 2 ))
    before="$(cpu "${PIDS[$i]}")"
    "$OHA" -n "$N" -c 16 -m POST -H "Authorization: Basic ${AUTHS[$i]}" \
      -H 'Content-Type: application/x-www-form-urlencoded' -d 'grant_type=client_credentials' \
      --no-tui --output-format json "http://127.0.0.1:$((PORT + i))/oauth2/token" >"$RAW.json"
    after="$(cpu "${PIDS[$i]}")"
    python3 - "$RAW.json" "$r" "$([[ $i == 0 ]] && echo A || echo B)" "$((after - before))" "$TICK_US" "$N" <<'PY' | tee -a "$RAW" >&2
import json, sys
d = json.load(open(sys.argv[1]))
r, name, ticks, tick_us, n = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
codes = d["statusCodeDistribution"]
ok = codes.get("200", 0)
rate = d["summary"]["requestsPerSec"] * ok / max(1, sum(codes.values()))
print(f"{r} {name} {rate:.0f} {d['latencyPercentiles']['p99'] * 1000:.2f} {ticks * tick_us / n:.1f} {sum(codes.values()) - ok}")
PY
  done
done
rm -f "$RAW.json"

{
  echo "client_credentials c=16, $N requests a run, $ROUNDS interleaved rounds"
  echo "A: ${BENCH_LABEL_A:-$BENCH_A}"
  echo "B: ${BENCH_LABEL_B:-$BENCH_B}"
  python3 - "$RAW" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"{'round':>5} {'build':>5} {'200/s':>8} {'p99_ms':>7} {'cpu_us/req':>10} {'errors':>6}")
for r in rows:
    print(f"{r[0]:>5} {r[1]:>5} {r[2]:>8} {r[3]:>7} {r[4]:>10} {r[5]:>6}")
med = {b: (statistics.median(float(r[2]) for r in rows if r[1] == b),
           statistics.median(float(r[4]) for r in rows if r[1] == b)) for b in ("A", "B")}
for b in ("A", "B"):
    print(f"{b}: median {med[b][0]:.0f}/s, {med[b][1]:.1f} us CPU per request")
print(f"B/A: rate {med['B'][0] / med['A'][0]:.3f}, CPU per request {med['B'][1] / med['A'][1]:.3f}")
PY
  echo "machine: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} | tee "$OUT/ab${BENCH_SUFFIX:-}.txt"
