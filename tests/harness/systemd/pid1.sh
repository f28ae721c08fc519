#!/usr/bin/env bash
# Runs inside the new pid/mount/uts/ipc namespaces (started by supervise.sh)
# and becomes the private systemd; not meant to be run by hand.
#
#   pid1.sh enter   as PID 1 of the pid namespace: move into the leaf cgroup
#                   $CGDIR/ns, unshare the cgroup namespace there, run "boot"
#   pid1.sh boot    mount a fresh cgroup2 view, our /run, console and kmsg
#                   files, then exec systemd with only our units
#
# The leaf keeps the outer unshare process out of the namespace's root
# cgroup, so systemd is alone there (on a pure cgroup-v2 host it can then
# enable controllers below it). Needs DIR and CGDIR in the environment.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

case ${1:-} in
  enter)
    mkdir -p "$CGDIR/ns"
    echo $$ > "$CGDIR/ns/cgroup.procs"
    exec unshare --cgroup bash "$HERE/pid1.sh" boot
    ;;
  boot)
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    mount --rbind "$DIR/run" /run
    : > "$DIR/console.log"
    mount --bind "$DIR/console.log" /dev/console
    mount --bind "$DIR/kmsg.log" /dev/kmsg
    export container=sdtest SYSTEMD_UNIT_PATH="$DIR/units"
    exec /usr/lib/systemd/systemd --system --log-target=kmsg --log-level=info --show-status=no \
         --unit=sdtest.target --default-standard-output=inherit --default-standard-error=inherit
    ;;
  *) echo "usage: $0 enter|boot (internal to supervise.sh)" >&2; exit 2 ;;
esac
