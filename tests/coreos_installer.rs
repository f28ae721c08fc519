//! `install_coreos` with the REAL coreos-installer, through the installer runner actor,
//! onto loop devices; plus the UEFI boot entry, the hostname fix and the host journal
//! with stand-ins in a prepared host root.
//!
//! Harness: `tests/harness/coreos/` (see its README). The real-installer tests need root,
//! the coreos-installer built by `install-coreos-installer.sh` into
//! `$IRONIC_AGENT_CACHE/coreos-installer`, and the packages `.ci/install-deps.sh`
//! installs. Outside CI they skip with a message when those are missing; with `CI=true`
//! a missing prerequisite is a failure, never a skip.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Actor;
use ironic_agent_actors::command::CommandProgress;
use ironic_agent_actors::config::AgentConfig;
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::installer::{
    coreos_journal, fix_hostname, CancelInstaller, CoreosInstallRequest, CoreosInstaller,
    InstallCoreos, InstallerIdle, InstallerRunner, WaitForInstaller,
};
use serde_json::{json, Value};
use support::fixture::is_root;

use support::fixture::{CHROOT_PATH, COREOS_HARNESS as HARNESS};

/// Only one real-installer test at a time: they share udevd and loop devices.
static REAL_INSTALLER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn sh(script: &str, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .args(args)
        .output()
        .expect("spawn bash")
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have(program: &str) -> bool {
    sh("command -v \"$1\" >/dev/null", &[program])
        .status
        .success()
}

/// Whether tests that need root (chroot) can run; panics in CI when not.
fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "{test}: CI must run as root");
    eprintln!("SKIP {test}: needs root");
    false
}

/// The cached coreos-installer, when every prerequisite of the real-installer tests is
/// there. Panics in CI when anything is missing.
fn real_installer(test: &str) -> Option<PathBuf> {
    let cache = std::env::var("IRONIC_AGENT_CACHE")
        .unwrap_or_else(|_| "/var/cache/ironic-agent".to_string());
    let bin = PathBuf::from(cache).join("coreos-installer/bin/coreos-installer");
    let mut missing: Vec<String> = [
        "losetup",
        "partx",
        "blockdev",
        "sgdisk",
        "mkfs.ext4",
        "mkfs.fat",
        "debugfs",
        "xz",
        "udevadm",
        "unshare",
        "chroot",
    ]
    .into_iter()
    .filter(|tool| !have(tool))
    .map(String::from)
    .collect();
    if !bin.exists() {
        missing.push(format!(
            "{} (run tests/harness/coreos/install-coreos-installer.sh)",
            bin.display()
        ));
    }
    if !is_root() {
        missing.push("root".to_string());
    }
    if missing.is_empty() {
        return Some(bin);
    }
    assert!(
        !in_ci(),
        "{test}: prerequisites missing in CI: {missing:?} (.ci/install-deps.sh installs them)"
    );
    eprintln!("SKIP {test}: missing {missing:?}");
    None
}

/// The fake FCOS metal image (`.raw.xz`), built once per test run.
fn fake_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coreos-fake");
            std::fs::create_dir_all(&dir).expect("image dir");
            let raw = dir.join(format!("fake-metal-{}.x86_64.raw", std::process::id()));
            let started = Instant::now();
            run_ok(
                "bash",
                &[
                    &format!("{HARNESS}/mkfake.sh"),
                    raw.to_str().expect("utf-8"),
                ],
            );
            run_ok("xz", &["-T1", "-f", raw.to_str().expect("utf-8")]);
            let xz = raw.with_extension("raw.xz");
            let stable = dir.join("fake-metal.x86_64.raw.xz");
            std::fs::rename(&xz, &stable).expect("rename image");
            eprintln!("fake metal image built in {:?}", started.elapsed());
            stable
        })
        .clone()
}

/// A loop device over a file of ours, detached (partitions dropped first) on drop.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path) -> Self {
        let path = run_ok(
            "losetup",
            &["-f", "--show", "-P", file.to_str().expect("utf-8")],
        );
        LoopDevice {
            path: PathBuf::from(path.trim()),
        }
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("partx").arg("-d").arg(&self.path).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.path).output();
    }
}

/// udevd for the duration of a test (stopped and `/run/udev` removed only if we started it).
struct Udevd {
    state: PathBuf,
}

impl Udevd {
    fn start(state: &Path) -> Self {
        run_ok(
            "bash",
            &[
                &format!("{HARNESS}/udevd.sh"),
                "start",
                state.to_str().expect("utf-8"),
            ],
        );
        Udevd {
            state: state.to_path_buf(),
        }
    }
}

impl Drop for Udevd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(format!("{HARNESS}/udevd.sh"))
            .arg("stop")
            .arg(&self.state)
            .output();
    }
}

/// A loopback HTTP server for `--image-url`, recording the paths it was asked for.
struct ImageServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ImageServer {
    fn start(dir: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, log, flag) = (dir.to_path_buf(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = serve_one(stream, &dir, &log);
                }
            }
        });
        ImageServer {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    fn requests_for(&self, name: &str) -> usize {
        let wanted = format!("/{name}");
        self.requests
            .lock()
            .expect("log")
            .iter()
            .filter(|path| **path == wanted)
            .count()
    }
}

fn serve_one(stream: TcpStream, dir: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().expect("log").push(path.clone());
    let file = dir.join(path.trim_start_matches('/'));
    let mut stream = stream;
    match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        _ => stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?,
    }
    stream.flush()
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Builds a prepared host root with `host-root.sh`.
fn host_root(dir: &Path, installer: Option<&Path>) -> PathBuf {
    let root = dir.join("host-root");
    let mut args = vec![
        format!("{HARNESS}/host-root.sh"),
        root.display().to_string(),
    ];
    if let Some(installer) = installer {
        args.push(installer.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ok("bash", &args);
    root
}

/// A directory holding the test-only `chroot` shim, for the agent's PATH.
fn shim_dir(dir: &Path) -> PathBuf {
    let shims = dir.join("shims");
    std::fs::create_dir_all(&shims).expect("shims");
    std::os::unix::fs::symlink(format!("{HARNESS}/chroot-shim.sh"), shims.join("chroot"))
        .expect("chroot shim");
    shims
}

fn write_script(path: &Path, body: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("script dir");
    }
    std::fs::write(path, body).expect("script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A recording `efibootmgr` in the host root that fails its first `fails` calls.
fn efibootmgr_standin(root: &Path, fails: u32) {
    write_script(
        &root.join("usr/sbin/efibootmgr"),
        &format!(
            r#"#!/bin/sh
# test stand-in: records every call, fails the first {fails} calls like a busy firmware
n=0; [ -f /tmp/efibootmgr.count ] && read n < /tmp/efibootmgr.count
n=$((n + 1)); echo "$n" > /tmp/efibootmgr.count
echo "$*" >> /tmp/efibootmgr.calls
if [ "$n" -le {fails} ]; then echo "Could not set variable: Input/output error" >&2; exit 5; fi
if [ $# -eq 0 ]; then
    printf 'BootCurrent: 0001\nBootOrder: 0001,0007\nBoot0001* UEFI PXEv4\tPciRoot(0x0)\nBoot0007* ironic1\tHD(2,GPT)\n'
fi
exit 0
"#
        ),
    );
}

fn read_calls(root: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(root.join("tmp").join(name))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Start byte and length of partition `number` in a GPT image (via sgdisk).
fn partition_range(image: &Path, number: u32) -> (u64, u64) {
    let info = run_ok(
        "sgdisk",
        &["-i", &number.to_string(), image.to_str().expect("utf-8")],
    );
    let sector = |key: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {info}"))
    };
    let (first, last) = (sector("First sector:"), sector("Last sector:"));
    (first * 512, (last - first + 1) * 512)
}

/// Copies partition `number` of `image` into its own file (to read it without mounting).
fn extract_partition(image: &Path, number: u32, out: &Path) {
    let (start, len) = partition_range(image, number);
    let mut source = std::fs::File::open(image).expect("image");
    source.seek(SeekFrom::Start(start)).expect("seek");
    let mut target = std::fs::File::create(out).expect("partition file");
    std::io::copy(&mut source.take(len), &mut target).expect("copy partition");
}

/// `debugfs -R <request>` on an ext4 image: reads files without mounting.
fn debugfs(fs: &Path, request: &str) -> String {
    run_ok("debugfs", &["-R", request, fs.to_str().expect("utf-8")])
}

/// Everything a real-installer test needs, torn down in reverse order on drop.
struct Rig {
    // Field order is drop order: the server and loop device go before the directory.
    server: ImageServer,
    target: LoopDevice,
    _udevd: Udevd,
    target_file: PathBuf,
    root: PathBuf,
    www: PathBuf,
    config: AgentConfig,
    shims: PathBuf,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new(installer: &Path, target_size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = host_root(dir.path(), Some(installer));
        let shims = shim_dir(dir.path());
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).expect("www");
        std::fs::copy(fake_image(), www.join("fcos.raw.xz")).expect("image");
        let udevd = Udevd::start(&dir.path().join("udevd"));
        let target_file = dir.path().join("target.img");
        run_ok(
            "truncate",
            &["-s", target_size, target_file.to_str().expect("utf-8")],
        );
        let target = LoopDevice::attach(&target_file);
        let server = ImageServer::start(&www);
        let mut config = AgentConfig::default();
        config.paths = ironic_agent_actors::config::HostPaths::rooted_at(&dir.path().join("agent"));
        config.paths.host_root = root.clone();
        config.paths.dev_root = PathBuf::from("/dev");
        config.block_device_allowlist = vec![target.name()];
        Rig {
            server,
            target,
            _udevd: udevd,
            target_file,
            root,
            www,
            config,
            shims,
            dir,
        }
    }

    fn process(&self) -> ProcessRunner {
        ProcessRunner {
            extra_path: vec![self.shims.clone()],
        }
    }

    fn runner(&self) -> InstallerRunner {
        let env = BTreeMap::from([
            ("SHIM_PARTX_DEVICES".to_string(), self.target.name()),
            ("SHIM_CHROOT_PATH".to_string(), CHROOT_PATH.to_string()),
        ]);
        InstallerRunner::new(self.config.clone(), Arc::new(self.process()))
            .with_process_runner(self.process())
            .with_installer_env(env)
            .with_uefi_retry_delay(Duration::from_millis(10))
    }

    fn node(&self, image: Option<&str>, configdrive: Value) -> Value {
        let mut info = json!({"configdrive": configdrive});
        if let Some(image) = image {
            info["image_source"] = json!(self.server.url(image));
        }
        json!({"uuid": "0c4b5c0e-coreos", "automated_clean": false, "instance_info": info})
    }

    async fn install(
        &self,
        node: Value,
    ) -> Result<
        ironic_agent_actors::installer::CoreosInstallOutcome,
        ironic_agent_actors::errors::AgentError,
    > {
        let addr = self.runner().start();
        let request =
            CoreosInstallRequest::new(&self.target.path, node, Some("node-7.example".into()));
        addr.send(InstallCoreos(request)).await.expect("mailbox")
    }

    fn boot_fs(&self) -> PathBuf {
        let _ = Command::new("blockdev")
            .arg("--flushbufs")
            .arg(&self.target.path)
            .output();
        let out = self.dir.path().join("boot.ext4");
        extract_partition(&self.target_file, 3, &out);
        out
    }
}

#[actix_rt::test]
async fn real_install_writes_partitions_ignition_kargs_and_network() {
    let Some(installer) = real_installer("real_install") else {
        return;
    };
    let _serial = REAL_INSTALLER.lock().await;
    let mut rig = Rig::new(&installer, "1G");
    // NetworkManager keyfiles of the "host" for --copy-network.
    let nm = rig.root.join("etc/NetworkManager/system-connections");
    std::fs::write(
        nm.join("ironic-test.nmconnection"),
        "[connection]\nid=ironic-test\ntype=ethernet\n",
    )
    .expect("keyfile");
    rig.config.coreos.ip_options = Some("ip=dhcp6".into());
    // UEFI mode with a recording efibootmgr that works at once.
    std::fs::create_dir_all(rig.config.paths.sys_root.join("firmware/efi")).expect("efi");
    efibootmgr_standin(&rig.root, 0);

    let user_ignition = json!({
        "ignition": {"version": "3.2.0"},
        "storage": {"files": [{"path": "/etc/motd", "contents": {"source": "data:,hi"}}]},
    });
    let node = rig.node(
        Some("fcos.raw.xz"),
        json!({
            "meta_data": {"coreos_append_karg": ["ironic.test=1", "rd.extra=2"],
                          "coreos_copy_network": true},
            "user_data": user_ignition,
        }),
    );
    let addr = rig.runner().start();
    let mut request =
        CoreosInstallRequest::new(&rig.target.path, node, Some("node-7.example".into()));
    let mut progress = request.watch_progress();
    let seen = Arc::new(Mutex::new(Vec::<CommandProgress>::new()));
    let watcher = {
        let seen = seen.clone();
        actix_rt::spawn(async move {
            while progress.changed().await.is_ok() {
                let now = progress.borrow_and_update().clone();
                seen.lock().expect("seen").push(now);
            }
        })
    };
    let started = Instant::now();
    let outcome = addr
        .send(InstallCoreos(request))
        .await
        .expect("mailbox")
        .expect("install succeeds");
    eprintln!("real install took {:?}: {outcome:?}", started.elapsed());
    let _ = watcher.await;

    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.last_line.as_deref(), Some("Install complete."));
    assert!(outcome.ignition);
    let argv = outcome.argv.join(" ");
    assert!(
        argv.starts_with(&format!("chroot {} coreos-installer install --preserve-on-error --ignition-file /tmp/ironic.ign --append-karg ironic.test=1,rd.extra=2 --image-url http://", rig.root.display())),
        "{argv}"
    );
    assert!(
        argv.ends_with(&format!(
            "--insecure --append-karg ip=dhcp6 --copy-network {}",
            rig.target.name()
        )),
        "{argv}"
    );

    // Progress: the installer's "Read disk X/Y (N%)" lines reached the watch.
    let seen = seen.lock().expect("seen").clone();
    let read_lines: Vec<&CommandProgress> = seen
        .iter()
        .filter(|p| p.message.as_deref().is_some_and(|m| m.starts_with("Read ")))
        .collect();
    assert!(!read_lines.is_empty(), "no progress lines among {seen:?}");
    let last = read_lines.last().expect("one");
    assert!(
        last.total.is_some_and(|t| t > 0 && last.done == t),
        "{last:?}"
    );

    // The agent's re-scan left the kernel knowing the new partitions (this kernel cannot
    // parse GPT itself, so only `partx` after coreos-installer's last re-read gets them).
    for number in 1..=4 {
        let partition = format!("{}p{number}", rig.target.name());
        assert!(
            Path::new(&partition).exists(),
            "{partition} missing after the re-scan"
        );
    }

    // The disk has the image's partitions.
    let table = run_ok("sgdisk", &["-p", rig.target_file.to_str().expect("utf-8")]);
    for name in ["BIOS-BOOT", "EFI-SYSTEM", "boot", "root"] {
        assert!(table.contains(name), "{name} missing from\n{table}");
    }

    // The boot partition: Ignition (ours + hostname), kernel arguments, network keyfile.
    let boot = rig.boot_fs();
    let ignition: Value =
        serde_json::from_str(&debugfs(&boot, "cat /ignition/config.ign")).expect("ignition json");
    assert_eq!(ignition["ignition"]["version"], "3.2.0");
    assert_eq!(
        ignition["storage"]["files"],
        json!([
            {"path": "/etc/motd", "contents": {"source": "data:,hi"}},
            {"path": "/etc/hostname", "mode": 420, "overwrite": true,
             "contents": {"source": "data:,node-7.example"}},
        ])
    );
    assert!(debugfs(&boot, "stat /ignition/config.ign").contains("Mode:  0600"));
    let bls = debugfs(&boot, "cat /loader/entries/ostree-1-fedora-coreos.conf");
    let options = bls
        .lines()
        .find(|l| l.starts_with("options "))
        .expect("options line");
    assert!(options.contains(" ironic.test=1,rd.extra=2"), "{options}");
    assert!(options.contains(" ip=dhcp6"), "{options}");
    assert!(options.contains("ignition.platform.id=metal"), "{options}");
    // --copy-network appends an xz-compressed cpio of the keyfiles to the BLS initrd.
    let initramfs = rig.dir.path().join("initramfs.img");
    debugfs(
        &boot,
        &format!(
            "dump /ostree/fedora-coreos-fake/initramfs-6.0.0.img {}",
            initramfs.display()
        ),
    );
    let initramfs = std::fs::read(&initramfs).expect("initramfs");
    let original = b"fake initramfs\n";
    assert!(initramfs.starts_with(original) && initramfs.len() > original.len());
    let appended: Vec<u8> = initramfs[original.len()..]
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    let mut xz = Command::new("xz")
        .args(["-dc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("xz");
    xz.stdin
        .take()
        .expect("stdin")
        .write_all(&appended)
        .expect("feed xz");
    let cpio = xz.wait_with_output().expect("xz output");
    let cpio = String::from_utf8_lossy(&cpio.stdout);
    assert!(
        cpio.contains("ironic-test.nmconnection") && cpio.contains("id=ironic-test"),
        "the NetworkManager keyfile was not copied into the initramfs: {cpio:?}"
    );
    // The Ignition was also left in the host root where coreos-installer read it.
    let written = std::fs::metadata(rig.root.join("tmp/ironic.ign")).expect("ironic.ign");
    assert_eq!(written.permissions().mode() & 0o777, 0o600);

    // UEFI: the entry was (re)created for the EFI system partition of the installed disk.
    let uefi = outcome.uefi.expect("uefi entry");
    assert_eq!((uefi.partition, uefi.attempts), (2, 1));
    assert_eq!(
        read_calls(&rig.root, "efibootmgr.calls"),
        [
            String::new(),
            "-b 0007 -B".to_string(),
            format!(
                "-c -d {} -p 2 -w -L ironic1 -l \\EFI\\BOOT\\BOOTX64.EFI",
                rig.target.name()
            ),
        ]
    );
    drop(addr);
}

/// Runs a failing install and checks: three attempts, then the contract's error text.
async fn assert_three_failed_attempts(rig: &Rig, node: Value, image: Option<&str>) -> String {
    let started = Instant::now();
    let err = rig.install(node).await.expect_err("install fails");
    eprintln!("failed install took {:?}: {err}", started.elapsed());
    assert_eq!(err.error_type, "DeploymentError");
    assert!(
        err.details
            .starts_with("coreos-installer failed with code 1: "),
        "{err}"
    );
    let last_line = err.details["coreos-installer failed with code 1: ".len()..].to_string();
    assert!(!last_line.is_empty() && last_line != "None", "{err}");
    if let Some(image) = image {
        assert_eq!(
            rig.server.requests_for(image),
            3,
            "three attempts fetch the image"
        );
    }
    last_line
}

#[actix_rt::test]
async fn real_install_bad_image_url_fails_after_three_attempts() {
    let Some(installer) = real_installer("bad_image_url") else {
        return;
    };
    let _serial = REAL_INSTALLER.lock().await;
    let rig = Rig::new(&installer, "1G");
    let node = rig.node(Some("missing.raw.xz"), json!({}));
    let last = assert_three_failed_attempts(&rig, node, Some("missing.raw.xz")).await;
    assert!(last.contains("404 Not Found"), "{last}");
}

#[actix_rt::test]
async fn real_install_corrupt_image_fails_after_three_attempts() {
    let Some(installer) = real_installer("corrupt_image") else {
        return;
    };
    let _serial = REAL_INSTALLER.lock().await;
    let rig = Rig::new(&installer, "1G");
    // A truncated xz stream: the format/integrity check fails while writing.
    let image = std::fs::read(rig.www.join("fcos.raw.xz")).expect("image");
    std::fs::write(rig.www.join("broken.raw.xz"), &image[..image.len() / 2]).expect("broken");
    let node = rig.node(Some("broken.raw.xz"), json!({}));
    let last = assert_three_failed_attempts(&rig, node, Some("broken.raw.xz")).await;
    assert_eq!(last, "Error: install failed");
}

#[actix_rt::test]
async fn real_install_onto_a_too_small_device_fails_after_three_attempts() {
    let Some(installer) = real_installer("too_small") else {
        return;
    };
    let _serial = REAL_INSTALLER.lock().await;
    let rig = Rig::new(&installer, "64M");
    let node = rig.node(Some("fcos.raw.xz"), json!({}));
    assert_three_failed_attempts(&rig, node, Some("fcos.raw.xz")).await;
}

#[actix_rt::test]
async fn real_install_offline_without_live_iso_data_fails_clearly() {
    let Some(installer) = real_installer("offline") else {
        return;
    };
    let _serial = REAL_INSTALLER.lock().await;
    let rig = Rig::new(&installer, "1G");
    let node = rig.node(None, json!({}));
    let last = assert_three_failed_attempts(&rig, node, None).await;
    assert!(last.contains("offline install"), "{last}");
}

#[actix_rt::test]
async fn pre_rendered_configdrive_is_rejected_before_anything_runs() {
    let Some(installer) = real_installer("pre_rendered_configdrive") else {
        return;
    };
    let _serial = REAL_INSTALLER.lock().await;
    let rig = Rig::new(&installer, "1G");
    let node = rig.node(Some("fcos.raw.xz"), json!("H4sICAAAAAAAA2NvbmZpZ2RyaXZl"));
    let err = rig.install(node).await.expect_err("rejected");
    assert_eq!(err.error_type, "DeploymentError");
    assert!(err.details.contains("pre-rendered configdrive"), "{err}");
    assert_eq!(rig.server.requests_for("fcos.raw.xz"), 0);
    assert!(!rig.root.join("tmp/ironic.ign").exists());
}

#[actix_rt::test]
async fn missing_installer_in_the_host_root_is_its_own_error() {
    if !root_or_skip("missing_installer") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = host_root(dir.path(), None);
    // Never written: the check happens before anything touches the device.
    let device = dir.path().join("not-a-disk");
    std::fs::write(&device, b"").expect("device");
    let mut config = AgentConfig::default();
    config.paths.host_root = root.clone();
    config.block_device_allowlist = vec![device.display().to_string()];
    let installer = CoreosInstaller::new(config, Arc::new(ProcessRunner::default()));
    let request = CoreosInstallRequest::new(&device, json!({"instance_info": {}}), None);
    let err = installer
        .install(request, None)
        .await
        .expect_err("no installer");
    assert_eq!(
        err.details,
        format!(
            "Cannot run coreos-installer, is it installed in {}?",
            root.display()
        )
    );
    // Also when the pre-check is fooled (a dangling entry): chroot's exit 127 maps to it.
    std::os::unix::fs::symlink("/nonexistent", root.join("usr/bin/coreos-installer"))
        .expect("symlink");
    let request = CoreosInstallRequest::new(&device, json!({"instance_info": {}}), None);
    let err = installer
        .install(request, None)
        .await
        .expect_err("no installer");
    assert!(
        err.details.starts_with("Cannot run coreos-installer"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&device).expect("device").len(), 0);
}

#[actix_rt::test]
async fn device_outside_the_allowlist_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = AgentConfig::default();
    config.paths.host_root = dir.path().to_path_buf();
    config.block_device_allowlist = vec!["/dev/loop-not-this-one".to_string()];
    let installer = CoreosInstaller::new(config, Arc::new(ProcessRunner::default()));
    let request = CoreosInstallRequest::new("/dev/vda", json!({"instance_info": {}}), None);
    let err = installer.install(request, None).await.expect_err("refused");
    assert!(err.details.contains("block_device_allowlist"), "{err}");
}

/// A host root with sh and a recording efibootmgr, and a GPT image holding an ESP.
fn uefi_fixture(fails: u32) -> (tempfile::TempDir, CoreosInstaller, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = host_root(dir.path(), None);
    efibootmgr_standin(&root, fails);
    let disk = dir.path().join("disk.img");
    run_ok("truncate", &["-s", "8M", disk.to_str().expect("utf-8")]);
    run_ok(
        "sgdisk",
        &[
            "-n",
            "1:1M:+1M",
            "-t",
            "1:EF02",
            "-n",
            "2:0:+2M",
            "-t",
            "2:EF00",
            "-n",
            "3:0:0",
            "-t",
            "3:8300",
            disk.to_str().expect("utf-8"),
        ],
    );
    let mut config = AgentConfig::default();
    config.paths.host_root = root;
    let mut installer = CoreosInstaller::new(config, Arc::new(ProcessRunner::default()));
    installer.uefi_retry_delay = Duration::from_millis(20);
    (dir, installer, disk)
}

#[actix_rt::test]
async fn uefi_entry_succeeds_after_five_failures() {
    if !root_or_skip("uefi_five_failures") || !have("sgdisk") {
        assert!(!in_ci(), "sgdisk missing in CI");
        return;
    }
    let (_dir, installer, disk) = uefi_fixture(5);
    let started = Instant::now();
    let entry = installer
        .configure_uefi(&disk)
        .await
        .expect("sixth attempt works");
    assert_eq!(entry.attempts, 6);
    assert_eq!(entry.partition, 2);
    // Five pauses of the injected delay, not 5 s each.
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(started.elapsed() < Duration::from_secs(20));
    let calls = read_calls(&installer.config.paths.host_root, "efibootmgr.calls");
    assert_eq!(
        calls,
        [
            "",
            "",
            "",
            "",
            "",
            "",
            "-b 0007 -B",
            &format!(
                "-c -d {} -p 2 -w -L ironic1 -l \\EFI\\BOOT\\BOOTX64.EFI",
                disk.display()
            ),
        ]
    );
}

#[actix_rt::test]
async fn uefi_entry_fails_after_six_failures() {
    if !root_or_skip("uefi_six_failures") || !have("sgdisk") {
        assert!(!in_ci(), "sgdisk missing in CI");
        return;
    }
    let (_dir, installer, disk) = uefi_fixture(6);
    let err = installer.configure_uefi(&disk).await.expect_err("gives up");
    assert_eq!(err.error_type, "DeploymentError");
    assert!(err.details.contains("after 6 attempts"), "{err}");
    assert!(err.details.contains("Input/output error"), "{err}");
    assert_eq!(
        read_calls(&installer.config.paths.host_root, "efibootmgr.calls").len(),
        6
    );
    assert_eq!(
        ironic_agent_actors::installer::coreos::UEFI_RETRY_DELAY,
        Duration::from_secs(5)
    );
}

/// A host root with a stand-in hostnamectl that prints `current` (or is absent).
fn hostname_fixture(current: Option<&str>, set_rc: i32) -> (tempfile::TempDir, AgentConfig) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = host_root(dir.path(), None);
    if let Some(current) = current {
        write_script(
            &root.join("usr/bin/hostnamectl"),
            &format!(
                "#!/bin/sh\n# test stand-in\necho \"$*\" >> /tmp/hostnamectl.calls\n\
                 case \"$1\" in hostname) echo '{current}';; set-hostname) exit {set_rc};; esac\n"
            ),
        );
    }
    let mut config = AgentConfig::default();
    config.paths.host_root = root;
    config.paths.etc_root = dir.path().join("container");
    (dir, config)
}

#[actix_rt::test]
async fn hostname_fix_sets_the_default_for_localhost() {
    if !root_or_skip("hostname_fix") {
        return;
    }
    let runner = ProcessRunner::default();
    let (_dir, mut config) = hostname_fixture(Some("localhost"), 0);
    config.coreos.default_hostname = Some("node-7".into());
    let name = fix_hostname(&config, &runner).await.expect("fixed");
    assert_eq!(name.as_deref(), Some("node-7"));
    assert_eq!(
        read_calls(&config.paths.host_root, "hostnamectl.calls"),
        ["hostname", "set-hostname --static --transient node-7"]
    );
    assert_eq!(
        std::fs::read_to_string(config.paths.etc_root.join("etc/hostname")).expect("hostname"),
        "node-7\n"
    );

    // A real name is kept; no default → localhost kept; nothing written.
    for (current, default) in [
        ("worker-3", Some("node-7")),
        ("localhost.localdomain", None),
    ] {
        let (_dir, mut config) = hostname_fixture(Some(current), 0);
        config.coreos.default_hostname = default.map(String::from);
        let name = fix_hostname(&config, &runner).await.expect("ok");
        assert_eq!(name.as_deref(), Some(current));
        assert_eq!(
            read_calls(&config.paths.host_root, "hostnamectl.calls"),
            ["hostname"]
        );
        assert!(!config.paths.etc_root.join("etc/hostname").exists());
    }
}

#[actix_rt::test]
async fn hostname_fix_falls_back_to_etc_hostname_and_fails_loudly() {
    if !root_or_skip("hostname_fallback") {
        return;
    }
    let runner = ProcessRunner::default();
    // No hostnamectl in the host root: its /etc/hostname is read.
    let (_dir, config) = hostname_fixture(None, 0);
    std::fs::write(config.paths.host_root.join("etc/hostname"), "from-file\n").expect("write");
    assert_eq!(
        fix_hostname(&config, &runner).await.expect("ok").as_deref(),
        Some("from-file")
    );
    // localhost from the file and a default, but no hostnamectl to set it: start-up fails.
    let (_dir, mut config) = hostname_fixture(None, 0);
    config.coreos.default_hostname = Some("node-7".into());
    let err = fix_hostname(&config, &runner).await.expect_err("fails");
    assert!(err.details.contains("CoreOS hostname fix failed"), "{err}");
    assert!(err.details.contains("set-hostname"), "{err}");
    // set-hostname itself fails.
    let (_dir, mut config) = hostname_fixture(Some("localhost"), 1);
    config.coreos.default_hostname = Some("node-7".into());
    let err = fix_hostname(&config, &runner).await.expect_err("fails");
    assert!(err.details.contains("failed with code 1"), "{err}");
    assert!(!config.paths.etc_root.join("etc/hostname").exists());
}

#[actix_rt::test]
async fn host_journal_needs_output_of_fifty_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    let runner = ProcessRunner {
        extra_path: vec![bin.clone()],
    };
    let mut config = AgentConfig::default();
    config.paths.host_root = dir.path().join("host");
    let journalctl = bin.join("journalctl");
    let script = |body: &str| {
        write_script(
            &journalctl,
            &format!(
                "#!/bin/sh\n# test stand-in\necho \"$*\" > {}/args\n{body}\n",
                dir.path().display()
            ),
        )
    };
    script("printf 'Nov 26 00:00:01 host systemd[1]: Started ironic-agent.service - agent.\\n'");
    let journal = coreos_journal(&config, &runner).await.expect("journal");
    assert!(journal.starts_with(b"Nov 26"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("args"))
            .expect("args")
            .trim(),
        format!("--root {}", config.paths.host_root.display())
    );
    script("echo '-- No entries --'");
    assert_eq!(coreos_journal(&config, &runner).await, None);
    script("echo 'Failed to open root directory' >&2; exit 1");
    assert_eq!(coreos_journal(&config, &runner).await, None);
    // The real journalctl on an empty root: nothing useful, so not handled here.
    if have("journalctl") {
        let real = ProcessRunner::default();
        std::fs::create_dir_all(&config.paths.host_root).expect("root");
        assert_eq!(coreos_journal(&config, &real).await, None);
    }
}

#[actix_rt::test]
async fn shutdown_waits_for_a_running_install_then_cancels_it() {
    if !root_or_skip("shutdown_wait") {
        return;
    }
    // A slow stand-in "coreos-installer" in a prepared host root: SIGTERM handling must
    // wait (bounded) and, past the bound, cancel without orphaning the child.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = host_root(dir.path(), None);
    write_script(
        &root.join("usr/bin/coreos-installer"),
        "#!/bin/sh\n# test stand-in: blocks on a FIFO nobody writes\necho $$ > /tmp/installer.pid\n\
         echo 'Read disk 1.0 MiB/4.0 MiB (25%)'\nread line < /tmp/never\n",
    );
    run_ok("mkfifo", &[root.join("tmp/never").to_str().expect("utf-8")]);
    let device = dir.path().join("disk");
    std::fs::write(&device, b"").expect("device");
    let mut config = AgentConfig::default();
    config.paths.host_root = root.clone();
    config.paths.sys_root = dir.path().join("sys");
    config.block_device_allowlist = vec![device.display().to_string()];
    let addr = InstallerRunner::new(config, Arc::new(ProcessRunner::default())).start();
    let mut request = CoreosInstallRequest::new(
        &device,
        json!({"instance_info": {"image_source": "http://127.0.0.1:9/x"}}),
        None,
    );
    let mut progress = request.watch_progress();
    let install = addr.send(InstallCoreos(request));
    let install = actix_rt::spawn(install);
    tokio::time::timeout(Duration::from_secs(20), progress.wait_for(|p| p.done > 0))
        .await
        .expect("progress in time")
        .expect("progress");
    assert_eq!(progress.borrow().total, Some(4 << 20));

    // A second install is refused while one runs.
    let busy = addr
        .send(InstallCoreos(CoreosInstallRequest::new(
            &device,
            json!({}),
            None,
        )))
        .await
        .expect("mailbox")
        .expect_err("busy");
    assert_eq!(busy.error_type, "AgentIsBusy");

    let waited = addr
        .send(WaitForInstaller {
            timeout: Duration::from_millis(300),
        })
        .await
        .expect("mailbox");
    assert!(
        matches!(waited, InstallerIdle::StillRunning(ref what) if what.contains("install_coreos")),
        "{waited:?}"
    );
    assert!(addr.send(CancelInstaller).await.expect("mailbox"));
    let result = install.await.expect("join").expect("mailbox");
    let err = result.expect_err("cancelled");
    assert!(err.details.contains("cancelled"), "{err}");
    assert_eq!(
        addr.send(WaitForInstaller {
            timeout: Duration::from_secs(5)
        })
        .await
        .expect("mailbox"),
        InstallerIdle::Idle
    );
    let pid = std::fs::read_to_string(root.join("tmp/installer.pid")).expect("pid");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "installer left running: {stat}"
    );
    assert!(!addr.send(CancelInstaller).await.expect("mailbox"));
}

#[actix_rt::test]
async fn shutdown_waits_for_an_install_that_finishes_within_the_bound() {
    if !root_or_skip("shutdown_wait_completes") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = host_root(dir.path(), None);
    // A stand-in that finishes once the test opens the gate (a FIFO).
    write_script(
        &root.join("usr/bin/coreos-installer"),
        "#!/bin/sh\n# test stand-in\necho 'Read disk 2.0 MiB/2.0 MiB (100%)'\n\
         read line < /tmp/gate\necho 'Install complete.'\n",
    );
    let gate = root.join("tmp/gate");
    run_ok("mkfifo", &[gate.to_str().expect("utf-8")]);
    // A regular file as the "device": the re-scan's blockdev/partx fail and only warn.
    let device = dir.path().join("disk");
    std::fs::write(&device, b"").expect("device");
    let mut config = AgentConfig::default();
    config.paths.host_root = root;
    config.paths.sys_root = dir.path().join("sys");
    config.block_device_allowlist = vec![device.display().to_string()];
    let addr = InstallerRunner::new(config, Arc::new(ProcessRunner::default())).start();
    let mut request = CoreosInstallRequest::new(
        &device,
        json!({"instance_info": {"image_source": "http://127.0.0.1:9/x"}}),
        None,
    );
    let mut progress = request.watch_progress();
    let install = actix_rt::spawn(addr.send(InstallCoreos(request)));
    tokio::time::timeout(Duration::from_secs(20), progress.wait_for(|p| p.done > 0))
        .await
        .expect("progress in time")
        .expect("progress");

    // "SIGTERM": wait with a generous bound; the installer finishes meanwhile.
    let wait = actix_rt::spawn(addr.send(WaitForInstaller {
        timeout: Duration::from_secs(30),
    }));
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(&gate, b"go\n").expect("open the gate");
    });
    let started = Instant::now();
    let idle = wait.await.expect("join").expect("mailbox");
    assert_eq!(idle, InstallerIdle::Idle);
    assert!(started.elapsed() < Duration::from_secs(30));
    opener.join().expect("opener");
    let outcome = install
        .await
        .expect("join")
        .expect("mailbox")
        .expect("install completes");
    assert_eq!(outcome.last_line.as_deref(), Some("Install complete."));
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.uefi, None);
    assert!(!addr.send(CancelInstaller).await.expect("mailbox"));
    // The re-scan skipped the regular file: `partx -a` on it would have attached a loop
    // device (and left it attached).
    let attached = run_ok("losetup", &["-j", device.to_str().expect("utf-8")]);
    assert_eq!(
        attached.trim(),
        "",
        "a loop device was attached to the image file"
    );
}
