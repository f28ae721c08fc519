#!/usr/bin/env bash
# Builds the release binary as it ships and prints its path: statically linked
# (glibc static-pie), so the container image carries no C library, and its
# /usr/sbin/chroot is a link to the agent (src/chroot_applet.rs).
# Only the final link takes the flag, so the dependencies' release builds are reused.
# Arguments go to cargo (e.g. --locked).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cargo rustc -j"${JOBS:-2}" --release --bin ironic-agent "$@" -- -C target-feature=+crt-static >&2
echo "${CARGO_TARGET_DIR:-$repo/target}/release/ironic-agent"
