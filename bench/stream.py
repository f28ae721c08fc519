"""Raw image stream with sha256 onto a loop device: `curl | dd oflag=direct`
(the limit) vs the agents' `standby.prepare_image` (stream_raw_images), in the
same run, alternating.

The image (2 GiB: pseudo-random bytes from a fixed AES-CTR key, one GPT
partition over them, so IPA's post-write partition check passes) is made once
and cached. A threaded HTTP server on 127.0.0.1 serves it with sendfile. The
loop device is `losetup -f --direct-io=on` over a sparse file on the disk (not
tmpfs); agents see it through bench/sandbox/run.sh, whose /dev holds that one
block device and whose lsblk lists only it, as a disk.
"""
import hashlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from common import Running, command_error, free_port, request, wait_ready, TOKEN

IMAGE_BYTES = 2 * 1024 ** 3
DEVICE_BYTES = 5 * 1024 ** 3     # IPA's guess_root_disk wants a disk >= 4 GiB
LOOPS = []                       # attached loop devices; detach_all() frees them


# ----------------------------------------------------------------- image --

def cached_image(cache_dir, log):
    """(path, sha256) of the 2 GiB image, made once under cache_dir."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, "bench-image-2g.raw")
    sums = path + ".sha256"
    if os.path.exists(sums) and os.path.getsize(path) == IMAGE_BYTES:
        with open(sums) as f:
            return path, f.read().split()[0]
    log(f"  making the 2 GiB image once: {path}")
    tmp = path + ".tmp"
    # AES-128-CTR of zeros under a fixed key: fast, incompressible, reproducible.
    with open(tmp, "wb") as out:
        zeros = subprocess.Popen(["head", "-c", str(IMAGE_BYTES), "/dev/zero"],
                                 stdout=subprocess.PIPE)
        subprocess.run(["openssl", "enc", "-aes-128-ctr", "-nosalt",
                        "-K", "00112233445566778899aabbccddeeff",
                        "-iv", "0" * 32], stdin=zeros.stdout, stdout=out, check=True)
        zeros.wait()
    subprocess.run(["sgdisk", "-o", "-n", "1:2048:0", "-t", "1:8300", tmp],
                   check=True, capture_output=True)
    digest = hashlib.sha256()
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(16 << 20), b""):
            digest.update(block)
    os.replace(tmp, path)
    with open(sums, "w") as f:
        f.write(f"{digest.hexdigest()}  {os.path.basename(path)}\n")
    return path, digest.hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.server.files.get(self.path)
        if path is None:
            self.send_error(404)
            return
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()
        with open(path, "rb") as f:
            offset = 0
            while offset < size:
                sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent

    def log_message(self, *_args):
        pass


class ImageServer:
    """Threaded HTTP server on 127.0.0.1 serving files with sendfile(2)."""

    def __init__(self, files):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files = files
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://127.0.0.1:{self.port}{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------ loop device --

class LoopDevice:
    """`losetup -f --direct-io=on` over a sparse file in `directory` (on disk)."""

    def __init__(self, directory):
        self.dir = tempfile.mkdtemp(prefix="ironic-agent-bench-loop.", dir=directory)
        self.file = os.path.join(self.dir, "disk.img")
        with open(self.file, "wb") as f:
            f.truncate(DEVICE_BYTES)
        out = subprocess.run(["losetup", "-f", "--show", "--direct-io=on", self.file],
                             capture_output=True, text=True, check=True).stdout.strip()
        if not re.fullmatch(r"/dev/loop\d+", out):
            raise RuntimeError(f"losetup answered {out!r}")
        self.dev = out
        LOOPS.append(self)
        back = subprocess.run(["losetup", "-n", "-O", "BACK-FILE", self.dev],
                              capture_output=True, text=True).stdout.strip()
        if os.path.realpath(back) != os.path.realpath(self.file):
            raise RuntimeError(f"{self.dev} is backed by {back!r}, not our {self.file}")

    def wipe_head(self):
        """Zeroes the first 4 MiB, so a contender that writes nothing is caught."""
        subprocess.run(["dd", "if=/dev/zero", f"of={self.dev}", "bs=4M", "count=1",
                        "oflag=direct", "status=none"], check=True)

    def sha256_of_body(self):
        return sha256_of_body(self.dev)

    def detach(self):
        if self in LOOPS:
            subprocess.run(["losetup", "-d", self.dev], capture_output=True)
            LOOPS.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)


def sha256_of_body(path):
    """sha256 of two samples of a file or device: bytes [1, 33) MiB and the last
    32 MiB of the image. The GPT header area is left out: IPA rewrites it after
    the write (fix_gpt_partition moves the backup header to the end of the
    bigger disk)."""
    digest = hashlib.sha256()
    sample = 32 << 20
    with open(path, "rb", buffering=0) as f:
        for start in (1 << 20, IMAGE_BYTES - sample):
            f.seek(start)
            left = sample
            while left:
                block = f.read(min(8 << 20, left))
                if not block:
                    break
                digest.update(block)
                left -= len(block)
    return digest.hexdigest()


def detach_all():
    for loop in list(LOOPS):
        loop.detach()


# --------------------------------------------------------------- drivers --

def curl_dd(url, dev):
    """The limit: `curl -s URL | dd of=DEV bs=4M oflag=direct` (seconds)."""
    t = time.time()
    # Own process group, so that an interrupt ends curl and dd too, not just bash.
    pipeline = subprocess.Popen(f"set -o pipefail; curl -sf {url} | dd of={dev} bs=4M "
                                f"oflag=direct iflag=fullblock status=none", shell=True,
                                executable="/bin/bash", start_new_session=True)
    try:
        rc = pipeline.wait()
    except BaseException:
        os.killpg(pipeline.pid, signal.SIGKILL)
        pipeline.wait()
        raise
    if rc != 0:
        raise RuntimeError(f"curl | dd to {dev} failed ({rc})")
    return time.time() - t


def curl_null(url):
    """The server's own limit: `curl -s URL -o /dev/null` (seconds)."""
    t = time.time()
    subprocess.run(["curl", "-sf", url, "-o", "/dev/null"], check=True)
    return time.time() - t


def prepare_image(run, url, digest, image_id):
    """standby.prepare_image through the API, waiting: (seconds, None) or (None, error)."""
    info = {"id": image_id, "urls": [url], "disk_format": "raw",
            "stream_raw_images": True, "image_type": "whole-disk",
            "os_hash_algo": "sha256", "os_hash_value": digest}
    t = time.time()
    status, body = request(run.port, "POST", f"/v1/commands/?wait=true&agent_token={TOKEN}",
                           {"name": "standby.prepare_image",
                            "params": {"image_info": info}}, timeout=600)
    dt = time.time() - t
    if status == 200 and b'"SUCCEEDED"' in body:
        return dt, None
    return None, command_error(status, body)


def bench_stream(agents, runs, cache_dir, disk_dir, log):
    """Returns {"limit": [s], "server": [s], label: [s] | error, "device": ...}."""
    image, digest = cached_image(cache_dir, log)
    body_digest = sha256_of_body(image)
    server = ImageServer({"/image.raw": image})
    url = server.url("/image.raw")
    loop = None
    running = {}
    res = {"limit": [], "server": [], "errors": {}, "verified": {}, "shims": {}, "rounds": {}}
    for a in agents:
        res[a.label] = []
    try:
        loop = LoopDevice(disk_dir)
        res["device"] = loop.dev
        res["backing"] = loop.file
        log(f"  {loop.dev} over {loop.file} (sparse {DEVICE_BYTES >> 30} GiB, direct I/O); "
            f"image {url}")
        # Warm-up (not counted): allocates the backing file's blocks, fills the
        # page cache with the image.
        curl_dd(url, loop.dev)
        for a in agents:
            port = free_port()
            env = {"BENCH_SANDBOX_BLOCK_DEVICES": loop.dev}
            running[a.label] = Running(a, a.standalone(port, block_device=loop.dev), port, env)
        for run in running.values():
            wait_ready(run)
        contenders = ["limit"] + [a.label for a in agents]
        for i in range(runs):
            res["server"].append(curl_null(url))
            order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
            for name in order:
                if name != "limit" and res["errors"].get(name):
                    continue
                loop.wipe_head()
                if name == "limit":
                    dt = curl_dd(url, loop.dev)
                    res["limit"].append(dt)
                else:
                    dt, err = prepare_image(running[name], url, digest, f"bench-2g-{i}")
                    if err:
                        res["errors"][name] = err
                        log(f"  stream {i + 1}/{runs} {name}: failed: {err}")
                        continue
                    res[name].append(dt)
                    res["rounds"].setdefault(name, []).append((i, dt))
                if name not in res["verified"]:
                    res["verified"][name] = loop.sha256_of_body() == body_digest
                log(f"  stream {i + 1}/{runs} {name}: {IMAGE_BYTES / dt / 1e6:,.0f} MB/s "
                    f"({dt:.2f} s)" + ("" if res["verified"][name]
                                       else " — device content does NOT match the image"))
    finally:
        for run in running.values():
            run.stop()
            res["shims"][run.agent.label] = run.shims
        server.close()
        if loop:
            loop.detach()
    return res
