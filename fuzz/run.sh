#!/usr/bin/env bash
# Coverage-guided fuzzing of every target with libFuzzer (`cargo fuzz`, fuzz/README.md),
# bounded in time and memory, on the stable toolchain. Writes the figures per target to
# target/reliability/libfuzzer.json (docs/reliability.md is generated from them) and
# fails when any target crashed (the input is left in fuzz/artifacts/<target>/).
#   FUZZ_SECONDS     seconds per target (default 20)
#   FUZZ_RSS_MB      memory limit per target, MiB (default 1024)
#   FUZZ_TARGETS     targets to run (default: all of `cargo fuzz list`)
#   FUZZ_TARGET_DIR  the fuzz build's own target dir (default $IRONIC_AGENT_CACHE/fuzz-target,
#                    kept between CI runs so only the project's crates are rebuilt)
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
cache=${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}
export PATH="$cache/cargo-fuzz/bin:$PATH"
export CARGO_BUILD_JOBS=${JOBS:-2}
seconds=${FUZZ_SECONDS:-20}
rss=${FUZZ_RSS_MB:-1024}
target_dir=${FUZZ_TARGET_DIR:-$cache/fuzz-target}
out="$root/target/reliability"
mkdir -p "$out"

command -v cargo-fuzz >/dev/null || { echo "fuzz/run.sh: cargo-fuzz missing (make deps)" >&2; exit 1; }
# Stable toolchain: no sanitizer (ASan needs -Zsanitizer); SanitizerCoverage, the
# debug assertions and the overflow checks are stable flags.
cargo fuzz build --sanitizer none --target-dir "$target_dir"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
echo "{" > "$work/figures.json"
first=1
for target in $targets; do
    seeds="corpus/$target"
    mkdir -p "$work/$target" "artifacts/$target"
    log="$out/libfuzzer-$target.log"
    started=$(date +%s.%N)
    # New inputs go to the scratch corpus (first directory); the repo's seeds are only read.
    set +e
    cargo fuzz run --sanitizer none --target-dir "$target_dir" "$target" \
        "$work/$target" "$seeds" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss" -malloc_limit_mb="$rss" \
        -timeout=10 -max_len=65536 -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    elapsed=$(python3 -c "import time; print(round(time.time() - $started, 1))")
    runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -1)
    cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$log" | tail -1)
    crashes=$(find "artifacts/$target" -type f -newer "$work/figures.json" | wc -l)
    if [[ $status -ne 0 || -z "$runs" ]]; then
        failed+=("$target")
        ((crashes == 0)) && crashes=1
        echo "fuzz/run.sh: $target FAILED (exit $status); see $log and fuzz/artifacts/$target/" >&2
        tail -n 30 "$log" >&2
    fi
    echo "fuzz $target: ${runs:-0} runs, coverage ${cov:-?}, crashes $crashes, ${elapsed}s"
    ((first)) || echo "," >> "$work/figures.json"
    first=0
    printf '  "%s": {"executions": %s, "seconds": %s, "coverage": %s, "crashes": %s, "seed_files": %s, "new_inputs": %s, "max_total_time": %s, "rss_limit_mb": %s}\n' \
        "$target" "${runs:-0}" "$elapsed" "${cov:-0}" "$crashes" \
        "$(find "$seeds" -type f | wc -l)" "$(find "$work/$target" -type f | wc -l)" \
        "$seconds" "$rss" >> "$work/figures.json"
done
echo "}" >> "$work/figures.json"
python3 -m json.tool "$work/figures.json" > "$out/libfuzzer.json"
if ((${#failed[@]})); then
    echo "fuzz/run.sh: crashing targets: ${failed[*]}" >&2
    exit 1
fi
