#!/usr/bin/env bash
# Lint template.yaml with cfn-lint (pinned, from the project venv).
set -euo pipefail
cd "$(dirname "$0")/.."
bash infra/venv.sh
.venv/bin/cfn-lint template.yaml
echo "[cfn-lint] template.yaml: clean"
