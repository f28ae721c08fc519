#!/usr/bin/env bash
# Installs the reference ironic-python-agent 13.0.0 into its own venv, pinned by
# bench/ipa-constraints.txt, for the side-by-side benchmarks.
#
#   bench/setup-ipa.sh        install (or confirm) the venv; prints its path
#
# Venv: ${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}/ipa-venv
# Idempotent and safe to run concurrently (flock). Never run the installed
# `ironic-python-agent` directly: start it with bench/ipa-standalone.sh, which
# confines it (bench/sandbox/run.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${IRONIC_AGENT_CACHE:-/var/cache/ironic-agent}
VENV=$CACHE/ipa-venv
IPA_VERSION=13.0.0
CONSTRAINTS=$HERE/ipa-constraints.txt
PYTHON=${IPA_PYTHON:-python3}
MARKER=$VENV/.bench-ready
LOG=$CACHE/ipa-venv-install.log

mkdir -p "$CACHE"
exec 9>"$CACHE/ipa-venv.lock"
flock 9

want="ipa=$IPA_VERSION constraints=$(sha256sum "$CONSTRAINTS" | cut -d' ' -f1) python=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ -f $MARKER && $(cat "$MARKER") == "$want" && -x $VENV/bin/ironic-python-agent ]]; then
    echo "$VENV"
    exit 0
fi

rm -rf "$VENV"
t0=$SECONDS
if ! { "$PYTHON" -m venv "$VENV" &&
       "$VENV/bin/pip" install --disable-pip-version-check -c "$CONSTRAINTS" \
           "ironic-python-agent==$IPA_VERSION"; } >"$LOG" 2>&1; then
    echo "setup-ipa: install failed; last lines of $LOG:" >&2
    tail -20 "$LOG" >&2
    exit 1
fi
echo "$want" >"$MARKER"
echo "setup-ipa: ironic-python-agent $IPA_VERSION installed in $((SECONDS - t0)) s" >&2
echo "$VENV"
