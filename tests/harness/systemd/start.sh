#!/usr/bin/env bash
# Boot a private, REAL systemd as PID 1 of new pid/mount/cgroup/uts/ipc
# namespaces, with only our units, and wait until it owns
# org.freedesktop.systemd1 on its private system bus.
#
#   start.sh DIR [--owner PID] [--cleanup] [--units UNIT_DIR]...
#
# DIR/units      unit path of the private systemd (ours: units/ + test-units/
#                from this directory, plus plain copies of the basic targets;
#                a test may add more and call Manager.Reload or LoadUnit)
# DIR/run        becomes /run inside; the bus socket is
#                DIR/run/dbus/system_bus_socket, units may write DIR/run/sdtest
# DIR/kmsg.log   PID 1's log
# DIR/bus.address  the D-Bus address for DBUS_SYSTEM_BUS_ADDRESS (also printed)
#
# The namespace is owned by a small supervisor (supervise.sh) in its own
# session. It tears everything down (PowerOff, SIGKILL fallback, cgroup
# removal) when stop.sh asks, when systemd dies, or, with --owner, when the
# process PID exits: a test binary that shares one instance between tests
# can simply exit. With --cleanup the supervisor deletes DIR after teardown.
# Needs root, unshare (util-linux), systemd and dbus-daemon.
# SDTEST_START_TIMEOUT (seconds, default 20) bounds the wait.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TIMEOUT=${SDTEST_START_TIMEOUT:-20}

usage() { echo "usage: $0 DIR [--owner PID] [--cleanup] [--units UNIT_DIR]..." >&2; exit 2; }
[ $# -ge 1 ] || usage
DIR=$1; shift
OWNER=0 CLEANUP=0
extra_units=()
while [ $# -gt 0 ]; do
  case $1 in
    --owner) [ $# -ge 2 ] || usage; OWNER=$2; shift 2 ;;
    --units) [ $# -ge 2 ] || usage; extra_units+=("$2"); shift 2 ;;
    --cleanup) CLEANUP=1; shift ;;
    *) usage ;;
  esac
done
[[ $OWNER =~ ^[0-9]+$ ]] || usage
[ "$(id -u)" = 0 ] || { echo "start.sh: needs root (namespaces, cgroups)" >&2; exit 1; }
for bin in unshare busctl /usr/lib/systemd/systemd /usr/bin/dbus-daemon; do
  command -v "$bin" >/dev/null || { echo "start.sh: missing $bin" >&2; exit 1; }
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if [ -f "$DIR/supervise.pid" ] && kill -0 "$(cat "$DIR/supervise.pid")" 2>/dev/null; then
  echo "start.sh: already running for $DIR (supervisor $(cat "$DIR/supervise.pid"))" >&2
  exit 1
fi
SOCKET=$DIR/run/dbus/system_bus_socket
# sun_path holds 108 bytes including the terminating NUL
[ ${#SOCKET} -lt 108 ] || { echo "start.sh: DIR too long for a unix socket path: $SOCKET" >&2; exit 2; }

rm -rf "$DIR/units" "$DIR/run"
mkdir -p "$DIR/units" "$DIR/run/sdtest"
for t in sysinit basic sockets paths timers slices shutdown local-fs swap; do
  # plain copies: no .wants/ directories come along
  cp "/lib/systemd/system/$t.target" "$DIR/units/"
done
cp "$HERE"/units/* "$HERE"/test-units/* "$DIR/units/"
for d in "${extra_units[@]}"; do cp "$d"/* "$DIR/units/"; done
: > "$DIR/kmsg.log"
rm -f "$DIR/bus.address" "$DIR/systemd.pid" "$DIR/cgroup.path" "$DIR/stopped"

setsid bash "$HERE/supervise.sh" "$DIR" "$OWNER" "$CLEANUP" </dev/null >"$DIR/supervise.log" 2>&1 &
echo $! > "$DIR/supervise.pid"

fail() {
  echo "start.sh: $1" >&2
  echo "--- $DIR/supervise.log" >&2; tail -n 20 "$DIR/supervise.log" >&2 || true
  echo "--- $DIR/kmsg.log" >&2; tail -n 30 "$DIR/kmsg.log" >&2 || true
  "$HERE/stop.sh" "$DIR" >&2 || true
  exit 1
}

ADDRESS=unix:path=$SOCKET
deadline=$((SECONDS + TIMEOUT))
until [ -S "$SOCKET" ] && [ "$(busctl --address="$ADDRESS" --timeout=2 call org.freedesktop.DBus \
        /org/freedesktop/DBus org.freedesktop.DBus NameHasOwner s org.freedesktop.systemd1 2>/dev/null)" = "b true" ]; do
  kill -0 "$(cat "$DIR/supervise.pid")" 2>/dev/null || fail "the private systemd exited during start-up"
  [ $SECONDS -lt $deadline ] || fail "org.freedesktop.systemd1 did not appear within ${TIMEOUT}s"
  sleep 0.05
done
echo "$ADDRESS" > "$DIR/bus.address"
echo "$ADDRESS"
