#!/usr/bin/env bash
# Fuzzing, bounded: builds the cargo-fuzz targets (libFuzzer, coverage
# instrumentation, no sanitizer: the code under test is safe Rust) and runs
# each for FUZZ_SECONDS (default 30 in CI) from its seed corpus and every
# input a fuzzer ever found (regressions/). A crash or a broken invariant
# fails the run and leaves the input in fuzz/artifacts/<target>/.
#
# Longer runs: FUZZ_SECONDS=3600 bash fuzz/ci.sh, or one target with
#   cd fuzz && cargo fuzz run -s none unpack_tar seeds/unpack_tar regressions/unpack_tar
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seconds=${FUZZ_SECONDS:-30}
targets=(${FUZZ_TARGETS:-unpack_tar import_archive manifest reference})

# cargo-fuzz from crates.io, pinned; built once per machine.
if ! cargo fuzz --version 2>/dev/null | grep -q '^cargo-fuzz 0.13.2$'; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

# `-s none`: no ASan, so no nightly-only -Zsanitizer flag; the
# instrumentation flags cargo-fuzz passes then work on stable rustc.
cargo fuzz build -s none

# New inputs go to a throwaway corpus; seeds and regressions stay as
# committed (libFuzzer adds to the first corpus directory only).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    echo "-- $t (${seconds}s)"
    mkdir -p "$work/$t" "regressions/$t" "artifacts/$t"
    log="$work/$t.log"
    if ! cargo fuzz run -s none "$t" "$work/$t" "seeds/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
        -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"$log" 2>&1; then
        grep -A12 "panicked" "$log" | cut -c1-400 >&2 || tail -40 "$log" | cut -c1-400 >&2
        echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^INFO: seed corpus' "$log" || true
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each: no crash, no broken invariant"
