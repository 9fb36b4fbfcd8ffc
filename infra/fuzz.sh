#!/usr/bin/env bash
# Fuzz the parsers and validators (tests/fuzz, cargo-fuzz + libFuzzer): build every target, run
# each for SECONDS (default 30) from a fresh working corpus seeded with tests/fuzz/seeds/<target>
# (the seeds are only read; tests/fuzz/dicts/<target>.dict, if there, is libFuzzer's
# dictionary), and print per target the inputs tried and the crashes found.
# Summary: test-output/fuzz-summary.txt; logs and crashing inputs: test-output/fuzz/<target>/.
# Exits non-zero if a target crashed (a panic, a failed invariant, a timeout, out of memory) or
# did not run.
#
#   bash infra/fuzz.sh            # 30 s per target
#   bash infra/fuzz.sh 300        # longer
#   FUZZ_TARGETS="params jws_verify" bash infra/fuzz.sh 60   # some targets only
#
# Reproduce a crash: target/fuzz/x86_64-unknown-linux-gnu/release/<target> <crash file>
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

CARGO_FUZZ_VERSION="0.13.2"
seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
  echo "usage: bash infra/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 2
fi

fuzz_dir="tests/fuzz"
target_dir="$PWD/target/fuzz"
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
out="test-output/fuzz"
summary="test-output/fuzz-summary.txt"
# Every [[bin]] of the fuzz crate, unless FUZZ_TARGETS names some.
read -r -a targets <<<"${FUZZ_TARGETS:-$(awk -F'"' '/^\[\[bin\]\]/ {bin = 1; next} bin && /^name *=/ {print $2; bin = 0}' "$fuzz_dir/Cargo.toml" | tr '\n' ' ')}"
if [[ "${#targets[@]}" -eq 0 ]]; then
  echo "[fuzz] no fuzz target found in $fuzz_dir/Cargo.toml" >&2
  exit 1
fi

if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
  echo "[fuzz] installing cargo-fuzz $CARGO_FUZZ_VERSION"
  t0=$SECONDS
  cargo install --locked --quiet --version "$CARGO_FUZZ_VERSION" cargo-fuzz </dev/null
  echo "[fuzz] cargo-fuzz installed in $((SECONDS - t0)) s"
fi

# Release build with debug assertions and overflow checks (cargo fuzz's default) and coverage
# instrumentation; 16 codegen units (measured on 2 cores: 91 s from scratch instead of 113 s, for
# ~10% fewer executions; a --dev build takes 53 s but runs 7-40x slower). No sanitizer: the code
# under test is safe Rust (`unsafe_code = forbid`), and with `-s none` cargo fuzz passes no -Z
# flag, so the stable compiler builds it as it is (no nightly, no RUSTC_BOOTSTRAP).
echo "[fuzz] building ${targets[*]}"
t0=$SECONDS
mkdir -p "$out"
lock_before="$(cksum <"$fuzz_dir/Cargo.lock")"
if ! cargo fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" --sanitizer none --codegen-units 16 </dev/null; then
  echo "fuzz: FAILED: the fuzz targets did not build" | tee "$summary" >&2
  exit 1
fi
if [[ "$(cksum <"$fuzz_dir/Cargo.lock")" != "$lock_before" ]]; then
  echo "[fuzz] note: cargo updated $fuzz_dir/Cargo.lock (a dependency of shared changed); commit it" >&2
fi
build_seconds=$((SECONDS - t0))
echo "[fuzz] built in ${build_seconds} s"

{
  echo "cargo-fuzz $CARGO_FUZZ_VERSION, $(rustc --version), ${seconds} s per target, built in ${build_seconds} s"
  printf '%-16s %12s %8s %8s %s\n' target executions crashes corpus result
} >"$summary"

status=0
failed=()
for t in "${targets[@]}"; do
  bin="$bin_dir/$t"
  seeds="$fuzz_dir/seeds/$t"
  corpus="$target_dir/corpus/$t"
  artifacts="$out/$t/artifacts"
  log="$out/$t/fuzz.log"
  rm -rf "${corpus:?}" "${out:?}/${t:?}"
  mkdir -p "$corpus" "$artifacts"
  inputs=("$corpus")
  [[ -d "$seeds" ]] && inputs+=("$seeds")
  options=(-max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1)
  [[ -f "$fuzz_dir/dicts/$t.dict" ]] && options+=(-dict="$fuzz_dir/dicts/$t.dict")
  rc=0
  if [[ -x "$bin" ]]; then
    # The first corpus directory receives new inputs; the seeds are only read.
    RUST_BACKTRACE=1 "$bin" "${options[@]}" -artifact_prefix="$artifacts/" "${inputs[@]}" </dev/null >"$log" 2>&1 || rc=$?
  else
    echo "no binary at $bin" >"$log"
    rc=127
  fi
  execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)"
  if [[ -z "$execs" ]]; then
    # No final stats (killed, or died before the end): take the last status line's count.
    execs="$( (grep -Eo '^#[0-9]+' "$log" || true) | tail -1 | tr -d '#')"
  fi
  execs="${execs:-0}"
  crashes="$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)"
  kept="$(find "$corpus" -type f | wc -l)"
  result="ok"
  if [[ "$crashes" -gt 0 ]]; then
    result="CRASH"
  elif [[ "$rc" -ne 0 ]]; then
    result="FAILED (exit $rc)"
  elif [[ "$execs" -eq 0 ]]; then
    result="DID NOT RUN"
  fi
  line="$(printf '%-16s %12s %8s %8s %s' "$t" "$execs" "$crashes" "$kept" "$result")"
  echo "$line" >>"$summary"
  echo "[fuzz] $t: $execs inputs tried in ${seconds} s, $crashes crashes, corpus $kept inputs: $result"
  if [[ "$result" != "ok" ]]; then
    status=1
    failed+=("$t")
    {
      echo "--- $t (log: $log)"
      for f in "$artifacts"/*; do
        [[ -f "$f" ]] || continue
        echo "input $f (hex): $(od -An -tx1 -v "$f" | tr -d ' \n' | cut -c1-400)"
        echo "reproduce: $bin $f"
      done
      grep -E -m1 -A3 'panicked at' "$log" || true
    } | tee -a "$summary" >&2
    tail -40 "$log" >&2
  fi
done

if [[ "$status" -ne 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]}" | tee -a "$summary" >&2
else
  echo "fuzz: ${#targets[@]} targets, no crash" | tee -a "$summary"
fi
exit "$status"
