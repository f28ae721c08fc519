//! The generic steps' host work on real loop devices (erase, image writes), and
//! the tools that cannot run here (nvme, hdparm) through recording stand-ins.
//!
//! Every test sets the device allow-list to exactly the loop devices it made.

mod steps_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::{Actor, Addr};
use ironic_agent_actors::config::{AgentConfig, HostPaths};
use ironic_agent_actors::errors::{AgentError, StepKind};
use ironic_agent_actors::hardware::{StepError, StepResult};
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::installer::{InstallerRunner, RunStep};
use serde_json::{json, Map, Value};
use steps_support::*;

const MIB: u64 = 1024 * 1024;

fn config(dir: &Path, allow: &[&LoopDev]) -> AgentConfig {
    AgentConfig {
        block_device_allowlist: allow.iter().map(|d| d.dev()).collect(),
        image_download_connection_retries: 1,
        image_download_connection_retry_interval: 0,
        image_download_connection_timeout: 2,
        paths: HostPaths::rooted_at(dir),
        ..AgentConfig::default()
    }
}

fn installer(config: AgentConfig, extra_path: Vec<PathBuf>) -> Addr<InstallerRunner> {
    InstallerRunner::new(config, Arc::new(ProcessRunner { extra_path })).start()
}

async fn run_step(
    addr: &Addr<InstallerRunner>,
    step: &str,
    args: Value,
    node: Value,
) -> StepResult {
    let args: Map<String, Value> = args.as_object().cloned().unwrap_or_default();
    addr.send(RunStep {
        step: step.into(),
        kind: Some(StepKind::Clean),
        args,
        node,
        ports: json!([]),
    })
    .await
    .expect("installer mailbox")
}

fn agent_err(result: StepResult) -> AgentError {
    match result {
        Err(StepError::Agent(err)) => err,
        other => panic!("expected an agent error, got {other:?}"),
    }
}

fn zeros(len: usize) -> String {
    sha256(&vec![0u8; len])
}

// --- erase_devices_metadata --------------------------------------------------------

#[actix_rt::test]
async fn metadata_erase_removes_gpt_and_ext4_and_spares_an_unlisted_loop_device() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let gpt = LoopDev::new(dir.path(), "gpt.img", 32 * MIB);
    let ext4 = LoopDev::new(dir.path(), "ext4.img", 32 * MIB);
    let other = LoopDev::new(dir.path(), "other.img", 32 * MIB);
    sh("sgdisk", &["-n1:0:+8M", "-n2:0:0", &gpt.dev()]);
    sh("mkfs.ext4", &["-q", "-F", &ext4.dev()]);
    sh("mkfs.ext4", &["-q", "-F", &other.dev()]);
    assert!(gpt.signatures().contains("gpt"), "{}", gpt.signatures());
    assert!(ext4.signatures().contains("ext4"));
    let other_before = other.sha256(None);

    let addr = installer(config(dir.path(), &[&gpt, &ext4]), vec![]);
    let result = run_step(&addr, "erase_devices_metadata", json!({}), json!({})).await;
    assert_eq!(result.expect("erase succeeded"), Value::Null);

    for dev in [&gpt, &ext4] {
        assert_eq!(
            dev.signatures().trim(),
            "",
            "{} still has signatures",
            dev.dev()
        );
        let size = 32 * MIB;
        assert_eq!(sha256(&dev.read_at(0, 33 * 512)), zeros(33 * 512));
        assert_eq!(
            sha256(&dev.read_at(size - 33 * 512, 33 * 512)),
            zeros(33 * 512)
        );
    }
    assert_eq!(
        other.sha256(None),
        other_before,
        "the unlisted device changed"
    );
    assert!(other.signatures().contains("ext4"));
}

#[actix_rt::test]
async fn metadata_erase_errors_are_aggregated_into_block_device_erase_error() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let a = LoopDev::new(dir.path(), "a.img", 8 * MIB);
    let b = LoopDev::new(dir.path(), "b.img", 8 * MIB);
    // A wipefs stand-in that fails: both devices fail, one error.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    write_script(&bin, "wipefs", "echo \"wipefs: broken $*\" >&2; exit 1");
    let addr = installer(config(dir.path(), &[&a, &b]), vec![bin]);
    let err = agent_err(run_step(&addr, "erase_devices_metadata", json!({}), json!({})).await);
    assert_eq!(err.error_type, "BlockDeviceEraseError");
    assert!(err
        .details
        .starts_with("Failed to erase the metadata on the device(s): "));
    // Reverse name order: the higher loop number first.
    let (first, second) = if a.dev() > b.dev() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let i = err
        .details
        .find(&format!("{}:", first.dev()))
        .expect("first");
    let j = err
        .details
        .find(&format!("{}:", second.dev()))
        .expect("second");
    assert!(i < j, "{}", err.details);
}

// --- erase_devices -------------------------------------------------------------------

#[actix_rt::test]
async fn shred_erase_of_a_small_loop_device_zeroes_it() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = LoopDev::new(dir.path(), "shred.img", 4 * MIB);
    std::fs::write(&dev.path, pseudo_random(4 * MIB as usize, 7)).expect("fill");
    assert_ne!(dev.sha256(None), zeros(4 * MIB as usize));
    let addr = installer(config(dir.path(), &[&dev]), vec![]);
    let result = run_step(
        &addr,
        "erase_devices",
        json!({}),
        json!({"driver_internal_info": {}}),
    )
    .await
    .expect("erase_devices");
    assert_eq!(result, json!({ dev.dev(): null }));
    assert_eq!(dev.sha256(None), zeros(4 * MIB as usize));
}

fn write_script(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Stand-ins for lsblk/nvme/hdparm/shred that record their command lines.
struct StandIns {
    dir: tempfile::TempDir,
}

impl StandIns {
    fn new(lsblk_json: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let log = dir.path().join("calls.log");
        std::fs::write(dir.path().join("lsblk.json"), lsblk_json).expect("json");
        write_script(
            &bin,
            "lsblk",
            &format!("cat {}", dir.path().join("lsblk.json").display()),
        );
        for tool in ["nvme", "hdparm", "shred", "wipefs", "sgdisk"] {
            write_script(
                &bin,
                tool,
                &format!(
                    "echo \"{tool} $*\" >> {log}\nif [ -x {hook} ]; then exec {hook} \"$@\"; fi\nexit 0",
                    log = log.display(),
                    hook = dir.path().join(format!("{tool}.hook")).display()
                ),
            );
        }
        Self { dir }
    }

    fn hook(&self, tool: &str, body: &str) {
        write_script(self.dir.path(), &format!("{tool}.hook"), body);
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn installer(&self, allow: &[&str]) -> Addr<InstallerRunner> {
        let config = AgentConfig {
            block_device_allowlist: allow.iter().map(|s| s.to_string()).collect(),
            paths: HostPaths::rooted_at(self.dir.path()),
            ..AgentConfig::default()
        };
        installer(config, vec![self.bin()])
    }
}

/// (kname, type, parent, fstype, parttype)
type FakeDev<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn lsblk_json(devs: &[FakeDev<'_>]) -> String {
    let list: Vec<Value> = devs
        .iter()
        .map(|(name, kind, parent, fstype, parttype)| {
            json!({"kname": name, "type": kind, "size": 1_000_000_000u64, "ro": false,
                   "fstype": fstype, "parttype": parttype, "label": null, "pkname": parent,
                   "log-sec": 512})
        })
        .collect();
    json!({ "blockdevices": list }).to_string()
}

#[actix_rt::test]
async fn standin_nvme_format_uses_crypto_erase_when_supported() {
    let s = StandIns::new(&lsblk_json(&[("nvme0n1", "disk", None, None, None)]));
    s.hook(
        "nvme",
        "[ \"$1\" = id-ctrl ] && echo '{\"fna\": 4}'; exit 0",
    );
    let addr = s.installer(&["/dev/nvme0n1"]);
    let result = run_step(&addr, "erase_devices", json!({}), json!({})).await;
    assert_eq!(result.expect("erase"), json!({"/dev/nvme0n1": null}));
    assert_eq!(
        s.calls(),
        [
            "nvme id-ctrl /dev/nvme0n1 -o json",
            "nvme format /dev/nvme0n1 -s 2 -f"
        ]
    );
}

#[actix_rt::test]
async fn standin_nvme_format_failure_fails_unless_the_node_allows_shred() {
    let s = StandIns::new(&lsblk_json(&[("nvme0n1", "disk", None, None, None)]));
    s.hook(
        "nvme",
        "[ \"$1\" = id-ctrl ] && { echo '{\"fna\": 0}'; exit 0; }; echo 'format failed' >&2; exit 1",
    );
    let addr = s.installer(&["/dev/nvme0n1"]);
    let err = agent_err(run_step(&addr, "erase_devices", json!({}), json!({})).await);
    assert_eq!(err.error_type, "BlockDeviceEraseError");
    assert!(err.details.contains("format failed"), "{}", err.details);
    assert!(!s.calls().iter().any(|c| c.starts_with("shred")));

    let node = json!({"driver_internal_info": {"agent_continue_if_secure_erase_failed": true,
        "agent_erase_devices_iterations": 2, "agent_erase_devices_zeroize": false}});
    run_step(&addr, "erase_devices", json!({}), node)
        .await
        .expect("shred fallback");
    let calls = s.calls();
    assert!(
        calls.contains(&"nvme format /dev/nvme0n1 -s 1 -f".to_string()),
        "{calls:?}"
    );
    assert_eq!(
        calls.last().map(String::as_str),
        Some("shred --force --verbose --iterations 2 /dev/nvme0n1")
    );
}

const HDPARM_SECURITY: &str = "/dev/sdx:\n\nATA device, with non-removable media\nSecurity: \n\tMaster password revision code = 65534\n\t\tsupported\n\tnot\tenabled\n\tnot\tlocked\n\tnot\tfrozen\n\tnot\texpired: security count\n\t\tsupported: enhanced erase\n\t2min for SECURITY ERASE UNIT. 2min for ENHANCED SECURITY ERASE UNIT.\nLogical Unit WWN Device Identifier: 5000000000000000\n";

#[actix_rt::test]
async fn standin_hdparm_enhanced_ata_secure_erase_command_lines() {
    let s = StandIns::new(&lsblk_json(&[("sdx", "disk", None, None, None)]));
    s.hook(
        "hdparm",
        &format!(
            "[ \"$1\" = -I ] && printf '{}'; exit 0",
            HDPARM_SECURITY.replace('\n', "\\n").replace('\t', "\\t")
        ),
    );
    let addr = s.installer(&["/dev/sdx"]);
    run_step(&addr, "erase_devices", json!({}), json!({}))
        .await
        .expect("ata erase");
    assert_eq!(
        s.calls(),
        [
            "hdparm -I /dev/sdx",
            "hdparm --user-master u --security-set-pass NULL /dev/sdx",
            "hdparm --user-master u --security-erase-enhanced NULL /dev/sdx",
            "hdparm -I /dev/sdx",
        ]
    );
}

#[actix_rt::test]
async fn standin_hdparm_frozen_drive_fails_and_shred_only_when_allowed() {
    let s = StandIns::new(&lsblk_json(&[("sdx", "disk", None, None, None)]));
    let frozen = HDPARM_SECURITY.replace("\tnot\tfrozen\n", "\tfrozen\n");
    s.hook(
        "hdparm",
        &format!(
            "[ \"$1\" = -I ] && printf '{}'; exit 0",
            frozen.replace('\n', "\\n").replace('\t', "\\t")
        ),
    );
    let addr = s.installer(&["/dev/sdx"]);
    let err = agent_err(run_step(&addr, "erase_devices", json!({}), json!({})).await);
    assert!(err.details.contains("frozen"), "{}", err.details);
    assert_eq!(s.calls(), ["hdparm -I /dev/sdx"]);
    let node = json!({"driver_internal_info": {"agent_continue_if_ata_erase_failed": true}});
    run_step(&addr, "erase_devices", json!({}), node)
        .await
        .expect("shred");
    assert_eq!(
        s.calls().last().map(String::as_str),
        Some("shred --force --zero --verbose --iterations 1 /dev/sdx")
    );
}

#[actix_rt::test]
async fn standin_protected_filesystems_stop_erase_devices_before_any_tool_runs() {
    for (fstype, parttype) in [
        (Some("gfs2"), None),
        (None, Some("aa31e02a-400f-11db-9590-000c2911d1b8")),
        (None, Some("37AFFC90-EF7D-4E96-91C3-2D7AE055B174")),
        (None, Some("0xfb")),
    ] {
        let s = StandIns::new(&lsblk_json(&[
            ("sdx", "disk", None, None, None),
            ("sdx1", "part", Some("sdx"), fstype, parttype),
        ]));
        let addr = s.installer(&["/dev/sdx"]);
        let err = agent_err(run_step(&addr, "erase_devices", json!({}), json!({})).await);
        assert_eq!(
            err.error_type, "ProtectedDeviceError",
            "{fstype:?} {parttype:?}"
        );
        assert!(s.calls().is_empty(), "{:?}", s.calls());
        // wipe_special_filesystems=false lifts the guard.
        let node = json!({"driver_internal_info": {"wipe_special_filesystems": false}});
        run_step(&addr, "erase_devices", json!({}), node)
            .await
            .expect("erase");
        assert!(!s.calls().is_empty());
    }
}

#[actix_rt::test]
async fn standin_concurrent_erase_touches_only_allow_listed_disks() {
    let s = StandIns::new(&lsblk_json(&[
        ("sdx", "disk", None, None, None),
        ("sdy", "disk", None, None, None),
        ("vda", "disk", None, None, None),
    ]));
    let addr = s.installer(&["/dev/sdx", "/dev/sdy"]);
    let node = json!({"driver_internal_info": {"disk_erasure_concurrency": 2,
        "agent_enable_ata_secure_erase": false}});
    let result = run_step(&addr, "erase_devices", json!({}), node)
        .await
        .expect("erase");
    assert_eq!(result, json!({"/dev/sdx": null, "/dev/sdy": null}));
    let calls = s.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| !c.contains("vda")), "{calls:?}");
}
