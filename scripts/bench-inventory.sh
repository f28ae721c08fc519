#!/usr/bin/env bash
# Side-by-side inventory benchmark: IPA 13.0.0 (bench/setup-ipa.sh's venv, run in
# the protective sandbox) against `ironic-agent inventory`, N runs each, medians printed.
# The issue's target: ours <= 1/10 of IPA's median.
#
#   scripts/bench-inventory.sh [runs]        (default 7; needs a release build)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${1:-7}
bash "$HERE/bench/setup-ipa.sh" >&2
BIN=${IRONIC_AGENT_BIN:-$HERE/target/release/ironic-agent}
[ -x "$BIN" ] || bash "$HERE/scripts/build-release.sh" >/dev/null
CMDLINE=$(mktemp); trap 'rm -f "$CMDLINE"' EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_runs() {
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
  done
}
ipa=$(time_runs "$HERE/tests/harness/ipa/sandboxed-python.sh" "$HERE/tests/harness/ipa/inventory.py" | median)
ours=$(time_runs "$BIN" --cmdline-file "$CMDLINE" inventory | median)
awk -v i="$ipa" -v o="$ours" -v n="$RUNS" 'BEGIN {
  printf "inventory median over %d runs: IPA 13.0.0 %.3f s, ironic-agent %.3f s (%.1f%% of IPA, %.0fx faster)\n",
         n, i, o, 100 * o / i, i / o }'
