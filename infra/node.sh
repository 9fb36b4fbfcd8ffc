#!/usr/bin/env bash
# Install the Node clients the interop tests drive Bulwark with (panva's openid-client 6, and
# what it depends on), exactly as tests/interop/node/package-lock.json pins them, into the
# git-ignored tests/interop/node/node_modules. Needs the machine's Node.js 20 and npm.
# Idempotent: a stamp of the lockfile's hash skips a second install.
set -euo pipefail
cd "$(dirname "$0")/../tests/interop/node"
command -v node >/dev/null || { echo "[node] node is not installed (Node.js 20 is required)" >&2; exit 1; }
stamp="node_modules/.bulwark-$(sha256sum package-lock.json | cut -c1-16)"
if [[ -f "$stamp" ]]; then exit 0; fi
echo "[node] installing tests/interop/node from package-lock.json (npm ci)" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
touch "$stamp"
