#!/usr/bin/env bash
# `make image`: builds the agent image offline, from a locally built binary,
# with no base image and no registry. Prints the image size.
#   PROFILE=release|debug (default release), BINARY=<prebuilt binary>,
#   IMAGE=<ref> (default localhost/ironic-agent:latest)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
profile=${PROFILE:-release}
image=${IMAGE:-localhost/ironic-agent:latest}
cd "$repo"

if [[ -n ${BINARY:-} ]]; then
    binary=$BINARY            # a binary built elsewhere (tests pass their own)
elif [[ $profile == release ]]; then
    binary=$(bash scripts/build-release.sh)   # static: no C library in the image
else
    cargo build -j2 --bin ironic-agent
    binary=$repo/target/debug/ironic-agent
fi

ctx=$(mktemp -d -t ironic-agent-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs
mkdir -p "$rootfs"/{usr/bin,usr/sbin,etc/ironic-python-agent,tmp,var/log,run,mnt/coreos,dev,sys,proc}
chmod 1777 "$rootfs/tmp"

# copy_libs_of FILE: every shared library FILE loads, at the same path (none for
# the static release binary; a debug build links libc dynamically).
copy_libs_of() {
    local lib libs
    libs=$(ldd "$1" 2>/dev/null | awk '$3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}') || true
    for lib in $libs; do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done
}

install -m 0755 "$binary" "$rootfs/usr/bin/ironic-agent"
copy_libs_of "$binary"
# chroot: host tools (coreos-installer, hostnamectl, journalctl) run through
# `chroot /mnt/coreos`, as in today's image. The agent is its own chroot when
# called by that name (src/chroot_applet.rs), so the image needs no coreutils.
ln -s ../bin/ironic-agent "$rootfs/usr/sbin/chroot"
# Name resolution: glibc's files and dns backends are part of libc here;
# podman --network host provides /etc/hosts and /etc/resolv.conf.
printf 'hosts: files dns\npasswd: files\ngroup: files\n' > "$rootfs/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/usr/bin/ironic-agent\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\n' > "$rootfs/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"
touch "$rootfs/etc/resolv.conf"
install -m 0644 container/00-defaults.conf "$rootfs/etc/ironic-python-agent/00-defaults.conf"

podman build --quiet -f container/Containerfile.local -t "$image" "$ctx" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "built $image ($profile): $size bytes ($((size / 1024 / 1024)) MiB)"
