#!/usr/bin/env bash
# Dependency policy (cargo-deny, config .ci/deny.toml) for the whole workspace, all features:
# licenses (permissive, OSI-approved, listed), bans (one version of each crypto crate; no
# openssl), sources (crates.io only). Installs a pinned cargo-deny if it is missing.
#
# The `advisories` check is not run: it needs the RustSec advisory database, which cargo-deny
# clones from GitHub, and GitHub cannot be reached from CI (nor from the developers' machines).
# Where it can, run: cargo deny --manifest-path Cargo.toml --config .ci/deny.toml check advisories
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

CARGO_DENY_VERSION="0.20.2"
if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
  echo "[deny] installing cargo-deny $CARGO_DENY_VERSION"
  t0=$SECONDS
  cargo install --locked --quiet --version "$CARGO_DENY_VERSION" cargo-deny </dev/null
  echo "[deny] cargo-deny installed in $((SECONDS - t0)) s"
fi

cargo deny --all-features --locked --manifest-path Cargo.toml --config .ci/deny.toml \
  check licenses bans sources </dev/null
