#!/usr/bin/env bash
# `sam build` on this machine, offline: aws-sam-cli, cargo-lambda and zig come from PyPI into a
# git-ignored venv (.venv-sam) that is put first on PATH (sam looks for zig in the venv of the
# python3 on PATH). Builds every function for arm64 in release mode (fat LTO: about a minute and
# a half per function on two cores), prints each bootstrap's size and fails if one is over the
# 6,000,000-byte budget. Not part of every CI run.
#
#   bash infra/sam-build.sh           # then: sam deploy --guided (see README)
set -euo pipefail
cd "$(dirname "$0")/.."
SAM_VERSION="${SAM_VERSION:-1.170.0}"
CARGO_LAMBDA_VERSION="1.9.2"
VENV="$PWD/.venv-sam"
if [[ ! -x "$VENV/bin/sam" || ! -x "$VENV/bin/cargo-lambda" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" ziglang
fi
rustup target list --installed | grep -q aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
export PATH="$VENV/bin:$PATH" SAM_CLI_TELEMETRY=0
sam validate --lint --template template.yaml
sam build --template template.yaml --build-in-source
echo
echo "bootstrap sizes (bytes):"
for d in .aws-sam/build/*Function; do
  printf '%-28s %s\n' "$(basename "$d")" "$(stat -c %s "$d/bootstrap")"
done | tee infra/bench-results/bootstrap-sizes.txt
# The budget (ARCHITECTURE "Small, fast functions"): every bootstrap at most 6,000,000 bytes.
if awk '$2 > 6000000 { over = 1; print "over the 6,000,000-byte budget: " $1 > "/dev/stderr" } END { exit !over }' \
  infra/bench-results/bootstrap-sizes.txt; then
  exit 1
fi
