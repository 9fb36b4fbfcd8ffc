#!/usr/bin/env bash
# Install the Python tools the tests and CI use into a git-ignored venv (.venv), pinned:
# moto's server (a real DynamoDB/KMS HTTP API on loopback), cfn-lint, and authlib (a third-party
# OAuth client library the interop tests drive our endpoints with). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO_VERSION="5.2.5"
CFN_LINT_VERSION="1.58.0"
AUTHLIB_VERSION="1.6.5"
REQUESTS_VERSION="2.32.5"
VENV="$PWD/.venv"
stamp="$VENV/.bulwark-$MOTO_VERSION-$CFN_LINT_VERSION-$AUTHLIB_VERSION-$REQUESTS_VERSION"
if [[ -f "$stamp" ]]; then exit 0; fi
echo "[venv] installing moto[server]==$MOTO_VERSION cfn-lint==$CFN_LINT_VERSION authlib==$AUTHLIB_VERSION into .venv" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
  "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
  "authlib==$AUTHLIB_VERSION" "requests==$REQUESTS_VERSION" >&2
touch "$stamp"
