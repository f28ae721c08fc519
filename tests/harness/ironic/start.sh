#!/usr/bin/env bash
# Start a private all-in-one Ironic (conductor + embedded API) on 127.0.0.1.
#
#   start.sh RUN_DIR PORT [--require-tls] [--fast-track] [--automated-clean]
#            [--short-callback-timeout]   (deploy/clean callback timeouts 20 s, not 180 s)
#            [--metadata-erase]   (erase_devices_metadata at priority 10 in automated
#                                  cleaning, as Metal3 configures it; else 0)
#
# Renders ironic.conf.in into RUN_DIR/ironic.conf, creates the sqlite schema
# (once per RUN_DIR; a restart in the same RUN_DIR keeps the nodes), starts
# `ironic` in its own session/process group, logging to RUN_DIR/ironic.log,
# and waits until GET / answers 200. Writes RUN_DIR/ironic.pid (the process
# group leader; stop.sh signals the whole group). On failure it prints the
# log tail, stops whatever it started and exits 1.
# Needs the venv from setup.sh (same IRONIC_AGENT_CACHE).
# IRONIC_HARNESS_START_TIMEOUT (seconds, default 60) bounds the wait.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
VENV=${IRONIC_AGENT_CACHE:-$REPO/.cache}/ironic-venv
TIMEOUT=${IRONIC_HARNESS_START_TIMEOUT:-60}

usage() { echo "usage: $0 RUN_DIR PORT [--require-tls] [--fast-track] [--automated-clean] [--short-callback-timeout] [--metadata-erase]" >&2; exit 2; }
[ $# -ge 2 ] || usage
RUN_DIR=$1 PORT=$2; shift 2
require_tls=False fast_track=False automated_clean=False callback_timeout=180 metadata_priority=0
for opt in "$@"; do
  case $opt in
    --require-tls) require_tls=True ;;
    --fast-track) fast_track=True ;;
    --automated-clean) automated_clean=True ;;
    --short-callback-timeout) callback_timeout=20 ;;
    --metadata-erase) metadata_priority=10 ;;
    *) usage ;;
  esac
done
[[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || { echo "start.sh: bad port '$PORT'" >&2; exit 2; }
[ -x "$VENV/bin/ironic" ] || { echo "start.sh: no ironic in $VENV; run tests/harness/ironic/setup.sh first" >&2; exit 1; }

mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
case $RUN_DIR in *[\|\&\\]*) echo "start.sh: RUN_DIR must not contain | & or \\" >&2; exit 2 ;; esac
if [ -f "$RUN_DIR/ironic.pid" ] && kill -0 -- "-$(cat "$RUN_DIR/ironic.pid")" 2>/dev/null; then
  echo "start.sh: ironic already running for $RUN_DIR (pgid $(cat "$RUN_DIR/ironic.pid"))" >&2
  exit 1
fi
mkdir -p "$RUN_DIR/state/locks" "$RUN_DIR/deploy-logs"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
fail() {
  echo "start.sh: $1; last lines of $RUN_DIR/ironic.log:" >&2
  tail -n 40 "$RUN_DIR/ironic.log" >&2 2>/dev/null || true
  IRONIC_HARNESS_STOP_TIMEOUT=3 "$HERE/stop.sh" "$RUN_DIR" >&2 || true
  exit 1
}

sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@PORT@|$PORT|g" \
    -e "s|@REQUIRE_TLS@|$require_tls|g" -e "s|@FAST_TRACK@|$fast_track|g" \
    -e "s|@AUTOMATED_CLEAN@|$automated_clean|g" -e "s|@CALLBACK_TIMEOUT@|$callback_timeout|g" \
    -e "s|@METADATA_ERASE_PRIORITY@|$metadata_priority|g" \
    "$HERE/ironic.conf.in" >"$RUN_DIR/ironic.conf"
if grep -n '@[A-Z_]*@' "$RUN_DIR/ironic.conf" >&2; then
  echo "start.sh: unrendered placeholder in ironic.conf" >&2; exit 1
fi

# A fresh schema is the same for every run dir, so the first one created by
# this venv is kept as a template (copying takes ms, ironic-dbsync ~2 s).
t0=$(now)
DB=$RUN_DIR/state/ironic.sqlite
SCHEMA_TEMPLATE=$VENV/.harness-schema.sqlite
if [ ! -s "$DB" ]; then
  if [ -s "$SCHEMA_TEMPLATE" ]; then
    cp "$SCHEMA_TEMPLATE" "$DB"
  else
    if ! "$VENV/bin/ironic-dbsync" --config-file "$RUN_DIR/ironic.conf" create_schema \
          >"$RUN_DIR/dbsync.log" 2>&1; then
      echo "start.sh: ironic-dbsync create_schema failed:" >&2
      tail -n 20 "$RUN_DIR/dbsync.log" >&2
      exit 1
    fi
    cp "$DB" "$SCHEMA_TEMPLATE.$$" && mv -f "$SCHEMA_TEMPLATE.$$" "$SCHEMA_TEMPLATE"
  fi
fi
t_schema=$(elapsed "$t0")

# stdout/stderr (warnings, tracebacks before logging is set up) go to the
# same file as oslo.log's log_file; both append.
log_offset=$(stat -c %s "$RUN_DIR/ironic.log" 2>/dev/null || echo 0)
t1=$(now)
( exec setsid "$VENV/bin/ironic" --config-file "$RUN_DIR/ironic.conf" \
    </dev/null >>"$RUN_DIR/ironic.log" 2>&1 ) &
pid=$!
disown "$pid" 2>/dev/null || true
# Without job control the subshell is not a group leader, so setsid() made
# it (and the exec'd ironic) leader of a new group whose id is its pid.
# Confirm, in case that ever changes.
pgid=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
  pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
  [ "$pgid" = "$pid" ] && break
  sleep 0.05
done
if [ "$pgid" != "$pid" ]; then
  kill -KILL "$pid" 2>/dev/null || true
  echo "start.sh: ironic (pid $pid) did not become a process group leader (pgid '${pgid}')" >&2
  exit 1
fi
echo "$pid" >"$RUN_DIR/ironic.pid"
echo "$PORT" >"$RUN_DIR/ironic.port"

# Optional watchdog: stop ironic when the owner (e.g. the test process) is
# gone without having called stop.sh (killed, or a sandbox kept in a static
# whose Drop never runs). It exits by itself once stop.sh removed the pid file.
owner=${IRONIC_HARNESS_OWNER_PID:-}
if [ -n "$owner" ]; then
  [[ $owner =~ ^[0-9]+$ ]] || fail "IRONIC_HARNESS_OWNER_PID must be a pid, not '$owner'"
  setsid bash -c '
    owner=$1 pgid=$2 run_dir=$3 stop=$4
    ours() { [ "$(cat "$run_dir/ironic.pid" 2>/dev/null)" = "$pgid" ]; }
    while kill -0 "$owner" 2>/dev/null && ours; do sleep 1; done
    if ours; then echo "owner $owner is gone"; "$stop" "$run_dir"; fi
  ' ironic-harness-watchdog "$owner" "$pid" "$RUN_DIR" "$HERE/stop.sh" \
    </dev/null >>"$RUN_DIR/watchdog.log" 2>&1 &
  disown $! 2>/dev/null || true
fi

# Wait for GET / == 200. Fail early when the master exits, when its worker
# dies, or when the log shows a fatal startup error: in the last two cases the
# master lingers and ignores SIGTERM.
if ! "$VENV/bin/python" - "$PORT" "$pid" "$TIMEOUT" "$RUN_DIR/ironic.log" "$log_offset" <<'EOF'
import os, re, sys, time, http.client
port, pid, timeout, log = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
offset = int(sys.argv[5])
deadline = time.monotonic() + timeout
def live_members():
    """pids of the non-zombie processes in ironic's process group"""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid and fields[0] != "Z":
            found.append(int(d))
    return found
seen_worker, lone_since = False, None
while time.monotonic() < deadline:
    members = live_members()
    if pid not in members:
        print("ironic exited during startup", file=sys.stderr); sys.exit(1)
    # The master forks a worker at once. If the worker dies (e.g. a driver
    # fails to load) the master may neither exit nor respawn it. Short gaps
    # happen on a loaded machine (helper processes come and go), so only a
    # long one counts.
    if len(members) > 1:
        seen_worker, lone_since = True, None
    elif seen_worker:
        lone_since = lone_since or time.monotonic()
        if time.monotonic() - lone_since > 10.0:
            print("ironic's worker process died during startup", file=sys.stderr); sys.exit(1)
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except OSError:
        chunk = b""
    # Only complete lines; oslo.log: "<date> <time> <pid> LEVEL <logger> ...".
    # A conductor that fails init_host (e.g. a hardware type without a valid
    # default interface) logs its own shutdown and the process just lingers;
    # a taken port kills the worker, which cotyledon respawns forever.
    complete = chunk[: chunk.rfind(b"\n") + 1]
    offset += len(complete)
    bad = re.search(rb"(?m)^\S+ \S+ \d+ (CRITICAL .*|.*Successfully stopped conductor.*)$", complete) \
        or re.search(rb"(?m)^(.*Address already in use.*)$", complete)
    if bad:
        print("ironic failed during startup: %s" % bad.group(1).decode(errors="replace")[:300],
              file=sys.stderr)
        sys.exit(1)
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            c.request("GET", "/")
            if c.getresponse().status == 200:
                sys.exit(0)
        finally:
            c.close()
    except OSError:
        pass
    time.sleep(0.1)
print("GET http://127.0.0.1:%d/ not 200 after %g s" % (port, timeout), file=sys.stderr)
sys.exit(1)
EOF
then
  fail "ironic did not come up on 127.0.0.1:$PORT"
fi
echo "ironic-harness start: pid $pid on http://127.0.0.1:$PORT ready in $(elapsed "$t1") s (schema $t_schema s; require_tls=$require_tls fast_track=$fast_track automated_clean=$automated_clean)"
