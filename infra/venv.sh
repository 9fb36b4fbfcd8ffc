#!/usr/bin/env bash
# Install the Python tools the tests and CI use into a git-ignored venv (.venv), pinned:
# moto's server (a real DynamoDB/KMS HTTP API on loopback) and cfn-lint. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO_VERSION="5.2.5"
CFN_LINT_VERSION="1.58.0"
VENV="$PWD/.venv"
stamp="$VENV/.bulwark-$MOTO_VERSION-$CFN_LINT_VERSION"
if [[ -f "$stamp" ]]; then exit 0; fi
echo "[venv] installing moto[server]==$MOTO_VERSION cfn-lint==$CFN_LINT_VERSION into .venv" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" >&2
touch "$stamp"
