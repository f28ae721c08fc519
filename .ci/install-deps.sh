#!/usr/bin/env bash
# Installs everything the build and the tests need. Idempotent; CI runs it
# as root on a clean clone, so nothing may be assumed installed by hand.
set -euo pipefail

need_apt=()
# lldpd, ipmitool/openipmi (ipmi_sim) and dmidecode are real peers of the inspector's
# tests; lshw is used by the reference IPA in the inventory parity test (not by us);
# tinyproxy is the real forward proxy of actors/tests/image_proxy.rs (socat its TLS front).
for pkg_bin in "curl:curl" "util-linux:lsblk" "podman:podman" "systemd:systemd-analyze" \
    "openssl:openssl" "python3-venv:" \
    "lldpd:lldpd" "ipmitool:ipmitool" "openipmi:ipmi_sim" "dmidecode:dmidecode" \
    "lshw:lshw" \
    "udev:udevadm" "gdisk:sgdisk" "dosfstools:mkfs.fat" "e2fsprogs:debugfs" \
    "xz-utils:xz" "pkg-config:pkg-config" "qemu-utils:qemu-img" "coreutils:shred" \
    "libzstd-dev:" "libssl-dev:" "liblzma-dev:" "g++:g++" "tinyproxy:tinyproxy" "socat:socat" ; do
    pkg=${pkg_bin%%:*}; bin=${pkg_bin#*:}
    if [[ -n "$bin" ]]; then
        command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
    else
        # libraries (no binary to look for): ask dpkg
        dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
    fi
done
# dbus-daemon: private buses for tests/systemd_supervisor.rs (systemd, util-linux above).
command -v dbus-daemon >/dev/null 2>&1 || need_apt+=(dbus-daemon)
if ((${#need_apt[@]})); then
    echo "install-deps: apt-get install ${need_apt[*]}"
    # Packages with services (tinyproxy, lldpd, …) must not start one on this machine:
    # tests run their own instances on loopback. Deny service starts while installing
    # unless the machine already has a policy.
    own_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        own_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    if [[ -n "$own_policy" ]]; then
        rm -f /usr/sbin/policy-rc.d
        trap - EXIT
    fi
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

mkdir -p "${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}"
# cargo-fuzz for fuzz/run.sh (crates.io, built once and cached; libFuzzer itself comes with
# the libfuzzer-sys crate and needs g++).
fuzz_root="${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}/cargo-fuzz"
if [[ ! -x "$fuzz_root/bin/cargo-fuzz" ]]; then
    echo "install-deps: cargo install cargo-fuzz (cached in $fuzz_root)"
    cargo install -q -j2 --locked cargo-fuzz --version 0.13.2 --root "$fuzz_root"
fi
# The real coreos-installer for tests/coreos_installer.rs (cached; ~3.5 min cold).
bash tests/harness/coreos/install-coreos-installer.sh >/dev/null
if [[ -x tests/harness/ironic/setup.sh ]]; then
    bash tests/harness/ironic/setup.sh
fi
if [[ -f bench/setup-ipa.sh ]]; then
    bash bench/setup-ipa.sh >/dev/null
fi
echo "install-deps: done"
