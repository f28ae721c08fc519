//! The generic steps' host work on real loop devices (erase, image writes), and
//! the tools that cannot run here (nvme, hdparm) through recording stand-ins.
//!
//! Every test sets the device allow-list to exactly the loop devices it made.

mod steps_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::{Actor, Addr};
use ironic_agent_actors::config::{AgentConfig, HostPaths};
use ironic_agent_actors::hardware::StepResult;
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::installer::InstallerRunner;
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
    run_step_on(addr, step, args, node, None).await
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
        for tool in [
            "nvme", "hdparm", "shred", "wipefs", "sgdisk", "mdadm", "udevadm",
        ] {
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

// --- write_image / prepare_image ------------------------------------------------------

fn image_info(id: &str, urls: &[String], checksum: &str, format: &str, stream: bool) -> Value {
    json!({"id": id, "urls": urls, "os_hash_algo": "sha256", "os_hash_value": checksum,
           "disk_format": format, "container_format": "bare", "stream_raw_images": stream,
           "image_type": "whole-disk"})
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}

struct ImageCase {
    _dir: tempfile::TempDir,
    disk: LoopDev,
    server: TestServer,
    addr: Addr<InstallerRunner>,
}

fn image_case(disk_size: u64, tweak: impl FnOnce(&mut AgentConfig)) -> ImageCase {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDev::new(dir.path(), "disk.img", disk_size);
    let mut cfg = config(dir.path(), &[&disk]);
    tweak(&mut cfg);
    let addr = installer(cfg, vec![]);
    ImageCase {
        _dir: dir,
        disk,
        server: TestServer::start(),
        addr,
    }
}

async fn write_image(case: &ImageCase, info: Value) -> StepResult {
    run_step_on(
        &case.addr,
        "write_image",
        json!({"image_info": info, "configdrive": null}),
        json!({}),
        Some(&case.disk.dev()),
    )
    .await
}

#[actix_rt::test]
async fn raw_image_streams_to_the_loop_device_byte_identical() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(32 * MIB, |_| {});
    let mut image = pseudo_random(20 * MIB as usize + 1234, 11);
    image[440..444].copy_from_slice(&[0x78, 0x56, 0x34, 0x12]);
    let digest = sha256(&image);
    let url = case
        .server
        .route("/img.raw", Behaviour::Ok(Arc::new(image.clone())));
    let id = unique("raw");
    let result = write_image(&case, image_info(&id, &[url], &digest, "raw", true))
        .await
        .expect("write_image");
    assert_eq!(
        result,
        json!({"result": format!("prepare_image: image ({id}) written to device {} root_uuid=0x12345678", case.disk.dev())})
    );
    assert_eq!(case.disk.sha256(Some(image.len() as u64)), digest);
    assert_eq!(case.server.hits("/img.raw"), 1);
    // get_partition_uuids reports the MBR signature.
    let uuids = run_step(&case.addr, "get_partition_uuids", json!({}), json!({}))
        .await
        .expect("uuids");
    assert_eq!(uuids["root uuid"], "0x12345678");
}

#[actix_rt::test]
async fn qcow2_image_is_converted_with_qemu_img_byte_identical() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(32 * MIB, |_| {});
    let raw = pseudo_random(16 * MIB as usize, 21);
    let qcow_bytes = qcow2_of(&raw);
    // Dirty the disk first: the conversion must overwrite everything.
    std::fs::write(&case.disk.path, pseudo_random(16 * MIB as usize, 99)).expect("dirty");
    let url = case
        .server
        .route("/img.qcow2", Behaviour::Ok(Arc::new(qcow_bytes.clone())));
    let id = unique("qcow");
    write_image(
        &case,
        image_info(
            &id,
            std::slice::from_ref(&url),
            &sha256(&qcow_bytes),
            "qcow2",
            false,
        ),
    )
    .await
    .expect("write_image");
    assert_eq!(case.disk.sha256(Some(raw.len() as u64)), sha256(&raw));

    // A qcow2 image announced as raw is refused (InvalidImage) before any write.
    let wrong = write_image(
        &case,
        image_info(
            &unique("qcow"),
            std::slice::from_ref(&url),
            &sha256(&qcow_bytes),
            "vmdk",
            false,
        ),
    )
    .await;
    assert_eq!(agent_err(wrong).error_type, "InvalidImage");
}

#[actix_rt::test]
async fn checksum_mismatch_fails_after_retries_and_leaves_no_image() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(16 * MIB, |_| {});
    let image = pseudo_random(4 * MIB as usize, 3);
    let url = case
        .server
        .route("/img", Behaviour::Ok(Arc::new(image.clone())));
    let err = agent_err(
        write_image(
            &case,
            image_info(&unique("sum"), &[url], &"0".repeat(64), "raw", true),
        )
        .await,
    );
    assert_eq!(err.error_type, "ImageChecksumError", "{err:?}");
    assert!(err.details.contains(&sha256(&image)), "{}", err.details);
    // retries = 1: two whole downloads.
    assert_eq!(case.server.hits("/img"), 2);
    assert_ne!(case.disk.sha256(Some(image.len() as u64)), sha256(&image));
}

#[actix_rt::test]
async fn not_found_is_fatal_at_once() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(16 * MIB, |_| {});
    let missing = format!("{}/missing", case.server.base);
    let good = case
        .server
        .route("/good", Behaviour::Ok(Arc::new(vec![1u8; 4096])));
    let err = agent_err(
        write_image(
            &case,
            image_info(
                &unique("404"),
                &[missing, good],
                &sha256(&[1u8; 4096]),
                "raw",
                true,
            ),
        )
        .await,
    );
    assert_eq!(err.error_type, "ImageDownloadFatalError", "{err:?}");
    assert!(err.details.contains("404"), "{}", err.details);
    assert_eq!(case.server.hits("/missing"), 1, "a 4xx must not be retried");
    assert_eq!(case.server.hits("/good"), 0, "a 4xx stops everything");
}

#[actix_rt::test]
async fn server_error_then_success_is_retried_on_the_same_url() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(16 * MIB, |c| c.image_download_connection_retries = 2);
    let image = pseudo_random(3 * MIB as usize, 5);
    let url = case.server.route(
        "/flaky",
        Behaviour::Sequence(
            vec![500, 503],
            Box::new(Behaviour::Ok(Arc::new(image.clone()))),
        ),
    );
    write_image(
        &case,
        image_info(&unique("5xx"), &[url], &sha256(&image), "raw", true),
    )
    .await
    .expect("write after 5xx");
    assert_eq!(case.server.hits("/flaky"), 3);
    assert_eq!(case.disk.sha256(Some(image.len() as u64)), sha256(&image));
}

#[actix_rt::test]
async fn stalled_server_times_out_and_fails() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(16 * MIB, |c| {
        c.image_download_connection_timeout = 1;
        c.image_download_connection_retries = 0;
    });
    let image = Arc::new(pseudo_random(4 * MIB as usize, 9));
    let url = case
        .server
        .route("/stall", Behaviour::Stall(image.clone(), 1024 * 1024));
    let started = std::time::Instant::now();
    let err = agent_err(
        write_image(
            &case,
            image_info(&unique("stall"), &[url], &sha256(&image), "raw", true),
        )
        .await,
    );
    assert_eq!(err.error_type, "ImageDownloadError", "{err:?}");
    assert!(err.details.contains("no data received"), "{}", err.details);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The partly written image was scrubbed.
    assert_eq!(sha256(&case.disk.read_at(0, 65536)), zeros(65536));
}

#[actix_rt::test]
async fn max_duration_gives_a_408_timeout_error() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(16 * MIB, |c| {
        c.image_download_connection_timeout = 10;
        c.image_download_max_duration = 1;
    });
    let image = Arc::new(pseudo_random(4 * MIB as usize, 9));
    let url = case
        .server
        .route("/slow", Behaviour::Stall(image.clone(), 4096));
    let err = agent_err(
        write_image(
            &case,
            image_info(&unique("slow"), &[url], &sha256(&image), "raw", true),
        )
        .await,
    );
    assert_eq!(
        (err.error_type.as_str(), err.code),
        ("ImageDownloadTimeoutError", 408),
        "{err:?}"
    );
}

#[actix_rt::test]
async fn truncated_body_fails_and_is_retried() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(16 * MIB, |_| {});
    let image = Arc::new(pseudo_random(4 * MIB as usize, 13));
    let url = case.server.route(
        "/short",
        Behaviour::Truncate(image.clone(), 3 * MIB as usize),
    );
    let err = agent_err(
        write_image(
            &case,
            image_info(&unique("short"), &[url], &sha256(&image), "raw", true),
        )
        .await,
    );
    assert_eq!(err.error_type, "ImageDownloadError", "{err:?}");
    assert_eq!(case.server.hits("/short"), 2);
    assert_eq!(sha256(&case.disk.read_at(0, 65536)), zeros(65536));
}

#[actix_rt::test]
async fn image_larger_than_the_disk_is_refused_before_writing() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(8 * MIB, |_| {});
    let image = pseudo_random(12 * MIB as usize, 17);
    let url = case
        .server
        .route("/big", Behaviour::Ok(Arc::new(image.clone())));
    let err = agent_err(
        write_image(
            &case,
            image_info(&unique("big"), &[url], &sha256(&image), "raw", true),
        )
        .await,
    );
    assert_eq!(err.error_type, "ImageDownloadOutofSpaceError", "{err:?}");
    assert_eq!(case.server.hits("/big"), 1, "out of space is not retried");
    assert_eq!(case.disk.sha256(None), zeros(8 * MIB as usize));
}

#[actix_rt::test]
async fn bad_image_info_is_a_400_and_touches_nothing() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(8 * MIB, |c| c.md5_enabled = false);
    let url = case
        .server
        .route("/x", Behaviour::Ok(Arc::new(vec![0u8; 512])));
    for info in [
        json!({"urls": [url]}),
        json!({"id": "a", "urls": []}),
        json!({"id": "a", "urls": [url]}),
        json!({"id": "a", "urls": [url], "checksum": ""}),
        json!({"id": "a", "urls": [url], "os_hash_algo": "sha256"}),
        json!({"id": "a", "urls": [url], "checksum": "d41d8cd98f00b204e9800998ecf8427e"}),
        json!({"id": "a", "urls": [url], "checksum": "abc"}),
    ] {
        let err = agent_err(write_image(&case, info.clone()).await);
        assert_eq!(
            (err.error_type.as_str(), err.code),
            ("InvalidCommandParamsError", 400),
            "{info}"
        );
    }
    assert_eq!(case.server.hits("/x"), 0);
}

#[actix_rt::test]
async fn checksum_file_url_and_basic_auth_are_used() {
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(16 * MIB, |_| {});
    let image = pseudo_random(2 * MIB as usize, 23);
    let auth = "Basic dXNlcjpwYXNz"; // user:pass
    let url = case.server.route(
        "/images/disk.raw",
        Behaviour::Auth(
            auth.into(),
            Box::new(Behaviour::Ok(Arc::new(image.clone()))),
        ),
    );
    let sums = format!(
        "# sums\n{}  other.raw\n{} *disk.raw\n",
        "f".repeat(64),
        sha256(&image)
    );
    let sums_url = case.server.route(
        "/images/SHA256SUMS",
        Behaviour::Auth(
            auth.into(),
            Box::new(Behaviour::Ok(Arc::new(sums.into_bytes()))),
        ),
    );
    let info = json!({"id": unique("sums"), "urls": [url], "checksum": sums_url,
        "disk_format": "raw", "stream_raw_images": true,
        "image_server_auth_strategy": "http_basic", "image_server_user": "user",
        "image_server_password": "pass"});
    write_image(&case, info)
        .await
        .expect("write with checksum file");
    assert_eq!(case.disk.sha256(Some(image.len() as u64)), sha256(&image));
}

// --- through the coordinator ----------------------------------------------------------

mod through_the_coordinator {
    use super::*;
    use ironic_agent_actors::command::CommandStatus;
    use ironic_agent_actors::coordinator::{Coordinator, GetCommand, Peers, RunCommand};
    use ironic_agent_actors::hardware::{GenericHardwareManager, HardwareManager, ManagerSet};
    use ironic_agent_actors::inspector::HardwareInspector;
    use ironic_agent_actors::ironic::IronicClient;
    use ironic_agent_actors::systemd::SystemdSupervisor;

    fn coordinator(config: AgentConfig) -> Addr<Coordinator> {
        let runner = Arc::new(ProcessRunner::default());
        let peers = Peers {
            inspector: HardwareInspector::new(config.clone()).start(),
            installer: InstallerRunner::new(config.clone(), runner.clone()).start(),
            systemd: SystemdSupervisor::new(Some(
                "unix:path=/nonexistent/ironic-agent-test-bus".into(),
            ))
            .start(),
            ironic: IronicClient::new(config.clone()).start(),
        };
        let managers: Vec<Arc<dyn HardwareManager>> =
            vec![Arc::new(GenericHardwareManager::default())];
        Coordinator::new(config, peers)
            .with_managers(ManagerSet::new(managers).expect("managers"))
            .with_runner(runner)
            .start()
    }

    /// A step command for a node whose root-device hint names `disk`.
    fn step(kind: &str, step: &str, args: Value, disk: &str) -> Map<String, Value> {
        json!({"step": {"step": step, "interface": "deploy", "priority": 0, "args": args},
               "node": {"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "driver_internal_info": {},
                        "properties": {"root_device": {"name": disk}}},
               "ports": [], format!("{kind}_version"): null})
        .as_object()
        .cloned()
        .expect("object")
    }

    #[actix_rt::test]
    async fn deploy_write_image_reports_progress_then_ipa_result_and_partition_uuids() {
        if !loop_devices_usable() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = LoopDev::new(dir.path(), "disk.img", 16 * MIB);
        let mut cfg = config(dir.path(), &[&disk]);
        cfg.standalone = true;
        let coordinator = coordinator(cfg);
        let server = TestServer::start();
        let image = pseudo_random(6 * MIB as usize, 31);
        // ~6 MiB in 256 KiB pieces 150 ms apart: several seconds of RUNNING.
        let url = server.route(
            "/slow.raw",
            Behaviour::Slow(Arc::new(image.clone()), 256 * 1024, 150),
        );
        let id = unique("coord");
        let started = coordinator
            .send(RunCommand {
                name: "deploy.execute_deploy_step".into(),
                params: step(
                    "deploy",
                    "write_image",
                    json!({"image_info": image_info(&id, &[url], &sha256(&image), "raw", true),
                           "configdrive": null}),
                    &disk.dev(),
                ),
                wait: false,
            })
            .await
            .expect("mailbox")
            .expect("accepted");
        assert_eq!(started.command_status, CommandStatus::Running);
        let mut seen_progress = None;
        let result = loop {
            let current = coordinator
                .send(GetCommand {
                    id: started.id.clone(),
                    wait: false,
                })
                .await
                .expect("mailbox")
                .expect("result");
            if current.is_finished() {
                break current;
            }
            if let Some(p) = current.command_progress.filter(|p| p.done > 0) {
                seen_progress = Some(p);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(
            result.command_status,
            CommandStatus::Succeeded,
            "{result:?}"
        );
        assert_eq!(
            result.command_result.expect("result")["deploy_result"]["result"],
            format!(
                "prepare_image: image ({id}) written to device {} root_uuid={}",
                disk.dev(),
                format_args!(
                    "0x{:08x}",
                    u32::from_le_bytes(image[440..444].try_into().expect("4 bytes"))
                )
            )
        );
        let progress = seen_progress.expect("progress was visible while running");
        assert_eq!(progress.total, Some(image.len() as u64));
        assert!(progress.done <= image.len() as u64);
        assert_eq!(disk.sha256(Some(image.len() as u64)), sha256(&image));

        let uuids = coordinator
            .send(RunCommand {
                name: "standby.get_partition_uuids".into(),
                params: Map::new(),
                wait: true,
            })
            .await
            .expect("mailbox")
            .expect("uuids");
        let root = uuids.command_result.expect("result")["root uuid"].clone();
        assert!(root.as_str().is_some_and(|r| r.starts_with("0x")), "{root}");
    }

    #[actix_rt::test]
    async fn clean_erase_devices_metadata_through_the_coordinator() {
        if !loop_devices_usable() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = LoopDev::new(dir.path(), "disk.img", 16 * MIB);
        sh("mkfs.ext4", &["-q", "-F", &disk.dev()]);
        let mut cfg = config(dir.path(), &[&disk]);
        cfg.standalone = true;
        let coordinator = coordinator(cfg);
        let result = coordinator
            .send(RunCommand {
                name: "clean.execute_clean_step".into(),
                params: step("clean", "erase_devices_metadata", json!({}), &disk.dev()),
                wait: true,
            })
            .await
            .expect("mailbox")
            .expect("stored");
        assert_eq!(
            result.command_status,
            CommandStatus::Succeeded,
            "{result:?}"
        );
        assert_eq!(
            result.command_result.expect("result")["clean_result"],
            Value::Null
        );
        assert_eq!(disk.signatures().trim(), "");
    }
}

// --- erase_pstore, clean_uefi_nvram, install_bootloader, bootc ------------------------

#[actix_rt::test]
async fn erase_pstore_empties_the_mounted_pstore_of_the_fixture_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pstore = dir.path().join("pstore");
    std::fs::create_dir_all(pstore.join("sub")).expect("pstore");
    std::fs::write(pstore.join("dmesg-efi-1"), "oops").expect("entry");
    let paths = HostPaths::rooted_at(dir.path());
    std::fs::create_dir_all(&paths.proc_root).expect("proc");
    std::fs::write(
        paths.proc_root.join("mounts"),
        format!("pstore {} pstore rw 0 0\n", pstore.display()),
    )
    .expect("mounts");
    let addr = installer(
        AgentConfig {
            paths,
            ..AgentConfig::default()
        },
        vec![],
    );
    let result = run_step(&addr, "erase_pstore", json!({}), json!({})).await;
    assert_eq!(result.expect("erase_pstore"), Value::Null);
    assert_eq!(std::fs::read_dir(&pstore).expect("dir").count(), 0);
}

const EFIBOOTMGR_V: &str = "BootCurrent: 0001\nBootOrder: 0001,0002,0000\nBoot0000* UiApp\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(462caa21)\nBoot0001* Fedora\tHD(1,GPT,0d3f,0x800,0x12c000)/File(\\EFI\\fedora\\shimx64.efi)\nBoot0002* PXE IPv4\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)\n";

#[actix_rt::test]
async fn standin_efibootmgr_deletes_only_matching_nvram_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let log = dir.path().join("calls.log");
    std::fs::write(dir.path().join("v.txt"), EFIBOOTMGR_V).expect("v");
    write_script(
        &bin,
        "efibootmgr",
        &format!(
            "echo \"efibootmgr $*\" >> {}\n[ \"$1\" = -v ] && cat {}\nexit 0",
            log.display(),
            dir.path().join("v.txt").display()
        ),
    );
    let paths = HostPaths::rooted_at(dir.path());
    std::fs::create_dir_all(paths.sys_root.join("firmware/efi")).expect("efi");
    let addr = installer(
        AgentConfig {
            paths,
            ..AgentConfig::default()
        },
        vec![bin],
    );
    run_step(&addr, "clean_uefi_nvram", json!({}), json!({}))
        .await
        .expect("default patterns");
    let calls = std::fs::read_to_string(&log).expect("log");
    assert_eq!(calls, "efibootmgr -v\nefibootmgr -b 0001 -B\n");
    std::fs::remove_file(&log).expect("reset");
    run_step(
        &addr,
        "clean_uefi_nvram",
        json!({"match_patterns": ["pxe ipv4"]}),
        json!({}),
    )
    .await
    .expect("custom pattern, case-insensitive");
    let calls = std::fs::read_to_string(&log).expect("log");
    assert_eq!(calls, "efibootmgr -v\nefibootmgr -b 0002 -B\n");
}

#[actix_rt::test]
async fn install_bootloader_returns_early_for_whole_disk_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = installer(
        AgentConfig {
            paths: HostPaths::rooted_at(dir.path()),
            ..AgentConfig::default()
        },
        vec![],
    );
    for root in [json!(null), json!("0x00000000"), json!("0x1a2b3c4d")] {
        let result = run_step(
            &addr,
            "install_bootloader",
            json!({"root_uuid": root}),
            json!({}),
        );
        assert_eq!(result.await.expect("early return"), Value::Null);
    }
    let err = agent_err(
        run_step(
            &addr,
            "install_bootloader",
            json!({"root_uuid": "2a7a8d0e-1111-2222-3333-444455556666"}),
            json!({}),
        )
        .await,
    );
    assert!(err.details.contains("partition images"), "{err:?}");
}

/// `execute_bootc_install` of a fixed image onto `device` (as the inspector chose it).
async fn bootc_install_on(addr: &Addr<InstallerRunner>, device: &str) -> StepResult {
    run_step_on(
        addr,
        "execute_bootc_install",
        json!({"image_source": "quay.io/example/os:1"}),
        json!({}),
        Some(device),
    )
    .await
}

#[actix_rt::test]
async fn standin_podman_bootc_install_command_line_and_failure() {
    let s = StandIns::new(&lsblk_json(&[("sdx", "disk", None, None, None)]));
    write_script(
        &s.bin(),
        "podman",
        &format!(
            "echo \"podman $*\" >> {}\n[ -f {} ] && {{ echo 'pull failed' >&2; exit 125; }}\nexit 0",
            s.dir.path().join("calls.log").display(),
            s.dir.path().join("fail").display()
        ),
    );
    let addr = s.installer(&["/dev/sdx"]);
    let result = bootc_install_on(&addr, "/dev/sdx").await.expect("bootc");
    assert_eq!(
        result,
        json!({"result": "execute_bootc_install: Container image (quay.io/example/os:1) written to device /dev/sdx"})
    );
    assert_eq!(
        s.calls(),
        ["podman run --rm --privileged --pid=host --security-opt label=type:unconfined_t -v /dev:/dev -v /var/lib/containers:/var/lib/containers quay.io/example/os:1 bootc install to-disk --wipe /dev/sdx"]
    );
    std::fs::write(s.dir.path().join("fail"), "").expect("fail flag");
    let err = agent_err(bootc_install_on(&addr, "/dev/sdx").await);
    assert!(err.details.contains("pull failed"), "{err:?}");
}

// --- software RAID (no md driver here: recording mdadm/sgdisk stand-ins) ---------------

fn raid_node() -> Value {
    json!({"target_raid_config": {"logical_disks": [
        {"size_gb": 10, "raid_level": "1", "controller": "software", "volume_name": "root"},
        {"size_gb": "MAX", "raid_level": "0", "controller": "software"}]}})
}

#[actix_rt::test]
async fn standin_mdadm_create_configuration_command_lines() {
    let s = StandIns::new(&lsblk_json(&[
        ("sdx", "disk", None, None, None),
        ("sdy", "disk", None, None, None),
    ]));
    let addr = s.installer(&["/dev/sdx", "/dev/sdy"]);
    let result = run_step(&addr, "create_configuration", json!({}), raid_node())
        .await
        .expect("create");
    assert_eq!(result, raid_node()["target_raid_config"]);
    assert_eq!(
        s.calls(),
        [
            // mdadm must be able to run before any disk is partitioned
            "mdadm --version",
            "sgdisk -Z /dev/sdx",
            "sgdisk -n1:0:+10G -t1:FD00 /dev/sdx",
            "sgdisk -n2:0:0 -t2:FD00 /dev/sdx",
            "sgdisk -Z /dev/sdy",
            "sgdisk -n1:0:+10G -t1:FD00 /dev/sdy",
            "sgdisk -n2:0:0 -t2:FD00 /dev/sdy",
            "udevadm settle",
            "mdadm --create /dev/md0 --force --run --metadata=1 --level 1 --name root --raid-devices 2 /dev/sdx1 /dev/sdy1",
            "mdadm --create /dev/md1 --force --run --metadata=1 --level 0 --name md1 --raid-devices 2 /dev/sdx2 /dev/sdy2",
        ]
    );
}

#[actix_rt::test]
async fn standin_mdadm_failure_is_a_software_raid_error() {
    let s = StandIns::new(&lsblk_json(&[
        ("sdx", "disk", None, None, None),
        ("sdy", "disk", None, None, None),
    ]));
    s.hook("mdadm", "echo 'mdadm: no md driver' >&2; exit 1");
    let addr = s.installer(&["/dev/sdx", "/dev/sdy"]);
    let err = agent_err(run_step(&addr, "create_configuration", json!({}), raid_node()).await);
    assert_eq!(err.error_type, "SoftwareRAIDError");
    assert!(err.details.contains("no md driver"), "{}", err.details);
    // An invalid config fails before any tool runs.
    let s2 = StandIns::new(&lsblk_json(&[("sdx", "disk", None, None, None)]));
    let addr = s2.installer(&["/dev/sdx"]);
    let err = agent_err(run_step(&addr, "create_configuration", json!({}), raid_node()).await);
    assert_eq!(err.error_type, "SoftwareRAIDError");
    assert!(s2.calls().is_empty(), "{:?}", s2.calls());
}

#[actix_rt::test]
async fn standin_mdadm_delete_configuration_stops_arrays_and_zeroes_members() {
    let s = StandIns::new(&lsblk_json(&[
        ("md0", "raid1", None, None, None),
        ("sdx", "disk", None, None, None),
        ("sdx1", "part", Some("sdx"), Some("linux_raid_member"), None),
        ("sdy", "disk", None, None, None),
        ("sdy1", "part", Some("sdy"), Some("linux_raid_member"), None),
    ]));
    s.hook(
        "mdadm",
        "[ \"$1\" = --detail ] && printf '/dev/md0:\\n   Raid Level : raid1\\n    Number   Major   Minor   RaidDevice State\\n       0       8        1        0      active sync   /dev/sdx1\\n       1       8       17        1      active sync   /dev/sdy1\\n'; exit 0",
    );
    let addr = s.installer(&["/dev/sdx", "/dev/sdy"]);
    run_step(&addr, "delete_configuration", json!({}), json!({}))
        .await
        .expect("delete");
    assert_eq!(
        s.calls(),
        [
            "mdadm --detail /dev/md0",
            "mdadm --stop /dev/md0",
            "mdadm --zero-superblock /dev/sdx1",
            "mdadm --zero-superblock /dev/sdy1",
            "wipefs -af /dev/sdx",
            "wipefs -af /dev/sdy",
        ]
    );
}

#[actix_rt::test]
async fn config_drive_goes_into_a_new_config_2_partition_of_a_gpt_whole_disk_image() {
    use base64::Engine;
    use std::io::Write;
    if !loop_devices_usable() {
        return;
    }
    let case = image_case(96 * MIB, |_| {});
    let work = tempfile::tempdir().expect("tempdir");
    let img = work.path().join("gpt.raw");
    std::fs::write(&img, vec![0u8; 8 * MIB as usize]).expect("img");
    sh("sgdisk", &["-n1:0:+4M", img.to_str().expect("path")]);
    let image = std::fs::read(&img).expect("read");
    let url = case
        .server
        .route("/gpt.raw", Behaviour::Ok(Arc::new(image.clone())));
    let drive = pseudo_random(300 * 1024, 77);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&drive).expect("gzip");
    let configdrive = base64::engine::general_purpose::STANDARD.encode(gz.finish().expect("gz"));
    let result = run_step_on(
        &case.addr,
        "write_image",
        json!({"image_info": image_info(&unique("cd"), &[url], &sha256(&image), "raw", true),
               "configdrive": configdrive}),
        json!({}),
        Some(&case.disk.dev()),
    )
    .await
    .expect("write_image with config drive");
    assert!(result["result"]
        .as_str()
        .is_some_and(|r| r.contains("written to device")));
    let table = sh("sgdisk", &["-p", &case.disk.dev()]);
    let line = table
        .lines()
        .find(|l| l.trim_end().ends_with("config-2"))
        .unwrap_or_else(|| panic!("no config-2 partition:\n{table}"));
    let first: u64 = line
        .split_whitespace()
        .nth(1)
        .expect("start")
        .parse()
        .expect("num");
    assert!(
        first * 512 >= 24 * MIB,
        "config-2 starts at the end of the disk: {line}"
    );
    assert_eq!(
        sha256(&case.disk.read_at(first * 512, drive.len())),
        sha256(&drive)
    );
    // The image's own partition is still there.
    assert!(table.contains("   1            2048"), "{table}");
}

/// Mounts `sdy1` at `/` in the stand-ins' fixture tree (`<dir>/proc/self/mountinfo`
/// and `<dir>/sys/dev/block/8:17`, what `host::disks_in_use` reads).
fn mount_sdy1_as_root(s: &StandIns) {
    let root = s.dir.path();
    std::fs::create_dir_all(root.join("proc/self")).expect("proc");
    std::fs::write(
        root.join("proc/self/mountinfo"),
        "27 1 8:17 / / rw - ext4 /dev/sdy1 rw\n",
    )
    .expect("mountinfo");
    let part = root.join("sys/devices/block/sdy/sdy1");
    std::fs::create_dir_all(&part).expect("sdy1");
    std::fs::write(part.join("partition"), "1").expect("partition");
    std::fs::create_dir_all(root.join("sys/dev/block")).expect("dev/block");
    std::os::unix::fs::symlink(&part, root.join("sys/dev/block/8:17")).expect("link");
}

#[actix_rt::test]
async fn standin_disks_with_mounted_file_systems_are_never_erased_nor_written() {
    let json = json!({"blockdevices": [
        {"kname": "sdx", "type": "disk", "size": 1000, "ro": false, "pkname": null, "log-sec": 512},
        {"kname": "sdy", "type": "disk", "size": 1000, "ro": false, "pkname": null, "log-sec": 512},
        {"kname": "sdy1", "type": "part", "size": 500, "ro": false, "pkname": "sdy", "log-sec": 512}]});
    let s = StandIns::new(&json.to_string());
    mount_sdy1_as_root(&s);
    write_script(
        &s.bin(),
        "podman",
        &format!(
            "echo \"podman $*\" >> {}",
            s.dir.path().join("calls.log").display()
        ),
    );
    let addr = s.installer(&["/dev/sdx", "/dev/sdy"]);
    let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false}});
    let result = run_step(&addr, "erase_devices", json!({}), node)
        .await
        .expect("erase");
    assert_eq!(result, json!({"/dev/sdx": null}));
    // /dev/sdx does not exist here, so its metadata erase fails; sdy is not even tried.
    let err = agent_err(run_step(&addr, "erase_devices_metadata", json!({}), json!({})).await);
    assert!(
        err.details.contains("/dev/sdx") && !err.details.contains("sdy"),
        "{err:?}"
    );
    // Even when chosen as the install device, the disk of `/` is never written.
    let err = agent_err(bootc_install_on(&addr, "/dev/sdy").await);
    assert!(err.details.contains("mounted file system"), "{err:?}");
    assert!(
        s.calls().iter().all(|c| !c.contains("sdy")),
        "{:?}",
        s.calls()
    );
}
