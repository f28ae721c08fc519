#!/bin/sh
# Test-only udevadm shim (first on PATH in the prepared host root). This sandbox kernel has
# no partition-table parsers (CONFIG_EFI_PARTITION/MSDOS_PARTITION off), so BLKRRPART leaves
# a loop device without partitions. Before "udevadm settle", re-add them from userspace
# (BLKPG via partx) for the devices under test, then defer to the real udevadm. Harmless on
# a kernel that parses partition tables.
if [ "$1" = settle ]; then
    for d in ${SHIM_PARTX_DEVICES:-}; do partx -u "$d" 2>/dev/null || partx -a "$d" 2>/dev/null; done
fi
exec /usr/bin/udevadm "$@"
