#!/usr/bin/env bash
# Quick raw-image streaming comparison (issue 6's performance target): a raw image served
# over loopback HTTP and written to a loop device
#   (a) by our agent's `write_image` deploy step (sha256 verified while streaming), and
#   (b) by `curl -s URL | dd of=<same loop> bs=4M oflag=direct` (no checksum),
# in alternating runs. Prints MB/s (10^6 bytes/s) of every run and the medians.
#
#   bench/image-stream-quick.sh [--size-mib 1024] [--runs 5] [--agent target/release/ironic-agent]
#                               [--backing-dir /dev/shm]
#
# "agent stream" is the streaming part as the agent logs it (request sent → body written,
# hashed and synced); "agent step" is the whole deploy step as a client sees it (device
# choice, stream, rescan), polled every 20 ms. The loop device's backing file lives in
# --backing-dir (tmpfs by default: no disk noise, so CPU overhead shows fully).
# Needs root (losetup). Everything it creates is removed on exit, Ctrl-C and TERM.
set -euo pipefail

SIZE_MIB=1024
RUNS=5
AGENT="${AGENT:-$(cd "$(dirname "$0")/.." && pwd)/target/release/ironic-agent}"
BACKING_DIR=/dev/shm
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mib) SIZE_MIB="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --agent) AGENT="$2"; shift 2 ;;
        --backing-dir) BACKING_DIR="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "needs root (losetup)" >&2; exit 1; }
[ -x "$AGENT" ] || { echo "no agent binary at $AGENT (cargo build --release)" >&2; exit 1; }

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

IMAGE="$WORK/image.raw"
BYTES=$((SIZE_MIB * 1024 * 1024))
head -c "$BYTES" /dev/urandom > "$IMAGE"
DIGEST=$(sha256sum "$IMAGE" | cut -d' ' -f1)
# Room for the image, and large enough to be a root-disk candidate without hints (4 GiB).
truncate -s $(( (SIZE_MIB + 4096) * 1024 * 1024 )) "$BACKING"
LOOP=$(losetup -f --show "$BACKING")

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

TOKEN=bench-$$
AGENT_PORT=$(free_port)
"$AGENT" --standalone --agent-token "$TOKEN" --listen-host 127.0.0.1 --listen-port "$AGENT_PORT" \
    --cmdline-file /dev/null --state-dir "$WORK/state" --block-device-allowlist "$LOOP" \
    >> "$WORK/agent.log" 2>&1 &  # O_APPEND: truncating it between runs keeps it readable
PIDS+=($!)
API="http://127.0.0.1:$AGENT_PORT"
for _ in $(seq 100); do
    curl -sf "$API/v1/status" > /dev/null && break
    sleep 0.1
done
curl -sf "$API/v1/status" > /dev/null || { echo "the agent did not start:"; cat "$WORK/agent.log"; exit 1; } >&2

# One write_image step through the agent; prints "<stream MB/s> <step MB/s>".
agent_run() {
    local n="$1" body id status started ended t0 t1
    body=$(printf '{"name": "deploy.execute_deploy_step", "params": {"step": {"step": "write_image", "interface": "deploy", "priority": 0, "args": {"configdrive": null, "image_info": {"id": "quick-%s", "urls": ["%s"], "os_hash_algo": "sha256", "os_hash_value": "%s", "disk_format": "raw", "stream_raw_images": true, "image_type": "whole-disk"}}}, "node": {"uuid": "bench", "properties": {"root_device": {"name": "%s"}}, "instance_info": {}, "driver_internal_info": {}}, "ports": []}}' \
        "$n" "$URL" "$DIGEST" "$LOOP")
    : > "$WORK/agent.log"
    started=$(date +%s.%N)
    id=$(curl -sf -H 'Content-Type: application/json' -d "$body" \
        "$API/v1/commands/?wait=false&agent_token=$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    while :; do
        status=$(curl -sf "$API/v1/commands/$id?agent_token=$TOKEN" | python3 -c 'import json,sys; print(json.load(sys.stdin)["command_status"])')
        [ "$status" != RUNNING ] && break
        sleep 0.02
    done
    ended=$(date +%s.%N)
    [ "$status" = SUCCEEDED ] || { echo "write_image $status:" >&2; tail -20 "$WORK/agent.log" >&2; exit 1; }
    # The streaming part, from the agent's own log timestamps.
    t0=$(grep -a -m1 'writing image quick-' "$WORK/agent.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -d' ' -f1)
    t1=$(grep -a -m1 'image downloaded and verified' "$WORK/agent.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -d' ' -f1)
    python3 - "$BYTES" "$t0" "$t1" "$started" "$ended" <<'EOF'
import sys, datetime
b = int(sys.argv[1])
p = lambda t: datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
print("%.0f %.0f" % (b / (p(sys.argv[3]) - p(sys.argv[2])) / 1e6,
                     b / (float(sys.argv[5]) - float(sys.argv[4])) / 1e6))
EOF
}

# One curl | dd; prints MB/s.
dd_run() {
    local started ended
    started=$(date +%s.%N)
    curl -sf "$URL" | dd of="$LOOP" bs=4M oflag=direct iflag=fullblock status=none
    ended=$(date +%s.%N)
    python3 -c "print('%.0f' % ($BYTES / ($ended - $started) / 1e6))"
}

check_disk() {
    local got
    got=$(head -c "$BYTES" "$LOOP" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$DIGEST" ] || { echo "the loop device does not hold the image after $1" >&2; exit 1; }
}

echo "image: $SIZE_MIB MiB raw, served by $URL; device $LOOP (backing in $BACKING_DIR); agent $AGENT"
STREAMS=(); STEPS=(); DDS=()
for n in $(seq "$RUNS"); do
    sync
    read -r stream step < <(agent_run "$n")
    check_disk "agent run $n"
    sync
    dd=$(dd_run)
    check_disk "dd run $n"
    dd if=/dev/zero of="$LOOP" bs=1M count=1 oflag=direct status=none  # the next write must rewrite it
    STREAMS+=("$stream"); STEPS+=("$step"); DDS+=("$dd")
    printf 'run %d: agent stream %s MB/s, agent step %s MB/s, curl|dd %s MB/s\n' "$n" "$stream" "$step" "$dd"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms=$(median "${STREAMS[@]}"); mt=$(median "${STEPS[@]}"); md=$(median "${DDS[@]}")
printf 'median of %d: agent stream %s MB/s (%s%% of curl|dd), agent step %s MB/s (%s%%), curl|dd %s MB/s\n' \
    "$RUNS" "$ms" "$(python3 -c "print(round(100*$ms/$md))")" "$mt" "$(python3 -c "print(round(100*$mt/$md))")" "$md"
