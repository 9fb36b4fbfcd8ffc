#!/usr/bin/env bash
# Cold start of every Lambda function (ARCHITECTURE "Small, fast functions"): each release
# binary is started 5 times on a minimal Lambda Runtime API (infra/cold_start.py) with moto as
# DynamoDB and KMS, and the time from process start to its first `invocation/next` is written to
# infra/bench-results/cold-start.txt. The token function is measured twice: as every function
# starts (no key material to prepare) and with its wrapping key, i.e. with the one DynamoDB read
# and KMS Decrypt of its key ring at cold start.
#
# The binaries are this machine's (x86_64, `cargo build --release`): the arm64 ones that
# infra/sam-build.sh builds cannot run here. Not a test: numbers for the record.
#
#   bash infra/cold-start.sh            # builds the release binaries first
#   NO_BUILD=1 bash infra/cold-start.sh # measures the ones in target/release as they are
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
RUNS="${RUNS:-5}"
BIN="$PWD/target/release"
mapfile -t FUNCTIONS < <(ls functions)
if [[ -z "${NO_BUILD:-}" ]]; then
  # shellcheck disable=SC2046
  cargo build --release --locked $(printf -- '-p %s ' "${FUNCTIONS[@]}")
fi

[[ -x .venv/bin/python ]] || bash infra/venv.sh >/dev/null
mkdir -p test-output
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
.venv/bin/python infra/moto_serve.py 127.0.0.1 "$PORT" >test-output/cold-start-moto.log 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null; wait "$MOTO_PID" 2>/dev/null || true' EXIT
ENDPOINT="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -s -o /dev/null "$ENDPOINT/moto-api/" && break
  kill -0 "$MOTO_PID" 2>/dev/null || { cat test-output/cold-start-moto.log >&2; exit 1; }
  sleep 0.1
done
PREFIX="bulwark-cold-"
.venv/bin/python infra/local_aws.py tables "$ENDPOINT" "$PREFIX" template.yaml >/dev/null

# The token function's key ring (as a stack deploys by default, SigningMode=kms-wrapped) and a
# client, made with the operator CLI if one is built; else those rows are left out.
specs=("${FUNCTIONS[@]}")
CLI=""
for c in target/release/bulwark target/debug/bulwark; do [[ -x "$c" ]] && { CLI="$c"; break; }; done
cli() {
  AWS_ENDPOINT_URL="$ENDPOINT" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    "$CLI" --json --backend dynamodb --table-prefix "$PREFIX" --issuer https://auth.example.test "$@"
}
if [[ -n "$CLI" ]]; then
  WRAPPING_KEY="$(.venv/bin/python infra/local_aws.py wrapping-key "$ENDPOINT" template.yaml)"
  cli --wrapping-key-id "$WRAPPING_KEY" keys rotate >/dev/null
  specs+=("token=BULWARK_WRAPPING_KEY_ID=$WRAPPING_KEY")
  cli tenant create cold >/dev/null
  cli scope add --tenant cold api:read Read >/dev/null
  CLIENT="$(cli client create --tenant cold --name cold --grant-type client_credentials --scope api:read)"
  CLIENT_ID="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$CLIENT")"
  CLIENT_SECRET="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$CLIENT")"
fi

out=infra/bench-results/cold-start.txt
{
  echo "# bash infra/cold-start.sh, $(date -u +%Y-%m-%d): process start to first invocation/next,"
  echo "# $RUNS starts each; x86_64 release binaries ($(nproc) cores, $(uname -r)); moto on loopback."
  .venv/bin/python infra/cold_start.py "$BIN" "$ENDPOINT" "$PREFIX" "$RUNS" "${specs[@]}"
  if [[ -n "$CLI" ]]; then
    echo "# warm: the token function's CPU time per client_credentials request (300 requests; the"
    echo "# wall time is mostly moto's)"
    .venv/bin/python infra/cold_start.py cpu "$BIN/token" "$ENDPOINT" "$PREFIX" 300 "$CLIENT_ID" "$CLIENT_SECRET" \
      "BULWARK_WRAPPING_KEY_ID=$WRAPPING_KEY"
  fi
} | tee "$out"
