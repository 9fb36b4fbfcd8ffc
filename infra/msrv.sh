#!/usr/bin/env bash
# Prove the workspace's minimum supported Rust version (`rust-version` in Cargo.toml) without
# another toolchain:
#
#  1. every crate in the dependency graph (all features, dev-dependencies included, as locked)
#     declares a `rust-version` no newer than ours; otherwise it names them and the MSRV the
#     workspace really has;
#  2. our own code: every workspace member inherits that `rust-version`, nothing overrides it
#     (clippy.toml `msrv`) or silences clippy's `incompatible_msrv` lint, and the clippy in use
#     has that lint on by default and reads `rust-version` (a two-crate canary: an API newer
#     than the crate's rust-version is flagged, the same API within it is not). CI runs
#     `cargo clippy --all-targets -- -D warnings`, so a use of a newer std API fails CI.
#
#   bash infra/msrv.sh               # the checks above (seconds)
#   bash infra/msrv.sh --toolchain   # also `cargo check` with that exact toolchain (rustup
#                                    # downloads it if needed: not for CI, which cannot)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

with_toolchain=0
[[ "${1:-}" == "--toolchain" ]] && with_toolchain=1

msrv="$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["workspace"]["package"]["rust-version"])')"
echo "[msrv] workspace rust-version: $msrv; compiler: $(rustc --version)"
fail=0

# 1. Dependencies.
metadata="$(mktemp)"
canary="$(mktemp -d)"
trap 'rm -rf "$metadata" "$canary"' EXIT
cargo metadata --format-version 1 --locked --all-features >"$metadata"
python3 - "$msrv" "$metadata" <<'EOF' || fail=1
import json, sys

def ver(s):
    parts = [int(p) for p in s.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))

msrv, path = sys.argv[1], sys.argv[2]
meta = json.load(open(path))
resolved = {n["id"] for n in meta["resolve"]["nodes"]}
members = set(meta["workspace_members"])
packages = [p for p in meta["packages"] if p["id"] in resolved]

bad_members = [p["name"] for p in packages
               if p["id"] in members and ver(p.get("rust_version") or "0") != ver(msrv)]
newer = sorted(((ver(p["rust_version"]), p["name"], p["version"]) for p in packages
                if p["id"] not in members and p.get("rust_version") and ver(p["rust_version"]) > ver(msrv)),
               reverse=True)
declared = sum(1 for p in packages if p["id"] not in members and p.get("rust_version"))
top = max((ver(p["rust_version"]) for p in packages if p["id"] not in members and p.get("rust_version")), default=None)
print(f"[msrv] {len(packages) - len(members)} dependencies, {declared} declare a rust-version; "
      f"the newest declared: {'.'.join(map(str, top)) if top else 'none'}")
ok = True
if bad_members:
    print(f"[msrv] FAILED: workspace members without rust-version {msrv}: {', '.join(bad_members)}")
    ok = False
if newer:
    need = ".".join(map(str, newer[0][0]))
    print(f"[msrv] FAILED: {len(newer)} dependencies need a newer Rust than {msrv}; the real MSRV is {need}:")
    for v, name, version in newer:
        print(f"[msrv]   {name} {version}: rust-version {'.'.join(map(str, v))}")
    ok = False
sys.exit(0 if ok else 1)
EOF

# 2. Our code: nothing turns the lint off or moves the MSRV clippy sees ...
for f in clippy.toml .clippy.toml; do
  if [[ -f "$f" ]] && grep -qE '^\s*msrv\s*=' "$f"; then
    echo "[msrv] FAILED: $f sets msrv, which overrides rust-version for clippy" >&2
    fail=1
  fi
done
silenced="$( {
  grep -rnE --include='*.rs' '(allow|expect)\(.*clippy::(incompatible_msrv|suspicious)' shared infra functions tests || true
  grep -rnE --include='Cargo.toml' '^\s*(incompatible_msrv|suspicious)\s*=.*(allow|expect)' Cargo.toml shared infra functions tests || true
} | grep -v '^tests/fuzz/' || true)"
if [[ -n "$silenced" ]]; then
  echo "[msrv] FAILED: incompatible_msrv is silenced:" >&2
  echo "$silenced" >&2
  fail=1
fi

# ... and the clippy in use has incompatible_msrv on by default and reads rust-version.
# std::fs::File::lock is stable since Rust 1.89.0.
for v in 1.88 1.89; do
  mkdir -p "$canary/msrv$v/src"
  cat >"$canary/msrv$v/Cargo.toml" <<EOF
[package]
name = "msrv-canary"
version = "0.0.0"
edition = "2021"
rust-version = "$v"
publish = false
[workspace]
EOF
  echo 'fn main() { let _ = std::fs::File::open("/dev/null").map(|f| f.lock()); }' >"$canary/msrv$v/src/main.rs"
  CARGO_TARGET_DIR="$canary/target" cargo clippy --quiet --manifest-path "$canary/msrv$v/Cargo.toml" \
    >"$canary/msrv$v.log" 2>&1 || true
done
if grep -q 'incompatible_msrv' "$canary/msrv1.88.log" && ! grep -q 'incompatible_msrv' "$canary/msrv1.89.log"; then
  echo "[msrv] clippy's incompatible_msrv is on by default and follows rust-version (canary flagged at 1.88, not at 1.89)"
else
  echo "[msrv] FAILED: clippy did not flag File::lock (Rust 1.89) under rust-version 1.88 (or flagged it under 1.89):" >&2
  cat "$canary/msrv1.88.log" "$canary/msrv1.89.log" >&2
  fail=1
fi

# 3. Optionally, the real thing.
if [[ "$with_toolchain" -eq 1 ]]; then
  toolchain="$msrv"
  [[ "$toolchain" =~ ^[0-9]+\.[0-9]+$ ]] && toolchain="$toolchain.0"
  t0=$SECONDS
  rustup toolchain install "$toolchain" --profile minimal </dev/null
  echo "[msrv] toolchain $toolchain ready in $((SECONDS - t0)) s; cargo +$toolchain check"
  t0=$SECONDS
  if CARGO_TARGET_DIR="${MSRV_TARGET_DIR:-$PWD/target/msrv}" cargo "+$toolchain" check --workspace --locked --all-targets --all-features </dev/null; then
    echo "[msrv] cargo +$toolchain check passed in $((SECONDS - t0)) s"
  else
    echo "[msrv] FAILED: cargo +$toolchain check" >&2
    fail=1
  fi
fi

if [[ "$fail" -ne 0 ]]; then
  echo "msrv: FAILED" >&2
  exit 1
fi
echo "msrv: rust-version $msrv holds"
