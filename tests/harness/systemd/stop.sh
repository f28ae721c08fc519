#!/usr/bin/env bash
# Stop the private systemd started by start.sh for DIR and wait until it and
# its cgroup are gone. Safe to call twice and when nothing runs.
#
#   stop.sh DIR
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR=$1
PIDFILE=$DIR/supervise.pid
TIMEOUT=${SDTEST_STOP_TIMEOUT:-10}
[ -f "$PIDFILE" ] || exit 0
pid=$(cat "$PIDFILE" 2>/dev/null)
[[ $pid =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ] || { echo "stop.sh: bad pid '$pid' in $PIDFILE" >&2; exit 1; }
# only signal our own supervisor, never a recycled pid
if grep -qs supervise.sh "/proc/$pid/cmdline"; then
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq $(((TIMEOUT + 5) * 10))); do
    grep -qs supervise.sh "/proc/$pid/cmdline" || break
    # a zombie keeps its cmdline empty, so the grep above ends the loop
    sleep 0.1
  done
  if grep -qs supervise.sh "/proc/$pid/cmdline"; then
    echo "stop.sh: supervisor $pid did not finish tearing down" >&2
    exit 1
  fi
fi
rm -f "$PIDFILE"
