#!/usr/bin/env bash
# Stop the Ironic started by start.sh for RUN_DIR.
#
#   stop.sh RUN_DIR
#
# SIGTERM to the whole process group (cotyledon master + workers), wait up to
# IRONIC_HARNESS_STOP_TIMEOUT seconds (default 10), then SIGKILL the group:
# a master whose worker died at startup ignores SIGTERM. Safe to call twice
# and when nothing runs. Exit 0 once the group is gone.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 RUN_DIR" >&2; exit 2; }
RUN_DIR=$1
PIDFILE=$RUN_DIR/ironic.pid
TIMEOUT=${IRONIC_HARNESS_STOP_TIMEOUT:-10}

[ -f "$PIDFILE" ] || exit 0
pgid=$(cat "$PIDFILE" 2>/dev/null)
if ! [[ $pgid =~ ^[0-9]+$ ]] || [ "$pgid" -le 1 ] \
   || [ "$pgid" = "$(ps -o pgid= -p $$ | tr -d ' ')" ]; then
  echo "stop.sh: refusing to signal process group '$pgid' from $PIDFILE" >&2
  exit 1
fi

# A member that is not yet a zombie. Zombies count as gone: once reparented,
# the master may wait a second or two for PID 1 to reap it.
group_alive() {
  ps -e -o pgid=,stat= | awk -v g="$pgid" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

t0=$(date +%s.%N)
how="was not running"
if group_alive; then
  kill -TERM -- "-$pgid" 2>/dev/null
  how="stopped (SIGTERM)"
  deadline=$(( $(date +%s) + TIMEOUT ))
  while group_alive && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  if group_alive; then
    kill -KILL -- "-$pgid" 2>/dev/null
    how="killed (SIGKILL after ${TIMEOUT} s)"
    for _ in $(seq 1 50); do group_alive || break; sleep 0.1; done
  fi
fi
if group_alive; then
  echo "stop.sh: process group $pgid still alive" >&2
  exit 1
fi
rm -f "$PIDFILE"
echo "ironic-harness stop: pgid $pgid $how in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
