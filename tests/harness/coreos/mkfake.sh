#!/usr/bin/env bash
# Builds a small fake "Fedora CoreOS metal" disk image without mounts or loop devices:
# GPT (512-byte sectors) with BIOS-BOOT, EFI-SYSTEM (vfat), boot (ext4, label "boot") and
# root (ext4, label "root"), the boot file system holding what coreos-installer edits (a
# BLS entry with ignition.platform.id=metal, kernel/initramfs, ignition.firstboot,
# grub2/grub.cfg with console markers, coreos/platforms.json).
# Usage: mkfake.sh <out.raw>   (then compress it, e.g. xz -T1 -k)
# Needs: sgdisk (gdisk), mkfs.ext4 (e2fsprogs), mkfs.fat (dosfstools).
set -euo pipefail
OUT=${1:?usage: mkfake.sh <out.raw>}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
BIOS=1 EFI=33 BOOT=64 ROOT=32                       # MiB
TOTAL=$((1 + BIOS + EFI + BOOT + ROOT + 1))
rm -f "$OUT"; truncate -s "${TOTAL}M" "$OUT"
sgdisk -Z "$OUT" >/dev/null 2>&1 || true
sgdisk -a 2048 \
  -n 1:1M:+${BIOS}M -t 1:21686148-6449-6E6F-744E-656564454649 -c 1:BIOS-BOOT \
  -n 2:0:+${EFI}M   -t 2:C12A7328-F81F-11D2-BA4B-00A0C93EC93B -c 2:EFI-SYSTEM \
  -n 3:0:+${BOOT}M  -t 3:0FC63DAF-8483-4772-8E79-3D69D8477DE4 -c 3:boot \
  -n 4:0:+${ROOT}M  -t 4:0FC63DAF-8483-4772-8E79-3D69D8477DE4 -c 4:root \
  "$OUT" >/dev/null
B=$W/boot
mkdir -p "$B/loader/entries" "$B/ostree/fedora-coreos-fake" "$B/grub2" "$B/coreos"
cat > "$B/loader/entries/ostree-1-fedora-coreos.conf" <<'BLS'
title Fedora CoreOS 99.fake (ostree:0)
version 1
options mitigations=auto,nosmt ignition.platform.id=metal $ignition_firstboot ostree=/ostree/boot.1/fedora-coreos/fake/0 root=LABEL=root rw rootflags=prjquota boot=LABEL=boot
linux /ostree/fedora-coreos-fake/vmlinuz-6.0.0
initrd /ostree/fedora-coreos-fake/initramfs-6.0.0.img
BLS
echo "fake kernel" > "$B/ostree/fedora-coreos-fake/vmlinuz-6.0.0"
printf 'fake initramfs\n' > "$B/ostree/fedora-coreos-fake/initramfs-6.0.0.img"
printf 'set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"\n' > "$B/ignition.firstboot"
# the console markers must follow a newline (coreos-installer's regex needs "\n# CONSOLE-")
printf '# GRUB2 config (fake)\n# CONSOLE-SETTINGS-START\n# CONSOLE-SETTINGS-END\nset timeout=1\n' > "$B/grub2/grub.cfg"
echo '{"metal":{"grub_commands":[],"kernel_arguments":[]}}' > "$B/coreos/platforms.json"
mkfs.ext4 -q -F -L boot -d "$B" "$W/boot.img" "${BOOT}M"
mkfs.ext4 -q -F -L root "$W/root.img" "${ROOT}M"
truncate -s "${EFI}M" "$W/efi.img"; mkfs.fat -n EFI-SYSTEM "$W/efi.img" >/dev/null
for p in 2:efi 3:boot 4:root; do
  n=${p%%:*}; f=${p#*:}
  start=$(sgdisk -i "$n" "$OUT" | awk '/First sector/{print $3}')
  dd if="$W/$f.img" of="$OUT" bs=512 seek="$start" conv=notrunc,sparse status=none
done
