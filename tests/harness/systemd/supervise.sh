#!/usr/bin/env bash
# Owns one private systemd (see start.sh); not meant to be run by hand.
#
#   supervise.sh DIR OWNER_PID CLEANUP   (OWNER_PID 0: no owner; CLEANUP 1: rm -rf DIR at the end)
#
# Runs systemd in the namespaces and waits until systemd exits, the owner
# exits, or it is told to stop (TERM/INT/HUP). Then it tears down, whatever
# happened: PowerOff over the private bus, SIGKILL to the namespace if PID 1
# is still there after SDTEST_STOP_TIMEOUT seconds (default 10), and removal
# of the cgroup tree.
set -uo pipefail
DIR=$1 OWNER=$2 CLEANUP=${3:-0}
STOP_TIMEOUT=${SDTEST_STOP_TIMEOUT:-10}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ADDRESS=unix:path=$DIR/run/dbus/system_bus_socket
log() { echo "supervise[$$] $(date +%T.%N | cut -c1-12): $*"; }

# A cgroup2 hierarchy for the namespace: pure v2 host or hybrid (unified).
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then CG=/sys/fs/cgroup
elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then CG=/sys/fs/cgroup/unified
else log "no cgroup2 hierarchy"; exit 1; fi
CGDIR=$CG/sdtest-$$
mkdir -p "$CGDIR"
echo "$CGDIR" > "$DIR/cgroup.path"

SDPID=
teardown() {
  trap - EXIT TERM INT HUP
  if [ -n "$SDPID" ] && kill -0 "$SDPID" 2>/dev/null; then
    log "PowerOff"
    busctl --address="$ADDRESS" --timeout=3 call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
      org.freedesktop.systemd1.Manager PowerOff >/dev/null 2>&1 || log "PowerOff call failed"
    for _ in $(seq $((STOP_TIMEOUT * 10))); do
      kill -0 "$SDPID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SDPID" 2>/dev/null; then
      # unshare --kill-child takes PID 1, and so the whole namespace, with it
      log "still running after ${STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$SDPID" 2>/dev/null
    fi
    wait "$SDPID" 2>/dev/null
  fi
  # the kernel may need a moment to empty the cgroups of killed processes
  for _ in $(seq 50); do
    [ -d "$CGDIR" ] || break
    find "$CGDIR" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$CGDIR" ] && sleep 0.1
  done
  [ -d "$CGDIR" ] && log "could not remove $CGDIR"
  touch "$DIR/stopped"
  log "stopped"
  if [ "$CLEANUP" = 1 ]; then
    # the namespace (and so its mounts) is gone: only plain files remain
    rm -rf -- "$DIR"
  fi
}
trap teardown EXIT
trap 'exit 0' TERM INT HUP

(
  # Only this subshell (then unshare, then PID 1) enters the test cgroup, so
  # the supervisor can remove it afterwards; pid1.sh moves PID 1 on into a
  # leaf of it and unshares the cgroup namespace there.
  echo "$BASHPID" > "$CGDIR/cgroup.procs"
  export DIR CGDIR
  exec unshare --mount --propagation private --pid --fork --kill-child=SIGKILL --mount-proc \
       --uts --ipc bash "$HERE/pid1.sh" enter
) &
SDPID=$!
echo "$SDPID" > "$DIR/systemd.pid"
log "systemd namespace started (unshare pid $SDPID, owner $OWNER)"

if [ "$OWNER" != 0 ]; then
  tail --pid="$OWNER" -f /dev/null &
  watcher=$!
  wait -n "$SDPID" "$watcher"
  kill "$watcher" 2>/dev/null
  kill -0 "$OWNER" 2>/dev/null || log "owner $OWNER exited"
else
  wait "$SDPID"
fi
kill -0 "$SDPID" 2>/dev/null || log "systemd exited"
exit 0
