#!/bin/sh
# Test-only `chroot` (first on the agent's PATH in tests): the container gets /dev, /proc,
# /sys and /run/udev of the host through podman's bind mounts; a prepared host-root
# directory does not. So run the real chroot in a private mount namespace with those bound
# in. The mounts vanish with the namespace: nothing is left mounted, and removing the
# directory afterwards can never reach into the real /dev.
#   SHIM_CHROOT_PATH   PATH to use inside the chroot (optional)
root=$1
shift
if [ -n "${SHIM_CHROOT_PATH:-}" ]; then export PATH="$SHIM_CHROOT_PATH"; fi
exec unshare --mount --propagation private /bin/sh -c '
    root=$1
    for d in dev proc sys run/udev; do
        [ -d "$root/$d" ] && [ -e "/$d" ] && mount --rbind "/$d" "$root/$d"
    done
    shift
    exec /usr/sbin/chroot "$root" "$@"' sh "$root" "$@"
