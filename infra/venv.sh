#!/usr/bin/env bash
# Install the Python tools the tests and CI use into git-ignored venvs, pinned: in .venv moto's
# server (a real DynamoDB/KMS HTTP API on loopback), cfn-lint, and authlib (a third-party OAuth
# client library the interop tests drive our endpoints with); in .venv-schemathesis (its own, so
# that its dependencies never move moto's) schemathesis, which checks the admin API against its
# OpenAPI document; in .venv-mcp (its own, for the same reason) the official MCP Python SDK,
# which tests/mcp/proof.py drives against a tenant's issuer (its dependency `cryptography` also
# makes tests/mcp/certs.py's throwaway CA). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION="4.32.5"
ST_VENV="$PWD/.venv-schemathesis"
st_stamp="$ST_VENV/.bulwark-$SCHEMATHESIS_VERSION"
if [[ ! -f "$st_stamp" ]]; then
  echo "[venv] installing schemathesis==$SCHEMATHESIS_VERSION into .venv-schemathesis" >&2
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
  touch "$st_stamp"
fi
MCP_VERSION="2.3.0"
MCP_VENV="$PWD/.venv-mcp"
mcp_stamp="$MCP_VENV/.bulwark-$MCP_VERSION"
if [[ ! -f "$mcp_stamp" ]]; then
  echo "[venv] installing mcp==$MCP_VERSION into .venv-mcp" >&2
  python3 -m venv "$MCP_VENV"
  "$MCP_VENV/bin/pip" install --quiet --disable-pip-version-check --no-input "mcp==$MCP_VERSION" </dev/null >&2
  touch "$mcp_stamp"
fi
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
