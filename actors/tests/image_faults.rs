//! Faults during `write_image` on real loop devices (ipa-protocol.md §10.4): the disk
//! fills up (a loop device on a file of a tiny tmpfs, so direct writes hit ENOSPC), the
//! device is read-only from the start or turns read-only mid-write (`blockdev --setro`),
//! and the image server is killed mid-body (a separate process, SIGKILLed).
//! Each ends in one clear step error (or, with a second URL, success) after the retries
//! the rules allow, never a partial success; outcomes go to
//! `target/reliability/fault-*.json` for `docs/reliability.md`.

#[path = "../../tests/support/records.rs"]
mod records;
mod steps_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use actix::{Actor, Addr};
use ironic_agent_actors::config::{AgentConfig, HostPaths};
use ironic_agent_actors::hardware::StepResult;
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::installer::InstallerRunner;
use serde_json::json;
use steps_support::*;

const MIB: u64 = 1024 * 1024;

fn installer(dir: &Path, disk: &LoopDev, retries: u32) -> Addr<InstallerRunner> {
    let config = AgentConfig {
        block_device_allowlist: vec![disk.dev()],
        image_download_connection_retries: retries,
        image_download_connection_retry_interval: 0,
        image_download_connection_timeout: 5,
        paths: HostPaths::rooted_at(dir),
        ..AgentConfig::default()
    };
    InstallerRunner::new(config, Arc::new(ProcessRunner::default())).start()
}

/// `write_image` of `image` onto `device` (as the inspector would have chosen it).
async fn write_image(
    addr: &Addr<InstallerRunner>,
    device: &str,
    id: &str,
    urls: &[String],
    image: &[u8],
) -> StepResult {
    let info = json!({"id": id, "urls": urls, "os_hash_algo": "sha256",
        "os_hash_value": sha256(image), "disk_format": "raw", "container_format": "bare",
        "stream_raw_images": true, "image_type": "whole-disk"});
    run_step_on(
        addr,
        "write_image",
        json!({"image_info": info, "configdrive": null}),
        json!({}),
        Some(device),
    )
    .await
}

/// A tmpfs of `size` mounted on `dir/mnt`; unmounted on drop (after the loop device).
struct TinyTmpfs {
    mount: PathBuf,
}

impl TinyTmpfs {
    fn new(dir: &Path, size: u64) -> Self {
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount).expect("mkdir");
        sh(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                mount.to_str().expect("utf-8"),
            ],
        );
        TinyTmpfs { mount }
    }
}

/// `blockdev --setro` on a device; `--setrw` again on drop, before the loop device is
/// detached (the flag outlives the detach and the next test would get a read-only loop).
struct ReadOnly(String);

impl ReadOnly {
    fn set(dev: &str) -> Self {
        sh("blockdev", &["--setro", dev]);
        ReadOnly(dev.to_string())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("blockdev").args(["--setrw", &self.0]).status();
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

#[actix_rt::test]
async fn disk_full_mid_write_is_one_out_of_space_error_and_not_retried() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tmpfs = TinyTmpfs::new(dir.path(), 4 * MIB);
    // 32 MiB announced by the device, 4 MiB of real room behind it.
    let disk = LoopDev::new(&tmpfs.mount, "disk.img", 32 * MIB);
    let addr = installer(dir.path(), &disk, 2);
    let server = TestServer::start();
    let image = pseudo_random(12 * MIB as usize, 41);
    let url = server.route("/full.raw", Behaviour::Ok(Arc::new(image.clone())));
    let err = agent_err(write_image(&addr, &disk.dev(), "full", &[url], &image).await);
    assert_eq!(err.error_type, "ImageDownloadOutofSpaceError", "{err:?}");
    assert!(err.details.contains("No space left"), "{}", err.details);
    assert_eq!(
        server.hits("/full.raw"),
        1,
        "out of space must not be retried"
    );
    // No partial success: the start of the device was scrubbed.
    assert_eq!(sha256(&disk.read_at(0, 65536)), zeros(65536));
    records::record(
        "fault-disk-full",
        &json!({"case": "disk full during a streamed image write (ENOSPC)",
                "error_type": err.error_type, "downloads": server.hits("/full.raw"),
                "outcome": "step FAILED, not retried, device head scrubbed"}),
    );
    drop(disk);
    drop(tmpfs);
}

#[actix_rt::test]
async fn read_only_device_is_refused_before_any_download() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDev::new(dir.path(), "disk.img", 16 * MIB);
    let _read_only = ReadOnly::set(&disk.dev());
    let addr = installer(dir.path(), &disk, 2);
    let server = TestServer::start();
    let image = pseudo_random(2 * MIB as usize, 43);
    let url = server.route("/ro.raw", Behaviour::Ok(Arc::new(image.clone())));
    let err = agent_err(write_image(&addr, &disk.dev(), "ro", &[url], &image).await);
    // The inspector never offers a read-only disk; should one be handed over anyway,
    // the installer refuses it before downloading anything.
    assert_eq!(err.error_type, "ImageWriteError", "{err:?}");
    assert!(err.details.contains("read-only"), "{err:?}");
    assert_eq!(server.hits("/ro.raw"), 0);
    assert_eq!(disk.sha256(None), zeros(16 * MIB as usize));
    records::record(
        "fault-read-only-device",
        &json!({"case": "read-only device (blockdev --setro) before the write",
                "error_type": err.error_type, "downloads": server.hits("/ro.raw"),
                "outcome": "step FAILED before any download"}),
    );
}

#[actix_rt::test]
async fn device_turning_read_only_mid_write_is_one_write_error_and_not_retried() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDev::new(dir.path(), "disk.img", 32 * MIB);
    let addr = installer(dir.path(), &disk, 2);
    let server = TestServer::start();
    let image = pseudo_random(24 * MIB as usize, 47);
    // 1 MiB every 100 ms: the device turns read-only after the first block was written.
    let url = server.route(
        "/slow.raw",
        Behaviour::Slow(Arc::new(image.clone()), MIB as usize, 100),
    );
    // Once the first 8 MiB block is on the device, it turns read-only.
    let head = disk.path.clone();
    let flip = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            let mut first = [0u8; 512];
            let written = std::fs::File::open(&head)
                .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut first, 0))
                .is_ok_and(|()| first.iter().any(|b| *b != 0));
            if written {
                return Some(ReadOnly::set(&head.display().to_string()));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    });
    let err = agent_err(write_image(&addr, &disk.dev(), "turned-ro", &[url], &image).await);
    let read_only = flip.join().expect("setro");
    assert!(
        read_only.is_some(),
        "the first block never reached the device"
    );
    assert_eq!(err.error_type, "ImageWriteError", "{err:?}");
    assert!(err.details.contains(&disk.dev()), "{}", err.details);
    assert!(err.details.contains("refuses writes"), "{}", err.details);
    assert_eq!(
        server.hits("/slow.raw"),
        1,
        "a read-only device is not retried"
    );
    assert_ne!(
        disk.sha256(Some(image.len() as u64)),
        sha256(&image),
        "the image cannot be complete"
    );
    records::record(
        "fault-read-only-mid-write",
        &json!({"case": "device turned read-only mid-write (blockdev --setro)",
                "error_type": err.error_type, "downloads": server.hits("/slow.raw"),
                "outcome": "step FAILED naming the device, not retried"}),
    );
}

/// An image server in its own process: sends the headers with the full length and
/// `partial` bytes of `file`, says `sent` on stdout, then waits to be killed.
fn dying_server(file: &Path, partial: usize) -> (Child, String) {
    let script = r#"
import socket, sys
data = open(sys.argv[1], 'rb').read()
partial = int(sys.argv[2])
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    req = b''
    while b'\r\n\r\n' not in req:
        chunk = c.recv(4096)
        if not chunk: break
        req += chunk
    c.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(data))
    c.sendall(data[:partial])
    print('sent', flush=True)
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(file)
        .arg(partial.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut port = String::new();
    stdout.read_line(&mut port).expect("port");
    let url = format!("http://127.0.0.1:{}/disk.raw", port.trim());
    // Kill the server once it has sent the partial body.
    let pid = child.id();
    std::thread::spawn(move || {
        let mut line = String::new();
        if stdout.read_line(&mut line).is_ok() && line.trim() == "sent" {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    (child, url)
}

#[actix_rt::test]
async fn image_server_killed_mid_body_is_retried_on_the_next_url_and_succeeds() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDev::new(dir.path(), "disk.img", 16 * MIB);
    let addr = installer(dir.path(), &disk, 1);
    let image = pseudo_random(6 * MIB as usize, 53);
    let file = dir.path().join("image.raw");
    std::fs::write(&file, &image).expect("image");
    let (mut dying, dying_url) = dying_server(&file, 2 * MIB as usize);
    let mirror = TestServer::start();
    let mirror_url = mirror.route("/disk.raw", Behaviour::Ok(Arc::new(image.clone())));
    let result = write_image(
        &addr,
        &disk.dev(),
        "killed-then-mirror",
        &[dying_url, mirror_url],
        &image,
    )
    .await;
    let _ = dying.kill();
    let _ = dying.wait();
    let result = result.expect("the second URL serves the image after the first died");
    assert!(
        result["result"]
            .as_str()
            .is_some_and(|r| r.contains(&disk.dev())),
        "{result}"
    );
    assert_eq!(disk.sha256(Some(image.len() as u64)), sha256(&image));
    // Attempt 1 read the dying server; attempt 2 found it refused (twice) and used the mirror.
    assert_eq!(mirror.hits("/disk.raw"), 1);
    records::record(
        "fault-server-killed-mirror",
        &json!({"case": "image server SIGKILLed mid-body, a second URL listed",
                "outcome": "retried (whole download), succeeded from the second URL, image byte-identical",
                "mirror_downloads": mirror.hits("/disk.raw")}),
    );
}

#[actix_rt::test]
async fn image_server_killed_mid_body_with_no_other_url_fails_clearly_after_the_retries() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDev::new(dir.path(), "disk.img", 16 * MIB);
    let addr = installer(dir.path(), &disk, 1);
    let image = pseudo_random(6 * MIB as usize, 59);
    let file = dir.path().join("image.raw");
    std::fs::write(&file, &image).expect("image");
    let (mut dying, url) = dying_server(&file, 2 * MIB as usize);
    let started = std::time::Instant::now();
    let err = agent_err(write_image(&addr, &disk.dev(), "killed", &[url], &image).await);
    let _ = dying.kill();
    let _ = dying.wait();
    assert_eq!(err.error_type, "ImageDownloadError", "{err:?}");
    // The last attempt found nobody listening.
    assert!(
        err.details.contains("failed") && err.details.contains("killed"),
        "{}",
        err.details
    );
    assert_eq!(
        sha256(&disk.read_at(0, 65536)),
        zeros(65536),
        "partial image scrubbed"
    );
    records::record(
        "fault-server-killed",
        &json!({"case": "image server SIGKILLed mid-body, only URL",
                "error_type": err.error_type,
                "seconds_to_failure": started.elapsed().as_secs_f64(),
                "outcome": "step FAILED after retries+1 whole downloads, partial image scrubbed"}),
    );
}
