"""Drives the demo node through Ironic's API and prints the timeline (scripts/demo.sh).

Environment (set by demo.sh): DEMO_WORK, DEMO_AGENT, DEMO_MAC, DEMO_LOOP, DEMO_IMAGE_URL,
DEMO_IRONIC, DEMO_AGENT_PORT, DEMO_T0, DEMO_SHIMS.
`demo_driver.py --disk-marks DEV` only prints what DEV carries (see disk_marks).
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

E = os.environ
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Agent log lines worth showing in the timeline (the rest stays in agent.log).
SHOW = re.compile(
    r"inspection data accepted|lookup succeeded node=|running command|executing step|erasing metadata|"
    r"Executing CoreOS installer|coreos-installer: (Downloading image|Read disk|Writing Ignition|"
    r"Modifying kernel|Install complete|Error)|command finished|failed|ERROR"
)


def disk_marks(dev):
    """What `dev` carries, read without mounting: both GPT headers (LBA 1 and the last
    LBA), the signatures wipefs and blkid find on the disk and on its first partition."""
    subprocess.run(["blockdev", "--flushbufs", dev], capture_output=True)
    with open(dev, "rb") as disk:
        disk.seek(512)
        primary = disk.read(8) == b"EFI PART"
        disk.seek(-512, os.SEEK_END)
        backup = disk.read(8) == b"EFI PART"
        disk.seek(2048 * 512 + 0x438)
        ext4 = disk.read(2) == b"\x53\xef"
    found = subprocess.run(["wipefs", "--noheadings", "--output", "TYPE", dev],
                           capture_output=True, text=True).stdout.split()
    marks = []
    if primary or backup:
        marks.append("GPT (%s)" % " + ".join(
            name for name, on in (("primary", primary), ("backup", backup)) if on))
    if ext4:
        marks.append("ext4 in partition 1")
    if found:
        marks.append("wipefs: %s" % ", ".join(found))
    if not marks:
        return "disk %s is blank: no GPT (primary or backup), no file system, no signature" % dev
    return "disk %s carries: %s" % (dev, "; ".join(marks))


if len(sys.argv) == 3 and sys.argv[1] == "--disk-marks":
    print(disk_marks(sys.argv[2]))
    sys.exit(0)

WORK, IRONIC = E["DEMO_WORK"], E["DEMO_IRONIC"]
T0 = float(E["DEMO_T0"])
AGENT_LOG = os.path.join(WORK, "agent.log")


def say(msg):
    print("[%6.1fs] %s" % (time.time() - T0, msg), flush=True)


def api(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(IRONIC + path, data=data, method=method)
    req.add_header("X-OpenStack-Ironic-API-Version", "latest")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
    except urllib.error.HTTPError as err:
        raise SystemExit("demo: %s %s -> %s %s" % (method, path, err.code, err.read()[:500]))
    return json.loads(text) if text else None


class Timeline:
    def __init__(self, node):
        self.node, self.state, self.log_pos, self.seen_heartbeat = node, None, 0, False
        self.last_line = None

    def poll(self):
        n = api("GET", "/v1/nodes/%s" % self.node)
        state = (n["provision_state"], n["target_provision_state"])
        if state != self.state:
            target = " (target %s)" % state[1] if state[1] else ""
            say("node %-16s%s" % (state[0], target))
            self.state = state
        self.agent_lines()
        return n

    def agent_lines(self):
        try:
            with open(AGENT_LOG, "rb") as f:
                f.seek(self.log_pos)
                chunk = f.read()
        except OSError:
            return
        chunk = chunk[: chunk.rfind(b"\n") + 1]
        self.log_pos += len(chunk)
        for raw in chunk.decode(errors="replace").splitlines():
            line = ANSI.sub("", raw)
            show = SHOW.search(line)
            if not show and "heartbeat accepted" in line and not self.seen_heartbeat:
                self.seen_heartbeat = show = True
            if show and not re.search(r"coreos-installer: [}\s]", line):
                # "<ts> LEVEL span{..}:span{..}: msg" -> "msg"
                m = re.match(r"\S+Z\s+(\w+)\s+(?:.*\}: )?(.*)", line)
                text = m.group(2) if m else line
                step = re.search(r"step\{step=(\w+)", line)
                if step and text.startswith("executing step"):
                    text = "executing step %s" % step.group(1)
                if m and m.group(1) in ("WARN", "ERROR"):
                    text = "%s %s" % (m.group(1), text)
                if text != self.last_line:
                    say("  agent: %s" % text[:140])
                self.last_line = text

    def wait(self, wanted, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            n = self.poll()
            stable = n["provision_state"] in ("enroll", "manageable", "available", "active")
            if n["provision_state"] in wanted and not (stable and n["target_provision_state"]):
                return n
            if n["provision_state"].endswith("failed") or n["provision_state"] == "error":
                fail("node went to %r: %s" % (n["provision_state"], n.get("last_error")))
            if AGENT.poll() is not None if AGENT else False:
                fail("the agent exited (%s)" % AGENT.returncode)
            time.sleep(0.25)
        fail("timed out after %d s waiting for %s" % (timeout, wanted))


def tail(path, n=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(ANSI.sub("", line) for line in f.readlines()[-n:])
    except OSError:
        return "(no %s)\n" % path


def fail(msg):
    print("\ndemo: FAILED: %s" % msg, file=sys.stderr)
    print("--- agent log tail ---\n%s" % tail(AGENT_LOG), file=sys.stderr)
    print("--- ironic log tail ---\n%s" % tail(os.path.join(WORK, "ironic/ironic.log")), file=sys.stderr)
    sys.exit(1)


AGENT = None


def start_agent():
    global AGENT
    port = E["DEMO_AGENT_PORT"]
    env = dict(E)
    env.update(
        PATH=E["DEMO_SHIMS"] + ":" + E["PATH"],
        SHIM_PARTX_DEVICES=E["DEMO_LOOP"],
        SHIM_CHROOT_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        NO_COLOR="1",
    )
    argv = [
        E["DEMO_AGENT"],
        "--api-url", IRONIC,
        "--inspection-callback-url", IRONIC + "/v1/continue_inspection",
        "--listen-host", "127.0.0.1", "--listen-port", port,
        "--advertise-host", "127.0.0.1", "--advertise-port", port,
        "--cmdline-file", os.path.join(WORK, "cmdline"),
        "--state-dir", os.path.join(WORK, "agent-state"),
        "--host-root", os.path.join(WORK, "host-root"),
        "--block-device-allowlist", E["DEMO_LOOP"],
    ]
    log = open(AGENT_LOG, "wb")
    AGENT = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True)
    with open(os.path.join(WORK, "agent.pid"), "w") as f:
        f.write(str(AGENT.pid))
    say("agent started (pid %d) on 127.0.0.1:%s, allow-list %s" % (AGENT.pid, port, E["DEMO_LOOP"]))


def main():
    say("enrolling node demo-0 (fake-hardware, custom-agent deploy, agent inspect), port %s" % E["DEMO_MAC"])
    body = {
        "name": "demo-0",
        "driver": "fake-hardware",
        "deploy_interface": "custom-agent",
        "inspect_interface": "agent",
        "network_interface": "noop",
        "properties": {"cpu_arch": "x86_64"},
        "driver_info": {"deploy_forces_oob_reboot": True},
    }
    node = api("POST", "/v1/nodes", body)["uuid"]
    api("POST", "/v1/ports", {"node_uuid": node, "address": E["DEMO_MAC"], "pxe_enabled": True})
    # Automated cleaning runs this node's runbook: the metadata erase.
    book = api("POST", "/v1/runbooks", {
        "name": "CUSTOM_DEMO_CLEAN",
        "steps": [{"interface": "deploy", "step": "erase_devices_metadata", "args": {}, "order": 1}],
    })
    api("PATCH", "/v1/nodes/%s" % node, [
        {"op": "add", "path": "/driver_info/cleaning_runbook", "value": book["uuid"]}])
    tl = Timeline(node)
    tl.poll()

    api("PUT", "/v1/nodes/%s/states/provision" % node, {"target": "manage"})
    tl.wait(["manageable"], 60)
    api("PUT", "/v1/nodes/%s/states/provision" % node, {"target": "inspect"})
    tl.wait(["inspect wait"], 60)
    start_agent()
    tl.wait(["manageable"], 120)
    inv = api("GET", "/v1/nodes/%s/inventory" % node)["inventory"]
    disks = ", ".join("%s %.1f GiB" % (d["name"], d["size"] / 2**30) for d in inv["disks"])
    say("inspection stored: %d CPU(s), %d MiB RAM, disks: %s" % (
        inv["cpu"]["count"], inv["memory"]["physical_mb"], disks or "none"))

    # Fast track: the same agent looks up and heartbeats while the node is manageable;
    # only then can provide/deploy use it without a (fake) reboot.
    deadline = time.time() + 90
    while not tl.poll()["driver_internal_info"].get("agent_url"):
        if time.time() > deadline:
            fail("the agent did not heartbeat within 90 s after inspection")
        time.sleep(0.25)
    say("agent heartbeating, agent_url=%s" % api("GET", "/v1/nodes/%s" % node)["driver_internal_info"]["agent_url"])

    api("PUT", "/v1/nodes/%s/states/provision" % node, {"target": "provide"})
    tl.wait(["available"], 180)
    marks = disk_marks(E["DEMO_LOOP"])
    say(marks)
    if "blank" not in marks:
        fail("cleaning did not erase the disk's metadata")

    ignition = {
        "ignition": {"version": "3.2.0"},
        "storage": {"files": [{"path": "/etc/motd", "mode": 420,
                               "contents": {"source": "data:,hello%20from%20ironic-agent%0A"}}]},
    }
    api("PATCH", "/v1/nodes/%s" % node, [
        {"op": "add", "path": "/instance_info/image_source", "value": E["DEMO_IMAGE_URL"]}])
    say("deploy: step install_coreos, image %s, Ignition + coreos_append_karg" % E["DEMO_IMAGE_URL"])
    api("PUT", "/v1/nodes/%s/states/provision" % node, {
        "target": "active",
        "configdrive": {"meta_data": {"coreos_append_karg": ["demo.karg=1"]}, "user_data": ignition},
        "deploy_steps": [{"interface": "deploy", "step": "install_coreos", "priority": 80, "args": {}}],
    })
    n = tl.wait(["active"], 300)
    say("node is %s, last_error=%s" % (n["provision_state"], n["last_error"]))


try:
    main()
except KeyboardInterrupt:
    sys.exit(130)
