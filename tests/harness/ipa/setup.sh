#!/usr/bin/env bash
# Install ironic-python-agent 13.0.0 (the reference implementation) into a private venv,
# used by tests/inventory_parity.rs to compare IPA's inventory with ours on this machine.
#
# Venv: ${IRONIC_AGENT_CACHE:-<repo>/.cache}/ipa13-venv
# Idempotent and safe to run concurrently (flock). Prints one line on success; on
# failure the tail of the pip log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
CACHE=${IRONIC_AGENT_CACHE:-$REPO/.cache}
VENV=$CACHE/ipa13-venv
IPA_VERSION=13.0.0
CONSTRAINTS=$HERE/constraints.txt
PYTHON=${IRONIC_HARNESS_PYTHON:-python3}
MARKER=$VENV/.harness-ready
INSTALL_LOG=$CACHE/ipa13-venv-install.log

mkdir -p "$CACHE"
exec 9>"$CACHE/ipa13-venv.lock"
flock 9

want_marker() {
  printf 'ipa=%s constraints=%s\n' "$IPA_VERSION" "$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1)"
}

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$(want_marker)" ] \
   && "$VENV/bin/python" -c 'import ironic_python_agent.config, ironic_python_agent.hardware' >/dev/null 2>&1; then
  echo "ipa-harness setup: ironic-python-agent $IPA_VERSION already in $VENV"
  exit 0
fi

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
if ! "$VENV/bin/python" -m pip install --no-input --disable-pip-version-check \
      -c "$CONSTRAINTS" "ironic-python-agent==$IPA_VERSION" >"$INSTALL_LOG" 2>&1; then
  echo "ipa-harness setup: pip install failed; last lines of $INSTALL_LOG:" >&2
  tail -n 30 "$INSTALL_LOG" >&2
  exit 1
fi
want_marker >"$MARKER"
echo "ipa-harness setup: installed ironic-python-agent $IPA_VERSION into $VENV"
