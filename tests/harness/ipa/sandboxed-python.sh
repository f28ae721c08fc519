#!/usr/bin/env bash
# The reference IPA's python, only ever inside the protective sandbox
# (bench/sandbox/run.sh: mount + PID namespaces, no block device in /dev, power, ip,
# udevadm and modprobe shimmed). IPA reads block devices through sysfs and lsblk only.
#   tests/harness/ipa/sandboxed-python.sh SCRIPT [ARGS...]
# The venv is bench/setup-ipa.sh's (${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}/ipa-venv).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
VENV=${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}/ipa-venv
[[ -x $VENV/bin/python ]] || { echo "no IPA venv in $VENV: run bench/setup-ipa.sh" >&2; exit 1; }
dir=$(mktemp -d -t ipa-sandbox.XXXXXX)
trap 'rm -rf "$dir"' EXIT
rc=0
"$REPO/bench/sandbox/run.sh" --dir "$dir" "$VENV/bin/python" "$@" || rc=$?
if [[ -s $dir/shim.log ]]; then
    echo "sandboxed-python: IPA tried to act on the host (intercepted):" >&2
    cat "$dir/shim.log" >&2
fi
exit $rc
