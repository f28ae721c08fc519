#!/usr/bin/env python3
"""Benchmark row "assisted agent exit → command done" (issues 8 and 11).

Boots the private, REAL systemd of tests/harness/systemd with the `agent.service`
stand-in (tests/harness/systemd/assisted-units), starts the agent under test
standalone (127.0.0.1, a token, confined by bench/sandbox/run.sh) with
DBUS_SYSTEM_BUS_ADDRESS pointing at that systemd's bus, and R times: posts
`deploy.execute_deploy_step` with the `start_assisted_install` step; the unit's main
process exits after --seconds with --exit-code; measures from that exit to the moment
the agent's command leaves RUNNING.

  bench/assisted-exit.py [--runs 7] [--seconds 2] [--exit-code 0]
                         [--agent BINARY | --agent-cmd TEMPLATE] [--poll-ms 1]
                         [--agent-log FILE]

The agent under test: --agent-cmd / env AGENT_CMD, a command template with {port} and
{token} as in bench/bench.py (wrapped in bench/sandbox/run.sh unless it already is);
default: BINARY (default target/release/ironic-agent) with bench.py's standalone flags.

Output: one JSON object per line, {"run": i, "exit_to_done_ms": x, ...}, then one
summary object ({"summary": ...}: median, min, max). Exit status 0 only when every run
ended as expected (SUCCEEDED for exit code 0, FAILED naming `exit-code` otherwise).
Everything started (agent, sandbox, systemd) is stopped on exit, Ctrl-C, TERM and HUP.

How it is measured, and why:
- Start: the wall clock (ns) the unit's main process writes (`date +%s%N`) right
  before `exit` (DIR/run/sdtest/agent.service.ts). It precedes the real exit only by
  the shell's own exit, so the figure is, if anything, slightly too large. systemd's
  ExecMainExitTimestamp is when systemd reaped the process (later than the exit, so
  it would flatter the agent), and a unit that exited cleanly is garbage-collected
  once the agent drops its reference, so it is often unreadable; it is shown as
  `systemd_exit_to_done_ms` when it can be read, as a cross-check. Both ends read
  CLOCK_REALTIME of the same kernel (no time namespace).
- End: GET /v1/commands/ on one keep-alive connection every --poll-ms (1 ms) from
  0.3 s before the unit is due to exit; the time the first answer without RUNNING
  arrived. That is agent-agnostic (any IPA-compatible agent) and an upper bound; the
  change happened after the previous poll was sent, so `resolution_ms` (answer
  received − previous poll sent, about the poll interval plus one round trip) bounds
  the error.
"""
import argparse
import http.client
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import bench  # bench/bench.py: agent templates, the sandboxed process, readiness

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HARNESS = os.path.join(REPO, "tests", "harness", "systemd")
UNITS = os.path.join(HARNESS, "assisted-units")
UNIT = "agent.service"
UNIT_PATH = "/org/freedesktop/systemd1/unit/agent_2eservice"
FAST_POLL_LEAD_S = 0.3     # 1 ms polling starts this long before the unit is due to exit
SLOW_POLL_S = 0.05         # poll interval before that
RUN_TIMEOUT_S = 60         # bound for one run beyond --seconds


class PrivateSystemd:
    """tests/harness/systemd/start.sh with the agent.service stand-in."""

    def __init__(self):
        # Short path: the bus socket path must fit a sockaddr_un (108 bytes).
        self.dir = tempfile.mkdtemp(prefix="ia-bench-sd.")
        out = subprocess.run(
            ["bash", os.path.join(HARNESS, "start.sh"), self.dir, "--owner",
             str(os.getpid()), "--units", UNITS],
            stdout=subprocess.PIPE, text=True, timeout=60)
        if out.returncode != 0:
            self.stop()
            raise RuntimeError(f"start.sh failed for {self.dir} (its output is above)")
        self.address = out.stdout.strip()

    def configure(self, seconds, exit_code):
        with open(os.path.join(self.dir, "run", "sdtest", "agent.env"), "w") as f:
            f.write(f"SDTEST_AGENT_SECONDS={seconds}\nSDTEST_AGENT_EXIT={exit_code}\n")

    def stamp_path(self):
        return os.path.join(self.dir, "run", "sdtest", f"{UNIT}.ts")

    def exit_stamp_ns(self):
        try:
            with open(self.stamp_path()) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def systemd_exit_ns(self):
        """ExecMainExitTimestamp (µs realtime) if the unit is still loaded, else None."""
        out = subprocess.run(
            ["busctl", f"--address={self.address}", "get-property", "org.freedesktop.systemd1",
             UNIT_PATH, "org.freedesktop.systemd1.Service", "ExecMainExitTimestamp"],
            capture_output=True, text=True, timeout=10)
        try:
            usec = int(out.stdout.split()[1])
        except (IndexError, ValueError):
            return None
        return usec * 1000 if usec else None

    def stop(self):
        subprocess.run(["bash", os.path.join(HARNESS, "stop.sh"), self.dir],
                       stdout=subprocess.DEVNULL, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


class Poller:
    """GET /v1/commands/ on one keep-alive connection (reconnects when closed)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()


def start_step(port):
    """Posts execute_deploy_step(start_assisted_install); returns the command id."""
    node = {"uuid": str(uuid.uuid4()), "properties": {}, "instance_info": {},
            "driver_internal_info": {}}
    step = {"interface": "deploy", "step": "start_assisted_install", "args": {},
            "priority": 0}
    status, body = bench.request(port, "POST", f"/v1/commands/?agent_token={bench.TOKEN}",
                                 {"name": "deploy.execute_deploy_step",
                                  "params": {"step": step, "node": node, "ports": []}})
    doc = json.loads(body or b"{}")
    if status != 200 or not doc.get("id"):
        raise RuntimeError(f"execute_deploy_step answered HTTP {status}: {body[:300]!r}")
    return doc["id"]


def wait_done(poller, command_id, due):
    """Polls until the command leaves RUNNING: (command, received_ns, resolution_ns)."""
    path = f"/v1/commands/?agent_token={bench.TOKEN}"
    prev_sent = None
    deadline = due + RUN_TIMEOUT_S
    while True:
        fast = time.time() >= due - FAST_POLL_LEAD_S
        sent = time.time_ns()
        status, body = poller.get(path)
        received = time.time_ns()
        if status != 200:
            raise RuntimeError(f"GET /v1/commands/ answered HTTP {status}: {body[:300]!r}")
        commands = json.loads(body).get("commands", [])
        command = next((c for c in commands if c.get("id") == command_id), None)
        if command is None:
            raise RuntimeError(f"command {command_id} is not in the agent's list")
        if command.get("command_status") != "RUNNING":
            return command, received, (received - prev_sent) if prev_sent else None
        prev_sent = sent if fast else None
        if time.time() > deadline:
            raise RuntimeError(f"the command still runs {RUN_TIMEOUT_S} s after the unit's "
                               "expected exit")
        interval = POLL_S if fast else SLOW_POLL_S
        time.sleep(max(0.0, interval - (time.time_ns() - sent) / 1e9))


def check_outcome(command, exit_code):
    """None when the command ended as the unit's exit code says it must, else why not."""
    status = command.get("command_status")
    if exit_code == 0:
        if status == "SUCCEEDED":
            return None
        return f"expected SUCCEEDED, got {status}: {command.get('command_error')}"
    error = json.dumps(command.get("command_error"))
    if status == "FAILED" and "exit-code" in error:
        return None
    return f"expected FAILED naming exit-code, got {status}: {error[:300]}"


def median_row(values):
    return {"median_ms": round(statistics.median(values), 3),
            "min_ms": round(min(values), 3), "max_ms": round(max(values), 3)}


def main():
    global POLL_S
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", "-r", type=int, default=7)
    p.add_argument("--seconds", type=float, default=2.0,
                   help="how long the unit's main process runs (default 2)")
    p.add_argument("--exit-code", type=int, default=0)
    p.add_argument("--poll-ms", type=float, default=1.0)
    p.add_argument("--agent", help="our agent's binary (bench.py's standalone flags added); "
                   "default target/release/ironic-agent")
    p.add_argument("--agent-cmd", default=os.environ.get("AGENT_CMD"),
                   help="command template of the agent under test, with {port} and {token} "
                   "(env AGENT_CMD); wrapped in bench/sandbox/run.sh")
    p.add_argument("--agent-label", default=None)
    p.add_argument("--agent-log", help="copy the agent's log here at the end")
    args = p.parse_args()
    if args.runs < 1 or args.seconds < FAST_POLL_LEAD_S or args.poll_ms <= 0:
        p.error(f"--runs ≥ 1, --seconds ≥ {FAST_POLL_LEAD_S}, --poll-ms > 0")
    POLL_S = args.poll_ms / 1000
    if os.geteuid() != 0:
        print("assisted-exit: run as root (private systemd, sandbox namespaces)",
              file=sys.stderr)
        return 2
    if args.agent_cmd:
        agent = bench.Agent(args.agent_label or "agent under test", args.agent_cmd)
    else:
        binary = args.agent or os.path.join(REPO, "target", "release", "ironic-agent")
        if not os.access(binary, os.X_OK):
            print(f"assisted-exit: {binary} missing (cargo build --release, or --agent)",
                  file=sys.stderr)
            return 2
        agent = bench.Agent(args.agent_label or "ironic-agent", f"{binary} {bench.OURS_FLAGS}")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    systemd = poller = run = None
    figures, systemd_figures, failures = [], [], []
    try:
        systemd = PrivateSystemd()
        systemd.configure(args.seconds, args.exit_code)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = systemd.address
        run = bench.Running(agent, bench.free_port())
        bench.wait_ready(run)
        poller = Poller(run.port)
        for i in range(1, args.runs + 1):
            try:
                os.unlink(systemd.stamp_path())
            except FileNotFoundError:
                pass
            posted = time.time()
            command_id = start_step(run.port)
            command, done_ns, resolution_ns = wait_done(poller, command_id,
                                                        posted + args.seconds)
            exit_ns = systemd.exit_stamp_ns()
            problem = check_outcome(command, args.exit_code)
            if exit_ns is None:
                problem = problem or f"{UNIT} never stamped its exit (did it run?)"
            row = {"run": i}
            if problem:
                row["error"] = problem
                failures.append(i)
            else:
                row["exit_to_done_ms"] = round((done_ns - exit_ns) / 1e6, 3)
                row["resolution_ms"] = (round(resolution_ns / 1e6, 3)
                                        if resolution_ns else None)
                figures.append(row["exit_to_done_ms"])
                reaped_ns = systemd.systemd_exit_ns()
                if reaped_ns:
                    row["systemd_exit_to_done_ms"] = round((done_ns - reaped_ns) / 1e6, 3)
                    systemd_figures.append(row["systemd_exit_to_done_ms"])
            row["command_status"] = command.get("command_status")
            print(json.dumps(row), flush=True)
        summary = {"summary": "assisted agent exit → command done", "agent": agent.label,
                   "command": shlex.join(agent.argv(run.port)), "runs": args.runs,
                   "ok_runs": len(figures), "unit_seconds": args.seconds,
                   "unit_exit_code": args.exit_code, "poll_ms": args.poll_ms}
        if figures:
            summary.update(median_row(figures))
        if systemd_figures:
            summary["systemd_exit_to_done"] = median_row(systemd_figures)
        print(json.dumps(summary, ensure_ascii=False), flush=True)
        if failures:
            print(f"assisted-exit: runs {failures} did not end as expected; last lines of "
                  f"the agent's log:\n{run.read('agent.log')[-3000:]}", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        print("\nassisted-exit: interrupted; agent and systemd stopped", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as err:
        tail = run.read("agent.log")[-3000:] if run else ""
        print(f"assisted-exit: {err}\n{tail}", file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if poller:
            poller.close()
        if run and args.agent_log:
            with open(args.agent_log, "w") as f:
                f.write(run.read("agent.log"))
        bench.cleanup()
        if systemd:
            systemd.stop()


POLL_S = 0.001

if __name__ == "__main__":
    sys.exit(main())
