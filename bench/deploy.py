"""One deploy through the REAL Ironic 39 conductor (tests/harness/ironic):
wall time from starting the agent to the node `active`, and the CPU time of
the agent's process tree over that deploy.

Per run and agent: a fresh node (fake-hardware, custom-agent deploy, a port
with this machine's NIC MAC, `deploy_forces_oob_reboot`) is made `available`,
then deployed with the user deploy step `test_sleep` (STEP_SECONDS) and left
in `wait call-back`; the agent (confined, on 127.0.0.1) is started, looks the
node up, heartbeats, runs the step; Ironic finishes the deploy. Ours has the
step through IRONIC_AGENT_ENABLE_TEST_MANAGER=1, IPA through
bench/ipa_hwm (an extra hardware manager with the same step).
"""
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time

from common import REPO, Running, free_port, tree_cpu_seconds

HARNESS = os.path.join(REPO, "tests", "harness", "ironic")
STEP_SECONDS = 3
NODE_POLL_S = 0.1
HEADERS = {"X-OpenStack-Ironic-API-Version": "latest", "Content-Type": "application/json"}


class Ironic:
    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.port = free_port()
        env = dict(os.environ, IRONIC_HARNESS_OWNER_PID=str(os.getpid()))
        out = subprocess.run(["bash", os.path.join(HARNESS, "start.sh"), run_dir,
                              str(self.port)], capture_output=True, text=True, env=env,
                             timeout=120)
        if out.returncode != 0:
            raise RuntimeError("tests/harness/ironic/start.sh failed: " +
                               (out.stderr or out.stdout).strip()[-400:])
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers=HEADERS)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status >= 400:
                raise RuntimeError(f"Ironic {method} {path}: {resp.status} {data[:300]!r}")
            return json.loads(data) if data else {}
        finally:
            conn.close()

    def provision(self, node, target, extra=None):
        self.call("PUT", f"/v1/nodes/{node}/states/provision", dict({"target": target},
                                                                    **(extra or {})))

    def wait(self, node, wanted, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            n = self.call("GET", f"/v1/nodes/{node}")
            state = n["provision_state"]
            if state == wanted and (n.get("target_provision_state") is None
                                    or wanted in ("wait call-back",)):
                return n
            if "failed" in state or state == "error":
                raise RuntimeError(f"node {state}: {n.get('last_error')}")
            time.sleep(NODE_POLL_S)
        raise RuntimeError(f"node not {wanted} after {timeout} s")

    def available_node(self, name, mac):
        node = self.call("POST", "/v1/nodes", {
            "name": name, "driver": "fake-hardware", "deploy_interface": "custom-agent",
            "network_interface": "noop", "properties": {"cpu_arch": "x86_64"},
            "driver_info": {"deploy_forces_oob_reboot": True}})["uuid"]
        self.call("POST", "/v1/ports", {"node_uuid": node, "address": mac,
                                        "pxe_enabled": True})
        self.provision(node, "manage")
        self.wait(node, "manageable")
        self.provision(node, "provide")
        self.wait(node, "available")
        return node

    def delete(self, node):
        self.call("PATCH", f"/v1/nodes/{node}",
                  [{"op": "replace", "path": "/maintenance", "value": True}])
        self.call("DELETE", f"/v1/nodes/{node}")

    def stop(self):
        subprocess.run(["bash", os.path.join(HARNESS, "stop.sh"), self.run_dir],
                       capture_output=True, timeout=60)


def host_mac():
    """The MAC of this machine's first physical NIC (what both agents look up with)."""
    for name in sorted(os.listdir("/sys/class/net")):
        if os.path.exists(f"/sys/class/net/{name}/device"):
            with open(f"/sys/class/net/{name}/address") as f:
                return f.read().strip()
    raise RuntimeError("no NIC with /sys/class/net/*/device: nothing to look up with")


def bench_deploy(agents, runs, log):
    """Returns {label: {"wall": [s], "cpu": [s], "error": str|None}, "why": str|None}."""
    res = {"why": None}
    for a in agents:
        res[a.label] = {"wall": [], "cpu": [], "error": None, "shims": []}
    work = tempfile.mkdtemp(prefix="ironic-agent-bench-deploy.")
    ironic = None
    try:
        out = subprocess.run(["bash", os.path.join(HARNESS, "setup.sh")], capture_output=True,
                             text=True, timeout=900)
        if out.returncode != 0:
            res["why"] = "tests/harness/ironic/setup.sh failed: " + out.stderr.strip()[-300:]
            return res
        t = time.time()
        ironic = Ironic(os.path.join(work, "ironic"))
        log(f"  Ironic 39 up on {ironic.url} in {time.time() - t:.1f} s")
        mac = host_mac()
        steps = {"deploy_steps": [{"interface": "deploy", "step": "test_sleep",
                                   "priority": 80, "args": {"seconds": STEP_SECONDS}}]}
        for i in range(runs):
            for a in agents:
                r = res[a.label]
                if r["error"]:
                    continue
                port = free_port()
                agent_dir = tempfile.mkdtemp(prefix="agent.", dir=work)
                spec = a.with_ironic(port, ironic.url, agent_dir)
                if spec is None:
                    r["error"] = "no command for a deploy: AGENT_CMD gives a standalone " \
                        "command only (use --agent with an ironic-agent build)"
                    continue
                t = time.time()
                node = ironic.available_node(f"bench-{i}-{len(r['wall'])}-{port}", mac)
                ironic.provision(node, "active", steps)
                ironic.wait(node, "wait call-back")
                prep = time.time() - t
                run = Running(a, spec[0], port, spec[1])
                try:
                    ironic.wait(node, "active", timeout=180)
                    wall = time.time() - run.spawned_at
                    cpu = tree_cpu_seconds(run.proc.pid)
                    r["wall"].append(wall)
                    r["cpu"].append(cpu)
                    log(f"  deploy {i + 1}/{runs} {a.label}: agent start → active "
                        f"{wall:.2f} s, CPU {cpu:.2f} s (node ready for it in {prep:.1f} s)")
                except RuntimeError as err:
                    r["error"] = f"{err}"[:300]
                    log(f"  deploy {i + 1}/{runs} {a.label}: failed: {err}; agent log tail:\n"
                        + run.read("agent.log")[-1500:])
                finally:
                    if os.environ.get("BENCH_KEEP_LOGS"):   # debugging aid
                        shutil.copy(os.path.join(run.dir, "agent.log"),
                                    f"/tmp/bench-deploy-{a.kind}-{i}.log")
                    run.stop()
                    r["shims"] += run.shims
                    ironic.delete(node)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as err:
        res["why"] = str(err)[:400]
    finally:
        if ironic:
            ironic.stop()
        shutil.rmtree(work, ignore_errors=True)
    return res
