#!/usr/bin/env bash
# Prepares a host-root directory for `chroot <dir> coreos-installer install …` (NOT this
# machine's /): the given coreos-installer, the tools it runs (lsblk, blkid, udevadm), the
# partx-based udevadm wrapper (usr/local/sbin/udevadm) this kernel needs, sh for stand-ins,
# every shared library they link, and empty dev/proc/sys/run/udev/tmp mount points (the
# chroot shim binds the real ones in a private mount namespace).
# Usage: host-root.sh <dir> [<coreos-installer binary>]   (without a binary: no installer)
set -euo pipefail
ROOT=${1:?usage: host-root.sh <dir> [coreos-installer]}
INSTALLER=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$ROOT"/{usr/bin,usr/sbin,usr/local/sbin,dev,proc,sys,run/udev,tmp,etc/NetworkManager/system-connections}
copy_with_libs() {   # <binary> <dest dir in root>
    local bin=$1 dest=$2
    cp -L "$bin" "$ROOT/$dest/"
    ldd "$bin" | awk '/=>/ {print $3} /^[ \t]*\/.*ld-linux/ {print $1}' | while read -r lib; do
        [[ -n "$lib" && -e "$lib" ]] || continue
        mkdir -p "$ROOT/$(dirname "$lib")"
        [[ -e "$ROOT/$lib" ]] || cp -L "$lib" "$ROOT/$lib"
    done
}
for tool in lsblk blkid udevadm partx sh; do
    copy_with_libs "$(command -v "$tool")" usr/bin
done
if [[ -n "$INSTALLER" ]]; then
    copy_with_libs "$INSTALLER" usr/bin
fi
install -m 0755 "$HERE/udevadm-wrapper.sh" "$ROOT/usr/local/sbin/udevadm"
ln -sfn usr/bin "$ROOT/bin" 2>/dev/null || true
ln -sfn usr/sbin "$ROOT/sbin" 2>/dev/null || true
echo "localhost" > "$ROOT/etc/hostname"
