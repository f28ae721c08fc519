#!/usr/bin/env bash
# The main job. For now: build the agent, run it standalone on loopback and
# show real answers of its IPA-compatible API; always stop it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -j2 --quiet
BIN=target/debug/ironic-agent
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp -t ironic-agent-demo.XXXXXX.log)
TOKEN=demo-token-0123456789abcdef0123456789abcdef

"$BIN" --standalone --agent-token "$TOKEN" --listen-host 127.0.0.1 --listen-port "$PORT" \
    --cmdline-file /dev/null 2>"$LOG" &
AGENT=$!
trap 'kill -TERM $AGENT 2>/dev/null || true; wait $AGENT 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 200); do curl -fs "http://127.0.0.1:$PORT/v1/status" >/dev/null && break; sleep 0.05; done

show() { echo "\$ curl $1"; curl -s -w '  [HTTP %{http_code}]\n' "$@"; echo; }
show "http://127.0.0.1:$PORT/v1/status"
show "http://127.0.0.1:$PORT/v1/commands/"
show "http://127.0.0.1:$PORT/v1/commands/?agent_token=$TOKEN"

kill -TERM $AGENT; wait $AGENT && echo "agent stopped cleanly (exit 0)"
trap - EXIT INT TERM
echo "agent log: $LOG"
