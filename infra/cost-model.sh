#!/usr/bin/env bash
# The cost model (infra/examples/cost_model.rs): every operation through the real router and the
# real DynamoDB and KMS adapters against moto, its AWS calls counted and priced with
# infra/prices.json. Writes infra/bench-results/cost-model.txt and checks the default stack's
# (kms-wrapped) goal lines, per million operations (issue 21): client_credentials $1.50
# (COST_GOAL), authorization_code (sign-in, code, redemption) $8.00, refresh_token $3.50,
# introspection $1.50. A met goal fails the run when exceeded; an open one (reported NOT MET)
# only when its line rises above today's cost (the ceilings at the end).
# COST_MODEL_TRACE=1 prints every DynamoDB call (table key, bytes) on stderr.
#
#   bash infra/cost-model.sh                          # starts its own moto
#   BULWARK_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT bash infra/cost-model.sh   # uses that one
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
GOAL="${COST_GOAL:-1.50}"
bash infra/venv.sh >/dev/null
if [[ -z "${BULWARK_TEST_AWS_ENDPOINT:-}" ]]; then
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  .venv/bin/python infra/moto_serve.py 127.0.0.1 "$PORT" >/tmp/cost-model-moto.$$.log 2>&1 &
  MOTO_PID=$!
  trap 'kill "$MOTO_PID" 2>/dev/null; wait "$MOTO_PID" 2>/dev/null || true; rm -f /tmp/cost-model-moto.$$.log' EXIT
  BULWARK_TEST_AWS_ENDPOINT="http://127.0.0.1:$PORT"
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$BULWARK_TEST_AWS_ENDPOINT/moto-api/" && break
    kill -0 "$MOTO_PID" 2>/dev/null || { cat /tmp/cost-model-moto.$$.log >&2; exit 1; }
    sleep 0.1
  done
fi
PREFIX="cost-$$-$RANDOM-"
SIGNING_KEY="$(.venv/bin/python infra/local_aws.py setup "$BULWARK_TEST_AWS_ENDPOINT" "$PREFIX" template.yaml)"
WRAPPING_KEY="$(.venv/bin/python infra/local_aws.py wrapping-key "$BULWARK_TEST_AWS_ENDPOINT" template.yaml)"
mkdir -p infra/bench-results
cargo run -q --locked -p bulwark --example cost_model -- "$BULWARK_TEST_AWS_ENDPOINT" "$PREFIX" "$SIGNING_KEY" "$WRAPPING_KEY" \
  | tee infra/bench-results/cost-model.txt
# The goals of issue 21, by the line's name as it prints: name|goal|ceiling. A line over its goal
# but not over its ceiling (today's cost, while the goal is open) is reported NOT MET and does not
# fail the run; a line over its ceiling (a regression) does. Met goals have ceiling = goal.
failed=0
while IFS='|' read -r name goal ceiling; do
  line="$(awk -v n="$name " 'index($0, n) == 1 && / kms-wrapped +\$/' infra/bench-results/cost-model.txt | head -1)"
  if [[ -z "$line" ]]; then
    echo "[cost-model] FAILED: no kms-wrapped line named '$name'" >&2
    failed=1
    continue
  fi
  cost="$(sed -E 's/.* kms-wrapped +\$([0-9.]+) per million.*/\1/' <<<"$line")"
  if python3 -c "import sys; sys.exit(0 if float('$cost') <= float('$goal') else 1)"; then
    echo "[cost-model] $name: \$$cost per million (goal \$$goal)"
  elif python3 -c "import sys; sys.exit(0 if float('$cost') <= float('$ceiling') else 1)"; then
    echo "[cost-model] $name: \$$cost per million: goal \$$goal NOT MET (issue 21 part 3 open; docs/scale.md says why); not above \$$ceiling"
  else
    echo "[cost-model] FAILED: $name costs \$$cost per million, over \$$ceiling (goal \$$goal)" >&2
    failed=1
  fi
done <<EOF
client_credentials|$GOAL|$GOAL
authorization_code (sign-in, code, redemption)|8.00|14.00
refresh_token|3.50|3.50
introspection|1.50|1.90
EOF
exit "$failed"
