#!/usr/bin/env bash
# Installs everything the build and the tests need. Idempotent; CI runs it
# as root on a clean clone, so nothing may be assumed installed by hand.
set -euo pipefail

need_apt=()
for pkg_bin in "curl:curl" "util-linux:lsblk" "podman:podman" "gdisk:sgdisk" "e2fsprogs:mkfs.ext4" "dosfstools:mkfs.vfat" "qemu-utils:qemu-img" "coreutils:shred" "systemd:systemd-analyze" \
               "openssl:openssl" ; do
    pkg=${pkg_bin%%:*}; bin=${pkg_bin#*:}
    if [[ -n "$bin" ]]; then
        command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
    fi
done
# dbus-daemon: private buses for tests/systemd_supervisor.rs (systemd, util-linux above).
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus-daemon)
if ((${#need_apt[@]})); then
    echo "install-deps: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

mkdir -p "${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}"
if [[ -x tests/harness/ironic/setup.sh ]]; then
    bash tests/harness/ironic/setup.sh
fi
echo "install-deps: done"
