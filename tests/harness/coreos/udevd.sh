#!/usr/bin/env bash
# Starts or stops systemd-udevd for the coreos-installer tests (coreos-installer refuses to
# run without /run/udev/control, and lsblk needs udev's labels).
#   udevd.sh start <statedir>   reuses a udevd that answers a ping; otherwise removes a
#                               stale /run/udev, starts one, records its pid in
#                               <statedir>/udevd.pid (only then will `stop` stop it)
#   udevd.sh stop <statedir>    stops the udevd this script started and removes /run/udev
set -euo pipefail
CMD=${1:?usage: udevd.sh start|stop <statedir>}
STATE=${2:?usage: udevd.sh start|stop <statedir>}
UDEVD=/usr/lib/systemd/systemd-udevd
[[ -x $UDEVD ]] || UDEVD=/lib/systemd/systemd-udevd
mkdir -p "$STATE"
case $CMD in
start)
    if [[ -S /run/udev/control ]] && udevadm control --ping 2>/dev/null; then
        echo "udevd.sh: reusing the running udevd" >&2
        exit 0
    fi
    rm -rf /run/udev
    setsid "$UDEVD" >"$STATE/udevd.log" 2>&1 </dev/null &
    echo $! >"$STATE/udevd.pid"
    for _ in $(seq 1 100); do
        udevadm control --ping 2>/dev/null && exit 0
        sleep 0.1
    done
    echo "udevd.sh: udevd did not answer; see $STATE/udevd.log" >&2
    exit 1
    ;;
stop)
    [[ -f $STATE/udevd.pid ]] || exit 0
    pid=$(cat "$STATE/udevd.pid")
    rm -f "$STATE/udevd.pid"
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do
            # gone, or a zombie waiting for this machine's slow reaper
            state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
            [[ -z $state || $state == Z ]] && break
            sleep 0.1
        done
    fi
    # udevd leaves its socket behind and /run is persistent here.
    rm -rf /run/udev
    ;;
*)
    echo "usage: udevd.sh start|stop <statedir>" >&2
    exit 2
    ;;
esac
