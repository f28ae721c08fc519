#!/usr/bin/env bash
# The main job: the real Ironic 39 conductor drives the BUILT agent through a node's
# life on loopback — enroll → inspect → manageable → clean (metadata erase of the loop
# disk's old GPT and file system) → available → deploy with
# the custom deploy step install_coreos (real coreos-installer, fake FCOS image served
# over loopback HTTP, Ignition + kargs from the configdrive) → active — onto a loop disk.
# Everything it starts (Ironic, agent, HTTP server, udevd, loop device) is torn down on
# exit, also on Ctrl-C. Logs stay in the printed directory (the newest 3 are kept).
# Needs root (loop devices, chroot). `make demo` runs `make deps` first.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
export IRONIC_AGENT_CACHE=${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}
HARNESS=$REPO/tests/harness
T0=$(date +%s.%N)
say() { printf '[%6.1fs] %s\n' "$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

[[ $(id -u) == 0 ]] || { echo "demo: needs root (loop devices, chroot)" >&2; exit 1; }

LOGROOT=${IRONIC_AGENT_DEMO_LOGS:-/tmp/ironic-agent-demo}
mkdir -p "$LOGROOT"
WORK=$(mktemp -d "$LOGROOT/run.XXXXXX")
# keep the logs of the last 3 runs only
ls -1dt "$LOGROOT"/run.* 2>/dev/null | tail -n +4 | xargs -r rm -rf

LOOP="" HTTP_PID="" IRONIC_DIR="$WORK/ironic"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [[ -f $WORK/agent.pid ]]; then
        kill -TERM "$(cat "$WORK/agent.pid")" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$(cat "$WORK/agent.pid")" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$(cat "$WORK/agent.pid")" 2>/dev/null
        rm -f "$WORK/agent.pid"
    fi
    [[ -f $IRONIC_DIR/ironic.pid ]] && bash "$HARNESS/ironic/stop.sh" "$IRONIC_DIR" >/dev/null 2>&1
    [[ -n $HTTP_PID ]] && kill "$HTTP_PID" 2>/dev/null && wait "$HTTP_PID" 2>/dev/null
    if [[ -n $LOOP ]]; then
        partx -d "$LOOP" >/dev/null 2>&1
        losetup -d "$LOOP" 2>/dev/null
    fi
    bash "$HARNESS/coreos/udevd.sh" stop "$WORK/udevd" >/dev/null 2>&1
    rm -rf "$WORK/disk.img" "$WORK/boot.ext4" "$WORK/host-root" "$WORK/www" "$WORK/agent-state"
    echo
    echo "logs: $WORK  (ironic/ironic.log, agent.log, http.log)"
    [[ $rc == 0 ]] && echo "demo: OK, everything torn down" || echo "demo: FAILED (exit $rc), everything torn down"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

if [[ -n ${IRONIC_AGENT_BIN:-} ]]; then   # tests pass the binary cargo built for them
    AGENT=$IRONIC_AGENT_BIN
    say "agent binary: $AGENT"
else
    say "building the agent (cargo build -j2)"
    cargo build -j2 --quiet --bin ironic-agent
    AGENT=$REPO/target/debug/ironic-agent
fi
say "preparing the Ironic venv and coreos-installer (cached under $IRONIC_AGENT_CACHE)"
bash "$HARNESS/ironic/setup.sh" >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log"; exit 1; }
INSTALLER=$(bash "$HARNESS/coreos/install-coreos-installer.sh")

say "fake Fedora CoreOS image, host root, udevd"
mkdir -p "$WORK/www"
bash "$HARNESS/coreos/mkfake.sh" "$WORK/www/fcos.x86_64.raw" >"$WORK/mkfake.log" 2>&1
xz -T1 -f "$WORK/www/fcos.x86_64.raw"
bash "$HARNESS/coreos/host-root.sh" "$WORK/host-root" "$INSTALLER"
mkdir -p "$WORK/shims"
ln -sfn "$HARNESS/coreos/chroot-shim.sh" "$WORK/shims/chroot"
bash "$HARNESS/coreos/udevd.sh" start "$WORK/udevd" 2>>"$WORK/udevd.log"

HTTP_PORT=$(free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/www" "$HTTP_PORT" >"$WORK/http.log" 2>&1 &
HTTP_PID=$!
IMAGE_URL=http://127.0.0.1:$HTTP_PORT/fcos.x86_64.raw.xz

truncate -s 5G "$WORK/disk.img"          # sparse; root-device default wants >= 4 GiB
LOOP=$(losetup -f --show -P "$WORK/disk.img")
say "loop disk $LOOP (5 GiB sparse file), image at $IMAGE_URL"
# What an earlier installation leaves behind: a GPT and a file system. provide's
# cleaning (erase_devices_metadata) must remove both GPT copies and the signature.
sgdisk -n1:2048:+64M -t1:8300 -c1:old-data "$LOOP" >/dev/null
partx -u "$LOOP" >/dev/null 2>&1 || true
for _ in $(seq 50); do [[ -b ${LOOP}p1 ]] && break; sleep 0.1; done
mkfs.ext4 -q -F -L old-data "${LOOP}p1"
say "$(python3 "$REPO/scripts/demo_driver.py" --disk-marks "$LOOP")"

IRONIC_PORT=$(free_port)
say "starting Ironic 39.0.0 on 127.0.0.1:$IRONIC_PORT (fast track, automated clean)"
IRONIC_HARNESS_OWNER_PID=$$ bash "$HARNESS/ironic/start.sh" "$IRONIC_DIR" "$IRONIC_PORT" --fast-track --automated-clean >/dev/null

MAC=$("$AGENT" inventory 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin); inv = d.get("inventory", d)
print(next(i["mac_address"] for i in inv["interfaces"] if i.get("mac_address")))')
AGENT_PORT=$(free_port)
: >"$WORK/cmdline"

export DEMO_WORK=$WORK DEMO_AGENT=$AGENT DEMO_MAC=$MAC DEMO_LOOP=$LOOP DEMO_IMAGE_URL=$IMAGE_URL \
    DEMO_IRONIC=http://127.0.0.1:$IRONIC_PORT DEMO_AGENT_PORT=$AGENT_PORT DEMO_T0=$T0 \
    DEMO_SHIMS=$WORK/shims
python3 "$REPO/scripts/demo_driver.py"

say "partition table of $LOOP after the deploy:"
partx -u "$LOOP" >/dev/null 2>&1 || true
sgdisk -p "$LOOP" | sed -n '/^Number/,$p' | sed 's/^/           /'
# read the boot file system back without mounting: partition 3 copied out by its GPT offsets
blockdev --flushbufs "$LOOP" 2>/dev/null || true
first=$(sgdisk -i 3 "$LOOP" | awk '/First sector/{print $3}')
last=$(sgdisk -i 3 "$LOOP" | awk '/Last sector/{print $3}')
dd if="$LOOP" of="$WORK/boot.ext4" bs=512 skip="$first" count=$((last - first + 1)) status=none
IGN=$(debugfs -R 'cat /ignition/config.ign' "$WORK/boot.ext4" 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit("no Ignition config on the boot partition")
files = [f["path"] for f in d.get("storage", {}).get("files", [])]
print("Ignition on the boot partition: version %s, files %s" % (d["ignition"]["version"], ", ".join(files)))') \
    || { echo "demo: no Ignition config found on the boot partition" >&2; exit 1; }
say "$IGN"
KARGS=$(debugfs -R 'cat /loader/entries/ostree-1-fedora-coreos.conf' "$WORK/boot.ext4" 2>/dev/null | sed -n 's/^options //p')
say "kernel arguments: $KARGS"
