#!/usr/bin/env bash
# PID 1 of the sandbox's new mount + PID namespaces (started by run.sh).
# Neutralises what an agent could do to the host, then runs "$@" as a child.
set -euo pipefail
S=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/shims
D=$BENCH_SANDBOX_DIR

# Nothing mounted here may propagate back to the host.
mount --make-rprivate /

# Power: poweroff/reboot/halt/shutdown are symlinks to systemctl; IPA falls
# back to /proc/sysrq-trigger when poweroff fails (absent on some kernels).
bind_over() { # bind_over SHIM PROGRAM : PROGRAM (resolved) becomes SHIM
    local real
    real=$(readlink -f "$(command -v "$2" || echo "/usr/bin/$2")")
    if [[ -e $real ]]; then mount --bind "$1" "$real"; fi
}
bind_over "$S/noop" systemctl
[[ -e /proc/sysrq-trigger ]] && mount --bind /dev/null /proc/sysrq-trigger
# Kernel modules and udev events stay untouched (kmod also covers modprobe).
bind_over "$S/noop" udevadm
bind_over "$S/noop" kmod
# Network: `ip` becomes read-only; keep the real binary reachable for queries.
real_ip=$(readlink -f "$(command -v ip)")
touch "$D/ip.real"
mount --bind "$real_ip" "$D/ip.real"
export BENCH_SANDBOX_IP=$D/ip.real
mount --bind "$S/ip" "$real_ip"

# Disks: a private /dev without any block device, except the loop devices
# named in BENCH_SANDBOX_BLOCK_DEVICES (the image-stream benchmark's own), and
# then `lsblk` lists only those (shims/lsblk).
blockdevs=()
for dev in ${BENCH_SANDBOX_BLOCK_DEVICES:-}; do
    [[ $dev =~ ^/dev/loop[0-9]+$ && -b $dev ]] || { echo "sandbox: refusing block device '$dev' (only /dev/loopN)" >&2; exit 2; }
    blockdevs+=("$dev $((0x$(stat -c %t "$dev"))) $((0x$(stat -c %T "$dev")))")
done
if ((${#blockdevs[@]})); then
    real_lsblk=$(readlink -f "$(command -v lsblk)")
    touch "$D/lsblk.real"
    mount --bind "$real_lsblk" "$D/lsblk.real"
    export BENCH_SANDBOX_LSBLK=$D/lsblk.real
    mount --bind "$S/lsblk" "$real_lsblk"
fi
mount -t tmpfs -o mode=755,size=16m sandboxdev /dev
for entry in "${blockdevs[@]}"; do
    read -r dev major minor <<<"$entry"
    mknod -m 660 "$dev" b "$major" "$minor"
done
mknod -m 666 /dev/null c 1 3; mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7; mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9; mknod -m 666 /dev/tty c 5 0
mkdir /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=666 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx; mount -t tmpfs shm /dev/shm
ln -s /proc/self/fd /dev/fd; ln -s fd/0 /dev/stdin
ln -s fd/1 /dev/stdout; ln -s fd/2 /dev/stderr

# PID 1 of a PID namespace ignores signals without a handler: run the agent
# as a child and forward TERM/INT to it.
set +e
echo "$EPOCHREALTIME" >"$D/exec-stamp"
# A background job's stdin would be /dev/null: keep ours (callers may pipe input).
exec 3<&0
"$@" <&3 &
child=$!
trap 'kill -TERM $child 2>/dev/null' TERM INT
wait $child; rc=$?
wait $child 2>/dev/null
exit $rc
