#!/usr/bin/env python3
"""Side-by-side benchmarks: our agent vs ironic-python-agent 13.0.0 (issue 11).

Every agent runs confined by bench/sandbox/run.sh, listening on 127.0.0.1
only. Runs alternate between the agents so that load on a shared machine hits
both alike; every ratio compares figures of this run. Standalone figures here
(cold start, RSS, inventory, wrk); the image stream (stream.py), the assisted
agent exit against a real systemd (assisted.py) and a deploy through the real
Ironic conductor (deploy.py) in their modules. Writes the report (default
BENCHMARKS.md). Python 3 standard library only; `wrk` for throughput. See
bench/README.md.
"""
import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

sys.dont_write_bytecode = True   # no __pycache__ in the work tree
from common import (OURS_DEPLOY_CONF, REPO, TOKEN, Agent, Running,  # noqa: E402
                    cleanup, command_error, cpu_seconds, fmt, free_port, proc_status,
                    request, shown, summary, wait_ready)
import assisted  # noqa: E402
import deploy  # noqa: E402
import stream  # noqa: E402

SETTLE_S = 1.0           # idle time before "idle RSS" is read


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
    return None, command_error(status, body)


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


# ------------------------------------------------------------ benchmarks --

def bench_starts(agents, runs, log):
    """Cold start, idle RSS, inventory latency and RSS after it, per agent."""
    res = {a.label: {"cold": [], "spawn": [], "cpu": [], "idle_rss": [], "idle_anon": [], "inv": [],
                     "inv_warm": [], "hwm": [], "inv_error": None, "shims": []}
           for a in agents}
    for i in range(runs):
        for a in agents:
            r = res[a.label]
            port = free_port()
            run = Running(a, a.standalone(port), port)
            try:
                ready = wait_ready(run)
                r["cold"].append(ready - run.exec_stamp())
                r["spawn"].append(ready - run.spawned_at)
                pid = run.pid()
                r["cpu"].append(cpu_seconds(pid))
                time.sleep(SETTLE_S)
                r["idle_rss"].append(proc_status(pid, "VmRSS"))
                r["idle_anon"].append(proc_status(pid, "RssAnon"))
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
            port = free_port()
            run = Running(a, a.standalone(port), port)
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


def ratio_row(name, ours, base, unit, target=None, lower_is_better=True, digits=1,
              target_s=None, strict=False):
    """One table row; the ratio compares the two medians of this run.

    target: the issue's goal for ours ÷ IPA (None: informational row)."""
    if ours is None or base is None:
        return None
    r = ours[0] / base[0] if base[0] else float("inf")
    if lower_is_better:
        inv = 1 / r if r else float("inf")
        ratio = f"{r:.3f} (1/{inv:,.1f})" if inv < 10 else f"{r:.3f} (1/{inv:,.0f})"
        met = target is not None and (r < target if strict else r <= target)
        default_target = f"≤ 1/{round(1 / target)}" if target else "—"
    else:
        ratio = f"{r:,.2f}×" if r < 10 else f"{r:,.1f}×"
        met = target is not None and (r > target if strict else r >= target)
        default_target = f"≥ {target:g}×" if target else "—"
    verdict = "" if target is None else ("met" if met else "**not met**")
    return (f"| {name} | {fmt(ours, unit, digits)} | {fmt(base, unit, digits)} | "
            f"{ratio} | {target_s or default_target} | {verdict} |")


def not_measured(name, why, target=""):
    return f"| {name} | not measured: {why} | | | {target} | |"


def start_rows(o, b):
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
        ratio_row("… of which private (RssAnon; the rest are pages of the executable and "
                  "libraries, shared with the page cache)", summary(o["idle_anon"]),
                  summary(b["idle_anon"]), "MiB", digits=2),
    ]
    failed = [r["inv_error"] for r in (o, b) if r["inv_error"]]
    if failed:
        rows.append(ratio_row("peak RSS (VmHWM) — no verdict: an inventory failed, so "
                              "this is not RSS after an inventory",
                              summary(o["hwm"]), summary(b["hwm"]), "MiB"))
        rows.append(f"| full inventory (`poll.get_hardware_info`) | failed: "
                    f"`{failed[0][:160]}` | | | ≤ 1/10 | |")
    else:
        rows += [
            ratio_row("RSS after an inventory (VmHWM)", summary(o["hwm"]),
                      summary(b["hwm"]), "MiB", 1 / 10),
            ratio_row("full inventory (`poll.get_hardware_info`), first call",
                      ms(o["inv"]), ms(b["inv"]), "ms", 1 / 10),
            ratio_row("full inventory, second call", ms(o["inv_warm"]),
                      ms(b["inv_warm"]), "ms", 1 / 10),
        ]
    return rows


def http_rows(http, ours, base):
    rows = []
    for name, _ in ENDPOINTS:
        if http is None:
            rows.append(not_measured(f"`{name}` throughput and p99", "skipped (--only)",
                                     "≥ 20×, p99 ≤ 1/10"))
            continue
        ho, hb = http[ours.label][name], http[base.label][name]
        rows.append(ratio_row(f"`{name}` throughput", summary(ho["rps"]),
                              summary(hb["rps"]), "req/s", 20, lower_is_better=False,
                              digits=0))
        rows.append(ratio_row(f"`{name}` p99 latency", summary(ho["p99"]),
                              summary(hb["p99"]), "ms", 1 / 10, digits=2))
    return rows


def stream_rows(res, ours, base):
    name = "raw image stream with sha256, 2 GiB, to a loop device"
    if res is None:
        return [not_measured(name, "skipped (--only)", "> IPA, ≥ 90 % of the limit")]
    if res.get("why"):
        return [not_measured(name, res["why"], "> IPA, ≥ 90 % of the limit")]
    mbs = lambda xs: summary([stream.IMAGE_BYTES / x / 1e6 for x in xs])  # noqa: E731
    limit = mbs(res["limit"])
    rows = [f"| … the limit: `curl \\| dd oflag=direct` in the same run | {fmt(limit, 'MB/s', 0)} "
            f"| | | | |",
            f"| … the image server alone (`curl -o /dev/null`) | "
            f"{fmt(mbs(res['server']), 'MB/s', 0)} | | | | |"]
    o, b = mbs(res[ours.label]), mbs(res[base.label])
    errors = res["errors"]
    if o and b:
        rows.insert(0, ratio_row(name, o, b, "MB/s", 1, lower_is_better=False, digits=0,
                                 target_s="> IPA", strict=True))
    else:
        cells = [fmt(x, "MB/s", 0) if x else f"failed: `{errors.get(a.label, '?')[:200]}`"
                 for x, a in ((o, ours), (b, base))]
        rows.insert(0, f"| {name} | {cells[0]} | {cells[1]} | | > IPA | |")
    # Pairwise: each agent's write against the limit of the same round (the disk's
    # speed drifts on a shared machine), then the median of those ratios.
    pct = {}
    for label, x in ((ours.label, o), (base.label, b)):
        pairs = [res["limit"][i] / t for i, t in res["rounds"].get(label, [])]
        pct[label] = summary([100 * p for p in pairs]) if x and pairs else None
    po, pb = pct[ours.label], pct[base.label]
    verdict = ("met" if po[0] >= 90 else "**not met**") if po else ""
    rows.insert(1, f"| … as % of the limit (per round: limit time ÷ agent time) | "
                   f"{fmt(po, '%', 0)} | {fmt(pb, '%', 0)} | | ≥ 90 % | {verdict} |")
    bad = [label for label, ok in res["verified"].items() if not ok]
    if bad:
        rows.append(f"| device content after the first write | **differs from the image** "
                    f"for {', '.join(bad)} | | | | |")
    return rows


def assisted_rows(res, ours, base):
    name = "assisted agent exit → command done (real systemd)"
    ipa = "1–16 s by design (15 s polling); **not measured**"
    if res is None:
        return [not_measured(name, "skipped (--only)", "< 100 ms")]
    if res["error"] or not res["latency"]:
        return [f"| {name} | failed: `{(res['error'] or 'no sample')[:200]}` | {ipa} | | "
                f"< 100 ms | |"]
    s = summary([x * 1000 for x in res["latency"]])
    note = ipa if base.kind == "ipa" else "not run (baseline not measured here)"
    return [f"| {name} | {fmt(s, 'ms', 1)} | {note} | | < 100 ms | "
            f"{'met' if s[0] < 100 else '**not met**'} |"]


def deploy_rows(res, ours, base):
    name = (f"one deploy through the real conductor, agent start → `active` "
            f"(`test_sleep` {deploy.STEP_SECONDS} s)")
    if res is None:
        return [not_measured(name, "skipped (--only)", "≤ 0.6×")]
    if res["why"]:
        return [not_measured(name, res["why"], "≤ 0.6×")]
    o, b = res[ours.label], res[base.label]
    if o["error"] or b["error"]:
        cells = [fmt(summary(r["wall"]), "s", 2) if not r["error"] else
                 f"failed: `{r['error'][:200]}`" for r in (o, b)]
        return [f"| {name} | {cells[0]} | {cells[1]} | | ≤ 0.6× | |"]
    return [ratio_row(name, summary(o["wall"]), summary(b["wall"]), "s", 0.6, digits=2,
                      target_s="≤ 0.6×"),
            ratio_row("CPU time of that deploy (agent's process tree)", summary(o["cpu"]),
                      summary(b["cpu"]), "s", digits=3)]


def size_rows(args, ours, base):
    rows = []
    binary = ours.binary()
    if binary:
        rows.append(f"| our binary ({shown([binary])}) | {os.path.getsize(binary):,} bytes "
                    f"| | | | |")
    venv = args.ipa_venv
    ipa = du_bytes(venv) if base.kind == "ipa" and os.path.isdir(venv) else None
    runtime = python_runtime_bytes(venv) if ipa else None
    if args.image_bytes and ipa:
        for what, total in (("venv", ipa), ("venv + the Python it runs on", ipa + runtime)):
            r = args.image_bytes / total
            rows.append(f"| container image vs IPA's install ({what}) | "
                        f"{args.image_bytes:,} bytes (image) | {total:,} bytes | "
                        f"{r:.3f} (1/{1 / r:,.1f}) | ≤ 1/20 | "
                        f"{'met' if r <= 1 / 20 else '**not met**'} |")
    else:
        why = args.image_skip_reason or "no image size given (--image-bytes)"
        rows.append(f"| container image / install size | not measured: {why} | "
                    f"{f'{ipa:,} bytes (venv)' if ipa else '—'} | | ≤ 1/20 | |")
    return rows


def python_runtime_bytes(venv):
    """The interpreter the venv runs on: its executable, libpython and standard
    library, without site-packages, the test suite and config-* (static library
    and build files)."""
    real = os.path.realpath(os.path.join(venv, "bin", "python"))
    stdlib = subprocess.run([real, "-c", "import sysconfig; "
                             "print(sysconfig.get_paths()['stdlib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    out = subprocess.run(["du", "-sb", "--exclude=site-packages", "--exclude=dist-packages",
                          "--exclude=test", "--exclude=config-*", stdlib],
                         capture_output=True, text=True, check=True)
    total = os.path.getsize(real) + int(out.stdout.split()[0])
    for line in subprocess.run(["ldd", real], capture_output=True, text=True).stdout.splitlines():
        if "libpython" in line and "=>" in line:
            total += os.path.getsize(os.path.realpath(line.split("=>")[1].split()[0]))
    return total


def report(args, agents, res, began, load_start, log_lines):
    ours, base = agents
    rows = []
    if res.get("starts"):
        rows += start_rows(res["starts"][ours.label], res["starts"][base.label])
    rows += http_rows(res.get("http"), ours, base)
    rows += stream_rows(res.get("stream"), ours, base)
    rows += assisted_rows(res.get("assisted"), ours, base)
    rows += deploy_rows(res.get("deploy"), ours, base)
    rows += size_rows(args, ours, base)
    shims = {}
    for part in ("starts",):
        for a in agents:
            shims.setdefault(a.label, set()).update(res.get(part, {}).get(a.label, {}).get("shims", []))
    for a in agents:
        shims[a.label].update(res.get("stream", {}).get("shims", {}).get(a.label, []))
        shims[a.label].update((res.get("deploy") or {}).get(a.label, {}).get("shims", []))
    shim_calls = {k: sorted({line.split(" ", 1)[-1].replace("noop shim: ", "") for line in v})
                  or ["none"] for k, v in shims.items()}
    now = datetime.now(timezone.utc)
    loads = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    lines = [
        "# Benchmarks: ironic-agent vs ironic-python-agent 13.0.0",
        "",
        "Generated by `make bench` (`bench/run.sh` → `bench/bench.py`); do not edit by hand.",
        "",
    ]
    if args.note:
        lines += [f"> **{args.note}**", ""]
    lines += [
        f"- date: {began:%Y-%m-%d %H:%M} UTC; took {(now - began).total_seconds():.0f} s in "
        "bench.py" + (f", {now.timestamp() - args.run_started:.0f} s for the whole `make "
                      "bench` (set-up and builds included)" if args.run_started else ""),
        f"- git revision: {git_revision()}",
        f"- machine: {machine()}; load average at the start: {loads(load_start)}, at the "
        f"end: {loads(os.getloadavg())}",
        f"- runs: {args.runs} per figure and agent, alternating between the agents; wrk "
        f"{args.runs} × {args.wrk_seconds} s per endpoint and agent",
        "- cells: median (min–max); ratio = ours ÷ IPA of the medians of this run",
        "",
        f"| figure | ours ({ours.label}) | {base.label} | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    lines += [r for r in rows if r]
    if res.get("http"):
        lines += ["", "wrk errors (non-2xx answers + socket errors), all runs: " + "; ".join(
            f"{a.label} {name}: {res['http'][a.label][name]['errors']}"
            for a in agents for name, _ in ENDPOINTS) + "."]
    st = res.get("stream") or {}
    lines += [
        "",
        "## How it was measured",
        "",
        "Every agent runs inside the same protective namespaces (`bench/sandbox/run.sh`: "
        "private mount and PID namespaces, a `/dev` without block devices, no-op "
        "`systemctl`/`udevadm`/`modprobe`, read-only `ip`), listening on 127.0.0.1 only. "
        "Calls the shims intercepted (a power or network change here would be a bug): " +
        "; ".join(f"{k}: " + ", ".join(f"`{c}`" for c in v) for k, v in shim_calls.items())
        + ".",
        "",
        "- agent under test, standalone: `" + shown(ours.standalone("{port}")) + "`"
        + ours_version(ours),
        "- baseline, standalone: `" + shown(base.standalone("{port}")) + "`",
    ]
    for role, a in (("agent under test", ours), ("baseline", base)):
        spec = a.with_ironic("{port}", "{ironic_url}", "{dir}", write_conf=False)
        if spec:
            env = " ".join(f"{k}={shown([v])}" for k, v in spec[1].items())
            conf = (" (`{dir}/agent.conf`: `" + OURS_DEPLOY_CONF.replace("\n", " ").strip()
                    + "`)") if a.kind == "ironic-agent" else ""
            lines.append(f"- {role}, deploy through Ironic: `{env} {shown(spec[0])}`{conf}")
    lines += [
        f"- cold start: spawn, then `GET /v1/status` every 5 ms until 200; measured from the "
        "sandbox's timestamp just before it starts the agent (the second row from spawning "
        "the sandbox). CPU time: the agent process's threads "
        "(`/proc/<pid>/task/*/schedstat`) at that moment.",
        f"- RSS: `/proc/<agent pid>/status` VmRSS {SETTLE_S:g} s after it answered; VmHWM "
        "after two `poll.get_hardware_info` calls.",
        "- inventory: `POST /v1/commands/?wait=true` with `poll.get_hardware_info`, "
        "twice per start (the first call is the one a conductor sees).",
        "- throughput: `" + " ".join(wrk_cmd("<port>", "<path>", args.wrk_seconds)) +
        "` on one fresh instance per agent (command list empty); wrk shares the CPUs "
        "with the agent.",
        "- image stream: a 2 GiB raw image (AES-CTR pseudo-random bytes under one GPT "
        "partition, made once and cached), served on 127.0.0.1 by a threaded Python server "
        f"with `sendfile`, written to `{st.get('device', '/dev/loopN')}` = `losetup -f "
        "--direct-io=on` over a sparse 5 GiB file on the disk (IPA only picks a disk of "
        "≥ 4 GiB). Per run, in rotating order: the limit `curl -sf URL | dd of=DEV bs=4M "
        "oflag=direct iflag=fullblock` (one 4 MiB write in flight at a time: a reference, "
        "not a ceiling; an agent that overlaps download, hashing and writing can pass it); "
        "each agent's `POST /v1/commands/?wait=true` "
        "`standby.prepare_image` with `image_info` {urls, disk_format raw, "
        "stream_raw_images true, os_hash_algo sha256, os_hash_value} (a new image id per "
        "run), timed from the request to the SUCCEEDED answer. One unmeasured warm-up write "
        "first. The first 4 MiB of the device are zeroed before each write, and the device "
        "is read back and compared with the image once per contender. Each agent's sandbox "
        "`/dev` holds that loop device only, and its `lsblk` lists only that device, as "
        "`disk` (IPA skips type `loop`); ours also gets `--block-device-allowlist DEV` "
        f"(`{shown(ours.standalone('{port}', block_device='DEV'))}`).",
        "- assisted: `tests/harness/systemd/start.sh` (a real systemd as PID 1 of private "
        f"namespaces) with an `agent.service` that sleeps {assisted.UNIT_SECONDS} s, writes "
        "the wall clock to a file and exits 0; the agent standalone with "
        "`DBUS_SYSTEM_BUS_ADDRESS` of that bus gets `deploy.execute_deploy_step` "
        "`start_assisted_install`; `GET /v1/commands/` is polled every "
        f"{assisted.POLL_S * 1000:g} ms until the command leaves RUNNING (so the figure "
        "includes up to one poll interval plus one request). IPA has no such step (the "
        "CoreOS hardware manager of ironic-agent-image polls every 15 s).",
        "- deploy: `tests/harness/ironic/start.sh` (Ironic 39.0.0, fake hardware, "
        "`custom-agent` deploy); per run and agent a new node with a port of this machine's "
        "NIC MAC is made `available`, then deployed with the user step "
        f"`{{\"interface\": \"deploy\", \"step\": \"test_sleep\", \"priority\": 80, "
        f"\"args\": {{\"seconds\": {deploy.STEP_SECONDS}}}}}`; once it waits for the "
        "call-back, the agent is spawned; wall time from the spawn until the node reads "
        f"`active` (polled every {deploy.NODE_POLL_S * 1000:.0f} ms). CPU: schedstat of "
        "every live thread of the agent's sandbox tree plus the reaped children's "
        "cutime+cstime, read at `active`. Ours: `IRONIC_AGENT_ENABLE_TEST_MANAGER=1` "
        "(its test manager has `test_sleep`); IPA: `bench/ipa_standalone.py --bench-lookup` "
        "with `bench/ipa_hwm` on PYTHONPATH (a hardware manager with the same step).",
        "- sizes: our binary as built; our image from `container/build-image.sh` (what "
        "`make image` runs; podman's image size); IPA: `du -sb` of its venv, and that plus "
        "the Python it runs on (the interpreter, libpython, and the standard library "
        "without site-packages, test suite and config-*). Our image holds the binary, "
        "the C libraries it links, `chroot` and a few files in /etc; OS packages that "
        "either agent calls (parted, lsblk, lshw, …) are counted for neither.",
        "",
        "## Log of this run",
        "",
        "```",
    ] + log_lines + ["```", ""]
    return "\n".join(lines)


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


BENCHES = ("starts", "http", "stream", "assisted", "deploy")


def main():
    # The same caches as the Makefile's (IPA venv, Ironic venv, the image).
    os.environ.setdefault("IRONIC_AGENT_CACHE", "/var/cache/ironic-agent")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", help="the ironic-agent build under test (a binary); "
                   "default target/release/ironic-agent")
    p.add_argument("--agent-cmd", default=os.environ.get("AGENT_CMD"),
                   help="instead: any command template for the agent under test, with "
                   "{port} and {token} (env AGENT_CMD); standalone figures only")
    p.add_argument("--agent-label", default=None)
    p.add_argument("--baseline-agent", help="compare with this ironic-agent build instead "
                   "of IPA 13.0.0")
    p.add_argument("--baseline-label", default=None)
    p.add_argument("--ipa-venv", default=os.environ.get("IPA_VENV") or os.path.join(
        os.environ.get("IRONIC_AGENT_CACHE", "/var/cache/ironic-agent"), "ipa-venv"))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--only", default=",".join(BENCHES),
                   help=f"comma-separated subset of {','.join(BENCHES)}")
    p.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("IRONIC_AGENT_CACHE", "/var/cache/ironic-agent"), "bench"),
        help="where the 2 GiB image is kept between runs")
    p.add_argument("--disk-dir", default="/var/tmp",
                   help="directory on a disk for the loop device's backing file")
    p.add_argument("--run-started", type=float, default=None,
                   help="epoch seconds when `make bench` started (run.sh passes it)")
    p.add_argument("--image-bytes", type=int, default=None)
    p.add_argument("--image-skip-reason", default=None)
    p.add_argument("--note", default=os.environ.get("BENCH_NOTE"),
                   help="a line printed at the top of the report (e.g. 'noisy trial')")
    p.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"))
    args = p.parse_args()
    only = set(args.only.split(","))
    if only - set(BENCHES):
        p.error(f"--only: unknown {sorted(only - set(BENCHES))}")

    if args.agent_cmd:
        ours = Agent(args.agent_label or "agent under test", "cmd", args.agent_cmd)
    else:
        binary = os.path.abspath(args.agent or os.path.join(REPO, "target", "release",
                                                            "ironic-agent"))
        ours = Agent(args.agent_label or "ironic-agent", "ironic-agent", binary)
    if args.baseline_agent:
        base = Agent(args.baseline_label or "baseline", "ironic-agent",
                     os.path.abspath(args.baseline_agent))
    else:
        base = Agent(args.baseline_label or "IPA 13.0.0", "ipa", args.ipa_venv)

    # Ctrl-C, TERM and HUP all end in the cleanups through the finally below.
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
    load_start = os.getloadavg()
    os.environ["IPA_VENV"] = args.ipa_venv
    agents = [ours, base]
    res = {}
    try:
        if "starts" in only:
            log(f"cold starts ({args.runs} per agent)")
            res["starts"] = bench_starts(agents, args.runs, log)
        if "http" in only:
            log(f"wrk ({args.runs} × {args.wrk_seconds} s per endpoint and agent)")
            res["http"] = bench_http(agents, args.runs, args.wrk_seconds, log)
        if "stream" in only:
            log(f"image stream ({args.runs} × 2 GiB per contender)")
            if ours.kind == "cmd":
                res["stream"] = {"why": "AGENT_CMD gives no way to pass the allow-list"}
            else:
                try:
                    res["stream"] = stream.bench_stream(agents, args.runs, args.cache_dir,
                                                        args.disk_dir, log)
                except (OSError, RuntimeError, subprocess.CalledProcessError) as err:
                    log(f"  image stream failed: {err}")
                    res["stream"] = {"why": f"failed: {str(err)[:300]}"}
        if "assisted" in only:
            log(f"assisted agent exit ({args.runs} samples)")
            res["assisted"] = assisted.bench_assisted(ours, args.runs, log)
        if "deploy" in only:
            log(f"deploy through Ironic ({args.runs} per agent)")
            res["deploy"] = deploy.bench_deploy(agents, args.runs, log)
    except KeyboardInterrupt:
        print("\ninterrupted: agents stopped, no report written", file=sys.stderr)
        return 130
    finally:
        cleanup()
        stream.detach_all()
    text = report(args, agents, res, began, load_start, log_lines)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
