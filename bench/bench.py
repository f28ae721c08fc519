#!/usr/bin/env python3
"""Side-by-side benchmarks: our agent vs ironic-python-agent 13.0.0 (issue 11).

Both agents run standalone, confined by bench/sandbox/run.sh, listening on
127.0.0.1 only. Runs alternate between the two agents so that load on a
shared machine hits both alike; every ratio compares figures of this run.
Writes the report (default BENCHMARKS.md). Python 3 standard library only;
`wrk` (Debian package) for throughput. See bench/README.md.
"""
import argparse
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOKEN = "bench-token-0123456789abcdef0123456789"
SANDBOX = os.path.join(HERE, "sandbox", "run.sh")
IPA_LAUNCHER = os.path.join(HERE, "ipa-standalone.sh")
OURS_FLAGS = ("--standalone --agent-token {token} --listen-host 127.0.0.1 "
              "--listen-port {port} --cmdline-file /dev/null")
POLL_S = 0.005           # readiness poll interval
START_TIMEOUT_S = 60
SETTLE_S = 1.0           # idle time before "idle RSS" is read


# ---------------------------------------------------------------- agents --

class Agent:
    """One agent under test: a command template with {port} and {token}."""

    def __init__(self, label, template):
        self.label = label
        self.template = template

    def argv(self, port):
        argv = shlex.split(self.template.format(port=port, token=TOKEN))
        # Whatever runs is confined: wrap unless the template already is.
        first = os.path.realpath(argv[0]) if os.path.exists(argv[0]) else argv[0]
        if first not in (os.path.realpath(SANDBOX), os.path.realpath(IPA_LAUNCHER)):
            argv = [SANDBOX] + argv
        return argv

    def binary(self):
        """The agent's own executable (for its size), if one can be told."""
        for word in shlex.split(self.template):
            path = shutil.which(word) or word
            if os.path.isfile(path) and os.access(path, os.X_OK) and \
                    os.path.realpath(path) not in (os.path.realpath(SANDBOX),):
                return path
        return None


LIVE = []   # every Running not yet stopped; cleanup() ends them


class Running:
    """A started agent: the sandbox's unshare process and the agent inside."""

    def __init__(self, agent, port):
        self.agent, self.port = agent, port
        self.dir = tempfile.mkdtemp(prefix="bench-sandbox.")
        self.log = open(os.path.join(self.dir, "agent.log"), "wb")
        env = dict(os.environ, BENCH_SANDBOX_DIR=self.dir)
        self.spawned_at = time.time()
        # Own session: a Ctrl-C on the terminal reaches only us; we stop it.
        self.proc = subprocess.Popen(agent.argv(port), stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        LIVE.append(self)
        self._pid = None

    def exec_stamp(self):
        with open(os.path.join(self.dir, "exec-stamp")) as f:
            return float(f.read())

    def pid(self):
        """Host PID of the agent: the child of the namespace's init shell."""
        if self._pid is None:
            init = children(self.proc.pid)
            agent = children(init[0]) if init else []
            if agent:
                self._pid = agent[0]
        return self._pid

    def read(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self not in LIVE:
            return
        init = children(self.proc.pid)
        pid = self.pid()
        # unshare --fork ignores TERM: KILL it, --kill-child TERMs the init
        # shell, which forwards TERM to the agent.
        kill(self.proc.pid, signal.SIGKILL)
        deadline = time.time() + 5
        while pid and alive(pid) and time.time() < deadline:
            time.sleep(0.02)
        for p in init:   # KILL of a namespace's init kills all inside it
            kill(p, signal.SIGKILL)
        self.proc.wait()
        self.log.close()
        LIVE.remove(self)
        # Keep what the report needs, then drop the sandbox's directory.
        self.shims = self.read("shim.log").splitlines()
        shutil.rmtree(self.dir, ignore_errors=True)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def cleanup():
    for r in list(LIVE):
        r.stop()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid, key):
    """A /proc/<pid>/status field in MiB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def cpu_seconds(pid):
    """CPU time of all the process's threads, in ns precision (schedstat)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass   # a thread that just ended
    return total / 1e9


# ------------------------------------------------------------------ http --

def request(port, method, path, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(run):
    """Polls GET /v1/status every POLL_S until it answers 200; returns that time."""
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        t = time.time()
        try:
            status, _ = request(run.port, "GET", "/v1/status", timeout=2)
            if status == 200:
                return time.time()
        except OSError:
            pass
        if run.proc.poll() is not None:
            raise RuntimeError(f"{run.agent.label} exited ({run.proc.returncode}); last "
                               f"lines of its log:\n{run.read('agent.log')[-2000:]}")
        time.sleep(max(0.0, POLL_S - (time.time() - t)))
    raise RuntimeError(f"{run.agent.label}: no answer on /v1/status in {START_TIMEOUT_S} s")


def inventory(port):
    """poll.get_hardware_info through the API: (seconds, None) or (None, error)."""
    t = time.time()
    status, body = request(port, "POST", f"/v1/commands/?wait=true&agent_token={TOKEN}",
                           {"name": "poll.get_hardware_info", "params": {}})
    dt = time.time() - t
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    if status == 200 and doc.get("command_status") == "SUCCEEDED" and doc.get("command_result"):
        return dt, None
    err = doc.get("command_error") or {}
    detail = (err.get("details") or err.get("message") or
              body[:200].decode(errors="replace") or "(empty body)")
    return None, f"HTTP {status} {doc.get('command_status', '')}: {detail}".strip()


# ------------------------------------------------------------------- wrk --

def parse_wrk(out):
    """wrk --latency output → requests/s, p99 (ms), errors (non-2xx + socket)."""
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    if not rps or not p99:
        raise ValueError("unexpected wrk output:\n" + out)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return float(rps.group(1)), float(p99.group(1)) * units[p99.group(2)], errors


def wrk_cmd(port, path, seconds):
    return ["wrk", "-t2", "-c16", f"-d{seconds}s", "--timeout", "2s", "--latency",
            f"http://127.0.0.1:{port}{path}"]


def run_wrk(port, path, seconds):
    out = subprocess.run(wrk_cmd(port, path, seconds), capture_output=True, text=True,
                         timeout=seconds + 30, check=True).stdout
    return parse_wrk(out)


# ----------------------------------------------------------------- stats --

def summary(values):
    """'median (min–max)' of a sample, or None."""
    return (statistics.median(values), min(values), max(values)) if values else None


def fmt(s, unit, digits=1):
    if s is None:
        return "—"
    med, lo, hi = s
    return f"{med:,.{digits}f} {unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


# ------------------------------------------------------------ benchmarks --

def bench_starts(agents, runs, log):
    """Cold start, idle RSS, inventory latency and RSS after it, per agent."""
    res = {a.label: {"cold": [], "spawn": [], "cpu": [], "idle_rss": [], "inv": [],
                     "inv_warm": [], "hwm": [], "inv_error": None, "shims": []}
           for a in agents}
    for i in range(runs):
        for a in agents:
            r = res[a.label]
            run = Running(a, free_port())
            try:
                ready = wait_ready(run)
                r["cold"].append(ready - run.exec_stamp())
                r["spawn"].append(ready - run.spawned_at)
                pid = run.pid()
                r["cpu"].append(cpu_seconds(pid))
                time.sleep(SETTLE_S)
                r["idle_rss"].append(proc_status(pid, "VmRSS"))
                for key in ("inv", "inv_warm"):
                    dt, err = inventory(run.port)
                    if err:
                        r["inv_error"] = err
                        break
                    r[key].append(dt)
                r["hwm"].append(proc_status(pid, "VmHWM"))
            finally:
                run.stop()
            r["shims"] += run.shims
            log(f"  start {i + 1}/{runs} {a.label}: ready in {r['cold'][-1] * 1000:.1f} ms, "
                f"idle RSS {r['idle_rss'][-1]:.1f} MiB"
                + (f", inventory {r['inv'][-1] * 1000:.1f} ms" if r["inv"] and not r["inv_error"]
                   else f", inventory failed: {r['inv_error']}"))
    return res


ENDPOINTS = [("GET /v1/status", "/v1/status"),
             ("GET /v1/commands/", f"/v1/commands/?agent_token={TOKEN}")]


def bench_http(agents, runs, seconds, log):
    """wrk against one fresh instance per agent (empty command list)."""
    res = {a.label: {name: {"rps": [], "p99": [], "errors": 0} for name, _ in ENDPOINTS}
           for a in agents}
    running = []
    try:
        for a in agents:
            run = Running(a, free_port())
            running.append(run)
            wait_ready(run)
        time.sleep(SETTLE_S)
        for run in running:
            for _, path in ENDPOINTS:
                status, body = request(run.port, "GET", path)
                if status != 200:
                    raise RuntimeError(f"{run.agent.label} GET {path}: {status} {body[:200]}")
        for i in range(runs):
            for name, path in ENDPOINTS:
                for run in running:
                    rps, p99, errors = run_wrk(run.port, path, seconds)
                    r = res[run.agent.label][name]
                    r["rps"].append(rps)
                    r["p99"].append(p99)
                    r["errors"] += errors
                    log(f"  wrk {i + 1}/{runs} {name} {run.agent.label}: "
                        f"{rps:,.0f} req/s, p99 {p99:.2f} ms, errors {errors}")
    finally:
        for run in running:
            run.stop()
    return res


def du_bytes(path):
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


# ---------------------------------------------------------------- report --

def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kib / 1024 / 1024:.1f} GiB RAM, "
            f"kernel {platform.release()}, {platform.machine()}")


def git_revision():
    def git(*args):
        return subprocess.run(["git", "-C", REPO, *args], capture_output=True,
                              text=True).stdout.strip()
    rev = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        rev += " (with uncommitted changes)"
    return rev


def ratio_row(name, ours, base, unit, target=None, lower_is_better=True, digits=1):
    """One table row; the ratio compares the two medians of this run.

    target: the issue's goal for ours ÷ IPA (None: informational row)."""
    if ours is None or base is None:
        return None
    r = ours[0] / base[0] if base[0] else float("inf")
    if lower_is_better:
        inv = 1 / r if r else float("inf")
        ratio = f"{r:.3f} (1/{inv:,.1f})" if inv < 10 else f"{r:.3f} (1/{inv:,.0f})"
        met = target is not None and r <= target
        target_s = f"≤ 1/{round(1 / target)}" if target else "—"
    else:
        ratio = f"{r:,.1f}×"
        met = target is not None and r >= target
        target_s = f"≥ {target:g}×" if target else "—"
    verdict = "" if target is None else ("met" if met else "**not met**")
    return (f"| {name} | {fmt(ours, unit, digits)} | {fmt(base, unit, digits)} | "
            f"{ratio} | {target_s} | {verdict} |")


def report(args, agents, starts, http, sizes, began, log_lines):
    ours, base = agents
    o, b = starts[ours.label], starts[base.label]
    ms = lambda xs: summary([x * 1000 for x in xs])  # noqa: E731
    rows = [
        ratio_row("cold start → `/v1/status` answers (from exec in the sandbox)",
                  ms(o["cold"]), ms(b["cold"]), "ms", 1 / 50),
        ratio_row("… counted from spawning the sandbox (adds its namespace set-up)",
                  ms(o["spawn"]), ms(b["spawn"]), "ms"),
        ratio_row("CPU time of the agent until `/v1/status` answers", ms(o["cpu"]),
                  ms(b["cpu"]), "ms", digits=0),
        ratio_row("idle RSS after start (VmRSS)", summary(o["idle_rss"]),
                  summary(b["idle_rss"]), "MiB", 1 / 10),
    ]
    if o["inv_error"] or b["inv_error"]:
        rows.append(ratio_row("peak RSS (VmHWM) — no verdict: an inventory failed, so "
                              "this is not RSS after an inventory",
                              summary(o["hwm"]), summary(b["hwm"]), "MiB"))
    else:
        rows.append(ratio_row("RSS after an inventory (VmHWM)", summary(o["hwm"]),
                              summary(b["hwm"]), "MiB", 1 / 10))
    for name, _ in ENDPOINTS:
        if http is None:
            rows.append(f"| `{name}` throughput and p99 | not measured: --skip-wrk | | | | |")
            continue
        ho, hb = http[ours.label][name], http[base.label][name]
        rows.append(ratio_row(f"`{name}` throughput", summary(ho["rps"]),
                              summary(hb["rps"]), "req/s", 20, lower_is_better=False,
                              digits=0))
        rows.append(ratio_row(f"`{name}` p99 latency", summary(ho["p99"]),
                              summary(hb["p99"]), "ms", 1 / 10, digits=2))
    for label, r in ((ours.label, o), (base.label, b)):
        if r["inv_error"]:
            rows.append(f"| full inventory (`poll.get_hardware_info`) | not available in "
                        f"this build: {label} answered `{r['inv_error'][:160]}` | | | | |")
            break
    else:
        rows.append(ratio_row("full inventory (`poll.get_hardware_info`), first call",
                              ms(o["inv"]), ms(b["inv"]), "ms", 1 / 10))
        rows.append(ratio_row("full inventory, second call", ms(o["inv_warm"]),
                              ms(b["inv_warm"]), "ms", 1 / 10))
    rows += sizes
    rows += [
        "| raw image stream to a loop device with sha256 (2 GiB) | not measured: this bench "
        "has no driver for it yet (needs loop devices, an image server and the agent's "
        "`write_image`) | | | > IPA, ≥ 90 % of `curl \\| dd` | |",
        "| assisted agent exit → command done | not measured: this bench has no driver for it "
        "yet (needs the real-systemd harness and a heartbeat to a conductor) | | | < 100 ms | |",
        "| one deploy through the real conductor (start → `active`), and its CPU time | "
        "not measured: this bench has no driver for it yet (needs lookup + heartbeat "
        "against the Ironic harness) | | | ≤ 0.6× | |",
    ]
    shim_calls = {a.label: sorted({line.split(" ", 1)[-1].replace("noop shim: ", "")
                                   for line in starts[a.label]["shims"]}) or ["none"]
                  for a in agents}
    now = datetime.now(timezone.utc)
    lines = [
        "# Benchmarks: ironic-agent vs ironic-python-agent 13.0.0",
        "",
        "Generated by `make bench` (`bench/run.sh` → `bench/bench.py`); do not edit by hand.",
        "",
    ]
    if args.note:
        lines += [f"> **{args.note}**", ""]
    lines += [
        f"- date: {began:%Y-%m-%d %H:%M} UTC (took {(now - began).total_seconds():.0f} s)",
        f"- git revision: {git_revision()}",
        f"- machine: {machine()}; load average at the end: "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- runs: {args.runs} cold starts per agent, alternating; wrk {args.runs} × "
        f"{args.wrk_seconds} s per endpoint and agent, alternating",
        "- cells: median (min–max); ratio = ours ÷ IPA of the medians of this run",
        "",
        f"| figure | ours ({ours.label}) | {base.label} | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    lines += [r for r in rows if r]
    if http is not None:
        lines += ["", "wrk errors (non-2xx answers + socket errors), all runs: " + "; ".join(
            f"{a.label} {name}: {http[a.label][name]['errors']}"
            for a in agents for name, _ in ENDPOINTS) + "."]
    lines += [
        "",
        "## How it was measured",
        "",
        "Both agents run standalone (no lookup, no heartbeat) inside the same protective "
        "namespaces (`bench/sandbox/run.sh`: private mount and PID namespaces, no block "
        "devices, no-op `systemctl`/`udevadm`/`modprobe`, read-only `ip`), listening on "
        "127.0.0.1 only. Calls the shims intercepted during the starts (a power or network "
        "change here would be a bug): " +
        "; ".join(f"{k}: " + ", ".join(f"`{c}`" for c in v) for k, v in shim_calls.items()) + ".",
        "",
        "- agent under test: `" + shown(ours.argv("{port}")) + "`" + ours_version(ours),
        "- reference: `" + shown(base.argv("{port}")) + "`",
        f"- cold start: spawn, then `GET /v1/status` every {POLL_S * 1000:.0f} ms until 200; "
        "measured from the sandbox's timestamp just before it starts the agent "
        "(the second row from spawning the sandbox). CPU time: the agent process's threads "
        "(`/proc/<pid>/task/*/schedstat`) at that moment.",
        f"- RSS: `/proc/<agent pid>/status` VmRSS {SETTLE_S:g} s after it answered; VmHWM "
        "after two `poll.get_hardware_info` calls.",
        "- inventory: `POST /v1/commands/?wait=true` with `poll.get_hardware_info`, "
        "twice per start (the first call is the one a conductor sees).",
        "- throughput: `" + " ".join(wrk_cmd("<port>", "<path>", args.wrk_seconds)) +
        "` on one fresh instance per agent (command list empty); wrk shares the CPUs "
        "with the agent.",
        "- sizes: our binary as built; our image from `container/build-image.sh` (what "
        "`make image` runs); IPA: `du -sb` of its venv (Python itself and the OS "
        "packages IPA needs are not counted).",
        "",
        "## Log of this run",
        "",
        "```",
    ] + log_lines + ["```", ""]
    return "\n".join(lines)


def shown(argv):
    """A command line for the report, paths inside the repository made relative."""
    return " ".join(os.path.relpath(w, REPO) if w.startswith(REPO + "/") else w
                    for w in argv)


def ours_version(agent):
    binary = agent.binary()
    if not binary:
        return ""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f" (`--version`: {out.splitlines()[0]})" if out else ""


def size_rows(args, ours):
    rows = []
    binary = ours.binary()
    if binary:
        rows.append(f"| our binary ({os.path.relpath(binary, REPO)}) | "
                    f"{os.path.getsize(binary):,} bytes | | | | |")
    venv = args.ipa_venv
    ipa = du_bytes(venv) if os.path.isdir(venv) else None
    if args.image_bytes and ipa:
        r = args.image_bytes / ipa
        rows.append(f"| container image / install size | {args.image_bytes:,} bytes (image) | "
                    f"{ipa:,} bytes (venv) | {r:.3f} (1/{1 / r:,.0f}) | ≤ 1/20 | "
                    f"{'met' if r <= 1 / 20 else '**not met**'} |")
    else:
        why = args.image_skip_reason or "no image size given (--image-bytes)"
        rows.append(f"| container image / install size | not measured: {why} | "
                    f"{f'{ipa:,} bytes (venv)' if ipa else '—'} | | ≤ 1/20 | |")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", help="our agent's binary (standard standalone flags added); "
                   "default target/release/ironic-agent")
    p.add_argument("--agent-cmd", default=os.environ.get("AGENT_CMD"),
                   help="full command template for the agent under test, with {port} and "
                   "{token} (env AGENT_CMD); wrapped in bench/sandbox/run.sh")
    p.add_argument("--agent-label", default=None)
    p.add_argument("--baseline-cmd", default=os.environ.get("BASELINE_CMD"),
                   help="command template of the reference (default: IPA 13.0.0 through "
                   "bench/ipa-standalone.sh)")
    p.add_argument("--baseline-label", default=None)
    p.add_argument("--ipa-venv", default=os.environ.get("IPA_VENV") or os.path.join(
        os.environ.get("IRONIC_AGENT_CACHE", "/var/cache/ironic-agent"), "ipa-venv"))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--skip-wrk", action="store_true")
    p.add_argument("--image-bytes", type=int, default=None)
    p.add_argument("--image-skip-reason", default=None)
    p.add_argument("--note", default=os.environ.get("BENCH_NOTE"),
                   help="a line printed at the top of the report (e.g. 'noisy trial')")
    p.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"))
    args = p.parse_args()

    if args.agent_cmd:
        ours = Agent(args.agent_label or "agent under test", args.agent_cmd)
    else:
        binary = args.agent or os.path.join(REPO, "target", "release", "ironic-agent")
        ours = Agent(args.agent_label or "ironic-agent", f"{binary} {OURS_FLAGS}")
    base = Agent(args.baseline_label or "IPA 13.0.0",
                 args.baseline_cmd or f"{IPA_LAUNCHER} {{port}} {{token}}")

    # Ctrl-C, TERM and HUP all end in cleanup() through the finally below.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    if os.geteuid() != 0:
        print("bench: run as root (the sandbox needs mount and PID namespaces)",
              file=sys.stderr)
        return 2
    began = datetime.now(timezone.utc)
    os.environ["IPA_VENV"] = args.ipa_venv
    try:
        log(f"cold starts ({args.runs} per agent)")
        starts = bench_starts([ours, base], args.runs, log)
        http = None
        if not args.skip_wrk:
            log(f"wrk ({args.runs} × {args.wrk_seconds} s per endpoint and agent)")
            http = bench_http([ours, base], args.runs, args.wrk_seconds, log)
        sizes = size_rows(args, ours)
    except KeyboardInterrupt:
        print("\ninterrupted: agents stopped, no report written", file=sys.stderr)
        return 130
    finally:
        cleanup()
    text = report(args, [ours, base], starts, http, sizes, began, log_lines)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
