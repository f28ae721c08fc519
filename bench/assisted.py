"""Assisted-installer agent exit → the agent's `start_assisted_install` command
done, against a REAL systemd (tests/harness/systemd: PID 1 of private
namespaces, its own bus).

The unit `agent.service` sleeps UNIT_SECONDS, stamps the wall clock (ns) into
/run/sdtest/agent.service.ts just before its main process exits, and exits 0.
The agent (standalone, DBUS_SYSTEM_BUS_ADDRESS = that bus) runs the deploy
step through `deploy.execute_deploy_step`; we poll `GET /v1/commands/` every
POLL_S until the command leaves RUNNING. Latency = that moment − the stamp.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

from common import REPO, TOKEN, Running, command_error, free_port, request, wait_ready

HARNESS = os.path.join(REPO, "tests", "harness", "systemd")
UNIT_SECONDS = 1
POLL_S = 0.001
UNIT = f"""[Unit]
Description=bench: stand-in assisted-installer agent, exits after {UNIT_SECONDS} s
[Service]
Type=simple
ExecStart=/bin/sh -c 'sleep {UNIT_SECONDS}; date +%%s%%N > /run/sdtest/%n.ts; exit 0'
"""


def step_body():
    return {"name": "deploy.execute_deploy_step", "params": {
        "step": {"step": "start_assisted_install", "interface": "deploy", "args": {},
                 "priority": 0},
        "node": {"uuid": "bench", "properties": {}, "instance_info": {},
                 "driver_internal_info": {}},
        "ports": []}}


def last_command(port):
    status, body = request(port, "GET", f"/v1/commands/?agent_token={TOKEN}", timeout=5)
    if status != 200:
        return None
    commands = json.loads(body).get("commands") or []
    return commands[-1] if commands else None


def bench_assisted(agent, runs, log):
    """Returns {"latency": [s], "error": str|None, "command": str}."""
    res = {"latency": [], "error": None}
    # Short: a unix socket path must stay under 108 bytes.
    sd_dir = tempfile.mkdtemp(prefix="bsd.", dir="/tmp")
    units = os.path.join(sd_dir, "bench-units")
    os.makedirs(units)
    with open(os.path.join(units, "agent.service"), "w") as f:
        f.write(UNIT)
    run = None
    started = False
    try:
        out = subprocess.run(["bash", os.path.join(HARNESS, "start.sh"), os.path.join(sd_dir, "sd"),
                              "--owner", str(os.getpid()), "--units", units],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            res["error"] = f"tests/harness/systemd/start.sh failed: {out.stderr.strip()[-300:]}"
            return res
        started = True
        address = out.stdout.strip()
        stamp = os.path.join(sd_dir, "sd", "run", "sdtest", "agent.service.ts")
        port = free_port()
        run = Running(agent, agent.standalone(port), port,
                      {"DBUS_SYSTEM_BUS_ADDRESS": address})
        wait_ready(run)
        for i in range(runs):
            if os.path.exists(stamp):
                os.remove(stamp)
            status, body = request(port, "POST", f"/v1/commands/?agent_token={TOKEN}",
                                   step_body())
            if status not in (200, 202):
                res["error"] = command_error(status, body)
                break
            deadline = time.time() + UNIT_SECONDS + 30
            done_at, cmd = None, None
            while time.time() < deadline:
                t = time.time()
                cmd = last_command(port)
                if cmd and cmd.get("command_status") != "RUNNING":
                    done_at = time.time()
                    break
                time.sleep(max(0.0, POLL_S - (time.time() - t)))
            if done_at is None or cmd.get("command_status") != "SUCCEEDED":
                res["error"] = ("command did not finish" if done_at is None else
                                f"command {cmd.get('command_status')}: "
                                f"{json.dumps(cmd.get('command_error'))[:200]}")
                break
            with open(stamp) as f:
                exited = int(f.read()) / 1e9
            res["latency"].append(done_at - exited)
            log(f"  assisted {i + 1}/{runs} {agent.label}: unit exit → command done "
                f"{(done_at - exited) * 1000:.1f} ms")
    except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError) as err:
        res["error"] = str(err)[:300]
    finally:
        if run:
            run.stop()
        if started:
            subprocess.run(["bash", os.path.join(HARNESS, "stop.sh"), os.path.join(sd_dir, "sd")],
                           capture_output=True, timeout=60)
        shutil.rmtree(sd_dir, ignore_errors=True)
    return res
