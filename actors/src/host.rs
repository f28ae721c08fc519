//! Access to the host: running commands and guarding block devices.
//!
//! Every subsystem reaches the host through the types here (and the paths
//! in [`crate::config::HostPaths`]) so tests can point them at fixture
//! trees, loop devices and stand-in programs.

pub mod lsblk;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

/// A boxed future, as returned by object-safe async traits here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A program to run, optionally inside `chroot <root>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandSpec {
    /// The program name or path.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Run as `chroot <root> <program> <args>` when set.
    pub chroot: Option<PathBuf>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Bytes written to the program's standard input.
    pub stdin: Option<Vec<u8>>,
}

impl CommandSpec {
    /// A command with the given program and arguments.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Runs the command inside `chroot <root>`.
    pub fn in_chroot(mut self, root: impl Into<PathBuf>) -> Self {
        self.chroot = Some(root.into());
        self
    }

    /// The full argument vector that is executed (with the chroot prefix).
    pub fn argv(&self) -> Vec<String> {
        let mut argv = Vec::with_capacity(self.args.len() + 3);
        if let Some(root) = &self.chroot {
            argv.push("chroot".to_string());
            argv.push(root.display().to_string());
        }
        argv.push(self.program.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }
}

impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv().join(" "))
    }
}

/// How a finished process ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code, when the process exited normally.
    pub code: Option<i32>,
    /// The terminating signal, when a signal killed it.
    pub signal: Option<i32>,
    /// Captured standard output (lossy UTF-8).
    pub stdout: String,
    /// Captured standard error (lossy UTF-8).
    pub stderr: String,
}

impl CommandOutput {
    /// Whether the process exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A short description of the exit, e.g. `code 3` or `signal 9`.
    pub fn describe_exit(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "unknown status".to_string(),
        }
    }
}

/// Runs programs on the host. Injected so tests can record or fake calls.
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs the command to completion, capturing its output.
    fn run(&self, spec: CommandSpec) -> BoxFuture<'static, io::Result<CommandOutput>>;
}

/// The production runner: spawns real processes with tokio.
#[derive(Debug, Clone, Default)]
pub struct ProcessRunner {
    /// Directories searched before the inherited `PATH` (tests put stand-ins here).
    pub extra_path: Vec<PathBuf>,
}

impl ProcessRunner {
    /// Builds the tokio command for a spec.
    pub fn command(&self, spec: &CommandSpec) -> tokio::process::Command {
        let argv = spec.argv();
        let mut command = tokio::process::Command::new(&argv[0]);
        command.args(&argv[1..]);
        if !self.extra_path.is_empty() {
            let inherited = std::env::var_os("PATH").unwrap_or_default();
            let mut paths: Vec<PathBuf> = self.extra_path.clone();
            paths.extend(std::env::split_paths(&inherited));
            if let Ok(joined) = std::env::join_paths(paths) {
                command.env("PATH", joined);
            }
        }
        command.envs(&spec.env);
        command.kill_on_drop(true);
        command
    }
}

impl CommandRunner for ProcessRunner {
    fn run(&self, spec: CommandSpec) -> BoxFuture<'static, io::Result<CommandOutput>> {
        let mut command = self.command(&spec);
        Box::pin(async move {
            command
                .stdin(if spec.stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = command.spawn()?;
            if let (Some(input), Some(mut pipe)) = (spec.stdin, child.stdin.take()) {
                pipe.write_all(&input).await?;
                drop(pipe);
            }
            let output = child.wait_with_output().await?;
            Ok(CommandOutput {
                code: output.status.code(),
                signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        })
    }
}

/// The explicit list of block devices destructive work may touch.
///
/// An empty list means "no restriction" (production default); tests always
/// set one. Paths are compared after resolving symlinks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceAllowlist {
    devices: Vec<PathBuf>,
}

impl DeviceAllowlist {
    /// Builds the list from configured device paths.
    pub fn new<I, P>(devices: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        Self {
            devices: devices
                .into_iter()
                .map(Into::into)
                .map(|path| canonical_or_same(&path))
                .collect(),
        }
    }

    /// Whether a list was configured at all.
    pub fn is_restricted(&self) -> bool {
        !self.devices.is_empty()
    }

    /// Whether `device` (or the disk a partition of it belongs to) is allowed.
    pub fn permits(&self, device: &Path) -> bool {
        if self.devices.is_empty() {
            return true;
        }
        let device = canonical_or_same(device);
        self.devices
            .iter()
            .any(|allowed| device == *allowed || is_partition_of(&device, allowed))
    }

    /// The configured devices.
    pub fn devices(&self) -> &[PathBuf] {
        &self.devices
    }
}

fn canonical_or_same(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `/dev/loop3p1` is a partition of `/dev/loop3`; `/dev/sda2` of `/dev/sda`.
fn is_partition_of(candidate: &Path, disk: &Path) -> bool {
    let (Some(candidate), Some(disk)) = (candidate.to_str(), disk.to_str()) else {
        return false;
    };
    let Some(rest) = candidate.strip_prefix(disk) else {
        return false;
    };
    let digits = rest.strip_prefix('p').unwrap_or(rest);
    let disk_ends_in_digit = disk.ends_with(|c: char| c.is_ascii_digit());
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && (rest.starts_with('p') || !disk_ends_in_digit)
}

/// Kernel names of the disks that back a mounted filesystem of this mount
/// namespace (e.g. `vda` when `/` lives on `/dev/vda1` or `/dev/vda`).
///
/// Read from `<proc_root>/self/mountinfo` (the `major:minor` field) and
/// `<sys_root>/dev/block/<major:minor>`; a partition maps to its parent disk, and a
/// stacked device (LVM, dm-crypt, md) to the disks under it (`slaves/`, recursively).
/// No step may install onto or wipe such a disk, whatever the hints say.
pub fn disks_in_use(proc_root: &Path, sys_root: &Path) -> std::collections::BTreeSet<String> {
    let mut disks = std::collections::BTreeSet::new();
    let Ok(mountinfo) = std::fs::read_to_string(proc_root.join("self/mountinfo")) else {
        return disks;
    };
    for line in mountinfo.lines() {
        let Some(dev) = line.split_whitespace().nth(2) else {
            continue;
        };
        if dev.starts_with("0:") {
            continue; // virtual filesystems (tmpfs, overlay, proc, …)
        }
        if let Ok(node) = std::fs::canonicalize(sys_root.join("dev/block").join(dev)) {
            add_backing_disks(&node, &mut disks, 0);
        }
    }
    disks
}

/// Adds the disk of the sysfs block node `node` (its parent for a partition) and,
/// for a stacked device, the disks of everything under it.
fn add_backing_disks(node: &Path, disks: &mut std::collections::BTreeSet<String>, depth: u8) {
    const MAX_STACK: u8 = 8;
    let disk = if node.join("partition").exists() {
        node.parent().unwrap_or(node)
    } else {
        node
    };
    if let Some(name) = disk.file_name().and_then(|name| name.to_str()) {
        disks.insert(name.to_string());
    }
    if depth >= MAX_STACK {
        return;
    }
    let Ok(slaves) = std::fs::read_dir(node.join("slaves")) else {
        return;
    };
    for slave in slaves.flatten() {
        if let Ok(below) = std::fs::canonicalize(slave.path()) {
            add_backing_disks(&below, disks, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_accepts_listed_disks_and_their_partitions() {
        let list = DeviceAllowlist::new(["/dev/loop7", "/dev/sdz"]);
        assert!(list.permits(Path::new("/dev/loop7")));
        assert!(list.permits(Path::new("/dev/loop7p2")));
        assert!(list.permits(Path::new("/dev/sdz1")));
        assert!(!list.permits(Path::new("/dev/loop70")));
        assert!(!list.permits(Path::new("/dev/sda")));
        assert!(!list.permits(Path::new("/dev/loop1")));
    }

    #[test]
    fn empty_allowlist_is_unrestricted() {
        let list = DeviceAllowlist::default();
        assert!(!list.is_restricted());
        assert!(list.permits(Path::new("/dev/sda")));
    }

    #[test]
    fn chroot_prefix_is_part_of_argv() {
        let spec =
            CommandSpec::new("coreos-installer", ["install", "/dev/sda"]).in_chroot("/mnt/coreos");
        assert_eq!(
            spec.argv(),
            [
                "chroot",
                "/mnt/coreos",
                "coreos-installer",
                "install",
                "/dev/sda"
            ]
        );
    }

    /// A fixture tree whose `proc/self/mountinfo` is `mountinfo`: (dir, proc, sys).
    fn mounted(mountinfo: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc_root = dir.path().join("proc");
        let sys_root = dir.path().join("sys");
        std::fs::create_dir_all(proc_root.join("self")).expect("proc");
        std::fs::write(proc_root.join("self/mountinfo"), mountinfo).expect("mountinfo");
        (dir, proc_root, sys_root)
    }

    #[test]
    fn disks_in_use_maps_partitions_to_their_disk() {
        let (_dir, proc_root, sys_root) = mounted(
            "27 1 8:2 / / rw - ext4 /dev/sda2 rw\n\
             30 27 0:22 / /proc rw - proc proc rw\n\
             31 27 254:0 / /data rw - ext4 /dev/vdb rw\n",
        );
        let devices = sys_root.join("devices/block");
        std::fs::create_dir_all(devices.join("sda/sda2")).expect("sda2");
        std::fs::write(devices.join("sda/sda2/partition"), "2").expect("partition");
        std::fs::create_dir_all(devices.join("vdb")).expect("vdb");
        std::fs::create_dir_all(sys_root.join("dev/block")).expect("dev/block");
        std::os::unix::fs::symlink(devices.join("sda/sda2"), sys_root.join("dev/block/8:2"))
            .expect("link");
        std::os::unix::fs::symlink(devices.join("vdb"), sys_root.join("dev/block/254:0"))
            .expect("link");
        let in_use = disks_in_use(&proc_root, &sys_root);
        assert_eq!(in_use.into_iter().collect::<Vec<_>>(), ["sda", "vdb"]);
    }

    #[test]
    fn disks_in_use_follows_stacked_devices_to_their_disks() {
        // `/` on LVM (dm-0) over nvme0n1p3.
        let (_dir, proc_root, sys_root) = mounted("27 1 253:0 / / rw - xfs /dev/mapper/root rw\n");
        let devices = sys_root.join("devices");
        let part = devices.join("pci/nvme/nvme0n1/nvme0n1p3");
        std::fs::create_dir_all(&part).expect("p3");
        std::fs::write(part.join("partition"), "3").expect("partition");
        let dm = devices.join("virtual/block/dm-0");
        std::fs::create_dir_all(dm.join("slaves")).expect("dm-0");
        std::os::unix::fs::symlink(&part, dm.join("slaves/nvme0n1p3")).expect("slave");
        std::fs::create_dir_all(sys_root.join("dev/block")).expect("dev/block");
        std::os::unix::fs::symlink(&dm, sys_root.join("dev/block/253:0")).expect("link");
        let in_use = disks_in_use(&proc_root, &sys_root);
        assert_eq!(in_use.into_iter().collect::<Vec<_>>(), ["dm-0", "nvme0n1"]);
    }

    #[actix_rt::test]
    async fn process_runner_captures_exit_and_output() {
        let runner = ProcessRunner::default();
        let out = runner
            .run(CommandSpec::new(
                "sh",
                ["-c", "echo hi; echo err >&2; exit 3"],
            ))
            .await
            .expect("spawn sh");
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.describe_exit(), "code 3");
    }
}
