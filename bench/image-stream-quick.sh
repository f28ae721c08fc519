#!/usr/bin/env bash
# Quick raw-image streaming comparison (issue 6's performance target): a raw image served
# over loopback HTTP and written to a loop device
#   (a) by our agent's `write_image` deploy step (sha256 verified while streaming), and
#   (b) by `curl -s URL | dd of=<same loop> bs=4M oflag=direct` (no checksum),
# in alternating runs. Prints MB/s (10^6 bytes/s) and CPU seconds (user + system; the
# image server's not counted) of every run, the medians, and each agent's peak RSS. On a
# busy machine the CPU seconds are the steadier figure.
#
#   bench/image-stream-quick.sh [--size-mib 1024] [--runs 5] [--backing-dir /dev/shm]
#                               [--agent target/release/ironic-agent] [--agent OTHER ...]
#                               [--direct-io]
#
# Several --agent binaries (e.g. before and after a change) take turns with curl|dd in
# every run. "stream" is the streaming part as the agent logs it (request sent → body
# written, hashed and synced); "step" is the whole deploy step as a client sees it (device
# choice, stream, rescan), polled every 20 ms. The loop device's backing file lives in
# --backing-dir (tmpfs by default: no disk noise, so CPU overhead shows fully); with
# --direct-io the loop device writes through to it (`losetup --direct-io=on`), so a
# backing file on a real disk makes the device as slow as that disk.
# Needs root (losetup). Everything it creates is removed on exit, Ctrl-C and TERM.
set -euo pipefail

SIZE_MIB=1024
RUNS=5
BACKING_DIR=/dev/shm
AGENTS=()
LOOP_DIO=off
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mib) SIZE_MIB="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --agent) AGENTS+=("$2"); shift 2 ;;
        --backing-dir) BACKING_DIR="$2"; shift 2 ;;
        --direct-io) LOOP_DIO=on; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ ${#AGENTS[@]} -gt 0 ] || AGENTS=("$(cd "$(dirname "$0")/.." && pwd)/target/release/ironic-agent")
[ "$(id -u)" = 0 ] || { echo "needs root (losetup)" >&2; exit 1; }
for bin in "${AGENTS[@]}"; do
    [ -x "$bin" ] || { echo "no agent binary at $bin (cargo build --release)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/image-stream-quick.XXXXXX")
BACKING=$(mktemp "$BACKING_DIR/image-stream-quick-disk.XXXXXX")
LOOP=""
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
    rm -rf "$WORK" "$BACKING"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
percent() { python3 -c "print(round(100 * $1 / $2))"; }

IMAGE="$WORK/image.raw"
BYTES=$((SIZE_MIB * 1024 * 1024))
head -c "$BYTES" /dev/urandom > "$IMAGE"
DIGEST=$(sha256sum "$IMAGE" | cut -d' ' -f1)
truncate -s $(( (SIZE_MIB + 64) * 1024 * 1024 )) "$BACKING"
LOOP=$(losetup -f --show --direct-io="$LOOP_DIO" "$BACKING")

# The image server: threaded, HEAD and GET, sendfile from the page cache.
HTTP_PORT=$(free_port)
python3 - "$HTTP_PORT" "$IMAGE" <<'EOF' &
import http.server, os, sys
port, path = int(sys.argv[1]), sys.argv[2]
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def head(self):
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()
    def do_HEAD(self):
        self.head()
    def do_GET(self):
        self.head()
        with open(path, "rb") as f:
            self.connection.sendfile(f)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
EOF
PIDS+=($!)
URL="http://127.0.0.1:$HTTP_PORT/image.raw"

# The agents: standalone, the loop device their only allowed disk. Logs opened with
# O_APPEND so truncating them between runs keeps them readable.
TOKEN=bench-$$
AGENT_PID=(); AGENT_API=()
for i in "${!AGENTS[@]}"; do
    port=$(free_port)
    "${AGENTS[$i]}" --standalone --agent-token "$TOKEN" --listen-host 127.0.0.1 --listen-port "$port" \
        --cmdline-file /dev/null --state-dir "$WORK/state-$i" --block-device-allowlist "$LOOP" \
        >> "$WORK/agent-$i.log" 2>&1 &
    AGENT_PID[i]=$!
    PIDS+=("${AGENT_PID[$i]}")
    AGENT_API[i]="http://127.0.0.1:$port"
    for _ in $(seq 100); do
        curl -sf "${AGENT_API[$i]}/v1/status" > /dev/null && break
        sleep 0.1
    done
    curl -sf "${AGENT_API[$i]}/v1/status" > /dev/null \
        || { echo "agent ${AGENTS[$i]} did not start:"; cat "$WORK/agent-$i.log"; exit 1; } >&2
done

# An agent's CPU time so far (user + system), in seconds.
agent_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/${AGENT_PID[$1]}/stat"; }

# One write_image step through agent $1 (run $2); prints "<stream MB/s> <step MB/s> <CPU s>".
agent_run() {
    local i="$1" n="$2" api="${AGENT_API[$1]}" log="$WORK/agent-$1.log" body id status
    local started ended t0 t1 cpu0 cpu1
    body=$(printf '{"name": "deploy.execute_deploy_step", "params": {"step": {"step": "write_image", "interface": "deploy", "priority": 0, "args": {"configdrive": null, "image_info": {"id": "quick-%s-%s", "urls": ["%s"], "os_hash_algo": "sha256", "os_hash_value": "%s", "disk_format": "raw", "stream_raw_images": true, "image_type": "whole-disk"}}}, "node": {"uuid": "bench", "properties": {"root_device": {"name": "%s"}}, "instance_info": {}, "driver_internal_info": {}}, "ports": []}}' \
        "$i" "$n" "$URL" "$DIGEST" "$LOOP")
    : > "$log"
    cpu0=$(agent_cpu "$i")
    started=$(date +%s.%N)
    id=$(curl -sf -H 'Content-Type: application/json' -d "$body" \
        "$api/v1/commands/?wait=false&agent_token=$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    while :; do
        status=$(curl -sf "$api/v1/commands/$id?agent_token=$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["command_status"])')
        [ "$status" != RUNNING ] && break
        sleep 0.02
    done
    ended=$(date +%s.%N)
    cpu1=$(agent_cpu "$i")
    [ "$status" = SUCCEEDED ] || { echo "write_image $status:" >&2; tail -20 "$log" >&2; exit 1; }
    # The streaming part, from the agent's own log timestamps.
    t0=$(grep -a -m1 'writing image quick-' "$log" | sed 's/\x1b\[[0-9;]*m//g' | cut -d' ' -f1)
    t1=$(grep -a -m1 'image downloaded and verified' "$log" | sed 's/\x1b\[[0-9;]*m//g' | cut -d' ' -f1)
    python3 - "$BYTES" "$t0" "$t1" "$started" "$ended" "$cpu0" "$cpu1" <<'EOF'
import sys, datetime
b = int(sys.argv[1])
p = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
print("%.0f %.0f %.2f" % (b / (p(sys.argv[3]) - p(sys.argv[2])) / 1e6,
                          b / (float(sys.argv[5]) - float(sys.argv[4])) / 1e6,
                          float(sys.argv[7]) - float(sys.argv[6])))
EOF
}

# One curl | dd; prints "<MB/s> <CPU s of curl and dd>".
dd_run() {
    local out
    out=$( { TIMEFORMAT='%R %U %S'; time (curl -sf "$URL" | dd of="$LOOP" bs=4M oflag=direct iflag=fullblock status=none); } 2>&1 )
    python3 -c "r, u, s = map(float, '$out'.split()); print('%.0f %.2f' % ($BYTES / r / 1e6, u + s))"
}

# The loop device must hold the image after every write; then its start is zeroed so
# the next write has to rewrite it.
check_and_reset_disk() {
    local got
    got=$(head -c "$BYTES" "$LOOP" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$DIGEST" ] || { echo "the loop device does not hold the image after $1" >&2; exit 1; }
    dd if=/dev/zero of="$LOOP" bs=1M count=1 oflag=direct status=none
}

echo "image: $SIZE_MIB MiB raw from $URL to $LOOP (backing in $BACKING_DIR, direct-io $LOOP_DIO), $RUNS alternating runs"
declare -A STREAM STEP ACPU
DDS=(); DCPU=()
for n in $(seq "$RUNS"); do
    line="run $n:"
    for i in "${!AGENTS[@]}"; do
        sync
        read -r stream step cpu < <(agent_run "$i" "$n")
        check_and_reset_disk "agent $i run $n"
        STREAM[$i]+="$stream "; STEP[$i]+="$step "; ACPU[$i]+="$cpu "
        line+=" agent#$i stream $stream MB/s, step $step MB/s ($cpu CPU s);"
    done
    sync
    read -r dd dcpu < <(dd_run)
    check_and_reset_disk "curl|dd run $n"
    DDS+=("$dd"); DCPU+=("$dcpu")
    echo "$line curl|dd $dd MB/s ($dcpu CPU s)"
done
md=$(median "${DDS[@]}")
echo "medians of $RUNS: curl|dd $md MB/s ($(median "${DCPU[@]}") CPU s)"
for i in "${!AGENTS[@]}"; do
    # shellcheck disable=SC2086 # word splitting of the collected figures is intended
    ms=$(median ${STREAM[$i]}); mt=$(median ${STEP[$i]}); mc=$(median ${ACPU[$i]})
    peak=$(awk '/^VmHWM/ {print $2 / 1024 " MiB"}' "/proc/${AGENT_PID[$i]}/status")
    echo "  agent#$i ${AGENTS[$i]}: stream $ms MB/s ($(percent "$ms" "$md")% of curl|dd), step $mt MB/s ($(percent "$mt" "$md")%), $mc CPU s, peak RSS $peak"
done
