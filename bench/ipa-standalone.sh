#!/usr/bin/env bash
# Starts ironic-python-agent 13.0.0 (bench/setup-ipa.sh) standalone and
# confined (bench/sandbox/run.sh), its API on 127.0.0.1 only, in the
# foreground:
#
#   bench/ipa-standalone.sh PORT TOKEN [EXTRA IPA ARGS...]
#
# Standalone (bench/ipa_standalone.py): no lookup and no heartbeat; api_url
# points at a closed port.
# Stop it with SIGKILL to this script's process (see bench/sandbox/run.sh).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
(($# >= 2)) || { echo "usage: $0 PORT TOKEN [IPA ARGS...]" >&2; exit 2; }
port=$1 token=$2; shift 2
venv=${IPA_VENV:-${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}/ipa-venv}
[[ -x $venv/bin/python && -x $venv/bin/ironic-python-agent ]] || { echo "no IPA in $venv: run bench/setup-ipa.sh" >&2; exit 1; }
exec "$HERE/sandbox/run.sh" "$venv/bin/python" "$HERE/ipa_standalone.py" \
    --agent_token "$token" \
    --listen_host 127.0.0.1 --listen_port "$port" \
    --advertise_host 127.0.0.1 --advertise_port "$port" \
    --api_url http://127.0.0.1:9 --noenable_auto_tls \
    --disk_wait_attempts 1 --disk_wait_delay 0 "$@"
