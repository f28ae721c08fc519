"""Shared pieces of the benchmarks: the agents under test, confined processes,
HTTP calls and statistics. Python 3 standard library only."""
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TOKEN = "bench-token-0123456789abcdef0123456789"
SANDBOX = os.path.join(HERE, "sandbox", "run.sh")
IPA_LAUNCHER = os.path.join(HERE, "ipa-standalone.sh")
IPA_HWM = os.path.join(HERE, "ipa_hwm")   # the bench's extra IPA hardware manager
POLL_S = 0.005           # readiness poll interval
START_TIMEOUT_S = 60
OURS_DEPLOY_CONF = "[DEFAULT]\nenable_auto_tls = False\nlookup_interval = 1\n"


# ---------------------------------------------------------------- agents --

class Agent:
    """One agent under test.

    kind "ironic-agent": a build of this project (`target`: its binary), every
    benchmark; "ipa": IPA 13.0.0 from the venv `target`, every benchmark;
    "cmd": any command template with {port} and {token} (`target`), the
    standalone benchmarks only (other rows say why they were not measured).
    """

    def __init__(self, label, kind, target):
        self.label, self.kind, self.target = label, kind, target

    def standalone(self, port, block_device=None):
        """argv of the agent standalone on 127.0.0.1:port; block_device: the one
        device it may write (ours: the allow-list; IPA sees only it anyway)."""
        if self.kind == "ironic-agent":
            argv = [SANDBOX, self.target, "--standalone", "--agent-token", TOKEN,
                    "--listen-host", "127.0.0.1", "--listen-port", str(port),
                    "--cmdline-file", "/dev/null"]
            if block_device:
                argv += ["--block-device-allowlist", block_device]
            return argv
        if self.kind == "ipa":
            return [IPA_LAUNCHER, str(port), TOKEN]
        argv = shlex.split(self.target.format(port=port, token=TOKEN))
        return argv if os.path.realpath(argv[0]) == os.path.realpath(SANDBOX) \
            else [SANDBOX] + argv

    def with_ironic(self, port, api_url, workdir, write_conf=True):
        """argv and extra environment of the agent looking up and heartbeating to
        Ironic at api_url, with the deploy step `test_sleep`; None for "cmd".
        Ours reads workdir/agent.conf (written unless write_conf is false)."""
        if self.kind == "ironic-agent":
            conf = os.path.join(workdir, "agent.conf")
            if write_conf:
                with open(conf, "w") as f:
                    f.write(OURS_DEPLOY_CONF)
            return ([SANDBOX, self.target, "--config-file", conf, "--api-url", api_url,
                     "--listen-host", "127.0.0.1", "--listen-port", str(port),
                     "--advertise-host", "127.0.0.1", "--advertise-port", str(port),
                     "--cmdline-file", "/dev/null",
                     "--state-dir", os.path.join(workdir, "state"),
                     "--block-device-allowlist", "/dev/bench-no-such-device"],
                    {"IRONIC_AGENT_ENABLE_TEST_MANAGER": "1"})
        if self.kind == "ipa":
            return ([SANDBOX, os.path.join(self.target, "bin", "python"),
                     os.path.join(HERE, "ipa_standalone.py"), "--bench-lookup",
                     "--api_url", api_url,
                     "--listen_host", "127.0.0.1", "--listen_port", str(port),
                     "--advertise_host", "127.0.0.1", "--advertise_port", str(port),
                     "--noenable_auto_tls", "--lookup_timeout", "300",
                     "--lookup_interval", "1",
                     "--disk_wait_attempts", "1", "--disk_wait_delay", "0"],
                    {"PYTHONPATH": IPA_HWM})
        return None

    def binary(self):
        """The agent's own executable (for its size), if one can be told."""
        return self.target if self.kind == "ironic-agent" else None


LIVE = []   # every Running not yet stopped; cleanup() ends them


class Running:
    """A started agent: the sandbox's unshare process and the agent inside."""

    def __init__(self, agent, argv, port, env=None):
        self.agent, self.port = agent, port
        self.dir = tempfile.mkdtemp(prefix="bench-sandbox.")
        self.log = open(os.path.join(self.dir, "agent.log"), "wb")
        env = dict(os.environ, BENCH_SANDBOX_DIR=self.dir, **(env or {}))
        self.spawned_at = time.time()
        # Own session: a Ctrl-C on the terminal reaches only us; we stop it.
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        LIVE.append(self)
        self._pid = None
        self.shims = []

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


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


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
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass   # a thread that just ended
    return total / 1e9


def tree_cpu_seconds(pid):
    """CPU time of a process tree: schedstat of every live thread, plus the
    user+system ticks of children already reaped (cutime+cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in descendants(pid):
        total += cpu_seconds(p)
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[13]) + int(fields[14])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


# ------------------------------------------------------------------ http --

def request(port, method, path, body=None, timeout=120, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_ready(run, timeout=START_TIMEOUT_S):
    """Polls GET /v1/status every POLL_S until it answers 200; returns that time."""
    deadline = time.time() + timeout
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
    raise RuntimeError(f"{run.agent.label}: no answer on /v1/status in {timeout} s")


def command_error(status, body):
    """A short description of a failed command answer."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    err = doc.get("command_error") or {}
    if isinstance(err, dict):
        detail = err.get("details") or err.get("message") or json.dumps(err)
    else:
        detail = str(err)
    detail = detail or body[:200].decode(errors="replace") or "(empty body)"
    return f"HTTP {status} {doc.get('command_status', '')}: {detail}".strip()


# ----------------------------------------------------------------- stats --

def summary(values):
    """'median (min–max)' of a sample, or None."""
    return (statistics.median(values), min(values), max(values)) if values else None


def fmt(s, unit, digits=1):
    if s is None:
        return "—"
    med, lo, hi = s
    return f"{med:,.{digits}f} {unit} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def shown(argv):
    """A command line for the report, paths inside the repository made relative."""
    return " ".join(os.path.relpath(w, REPO) if w.startswith(REPO + "/") else shlex.quote(w)
                    if w and not any(c in w for c in "{}") else w for w in argv)
