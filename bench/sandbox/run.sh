#!/usr/bin/env bash
# Runs a command (an agent) confined so that it cannot power off, reboot or
# reconfigure this machine, load kernel modules or see a single block device:
#
#   bench/sandbox/run.sh [--dir DIR] CMD [ARGS...]
#
# CMD runs in new mount and PID namespaces (inner.sh sets them up); it keeps
# the host network namespace so that a loopback listener is reachable, and
# `ip` is read-only inside. DIR (default: $BENCH_SANDBOX_DIR, else a new temp
# dir, printed on stderr)
# receives shim.log (every call a shim intercepted; empty after a clean run)
# and exec-stamp (wall time, in seconds, just before CMD is started).
#
# Stopping: `unshare --fork` ignores SIGTERM; SIGKILL this script's process
# (it execs unshare) and --kill-child sends TERM to inner.sh, which forwards
# it to CMD. SIGKILL of inner.sh (the namespace's PID 1) kills everything in
# the namespace.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${BENCH_SANDBOX_DIR:-}
if [[ ${1:-} == --dir ]]; then dir=$2; shift 2; fi
(($#)) || { echo "usage: $0 [--dir DIR] CMD [ARGS...]" >&2; exit 2; }
if [[ -z $dir ]]; then
    dir=$(mktemp -d -t bench-sandbox.XXXXXX)
    echo "sandbox: state in $dir" >&2
fi
mkdir -p "$dir"
: >"$dir/shim.log"
export BENCH_SANDBOX_DIR=$dir BENCH_SANDBOX_LOG=$dir/shim.log
exec unshare --mount --pid --fork --mount-proc --kill-child=SIGTERM \
    "$HERE/inner.sh" "$@"
