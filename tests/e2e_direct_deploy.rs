//! Standard deploy with the REAL Ironic 39.0.0 conductor's `direct` deploy interface
//! (issue 6, issue 9 scenario 6): the conductor's `write_image` deploy step hands
//! `image_info` (an image served over loopback HTTP, with a sha256) to the BUILT agent,
//! which writes it to a loop disk from `losetup -f` — the only device on its allow-list,
//! chosen through the root-device hint — then answers `get_partition_uuids`,
//! `install_bootloader` and `sync` as IPA does for a whole-disk image. The node reaches
//! `active` and the loop disk holds the image: a raw image (streamed) and a qcow2 one
//! (converted with qemu-img) must both leave the same raw bytes. A third deploy sets the
//! node's `image_http_proxy` to a real tinyproxy that requires basic auth (credentials in
//! the proxy URL): the image must come through it, and the password must not be in the
//! agent's trace log.
//!
//! The node keeps the harness's `deploy_forces_oob_reboot` (tear-down is `standby.sync`
//! plus a fake power-off), and the agent's power commands (`poweroff`, `reboot`,
//! `hwclock`) are recording stand-ins on its PATH: nothing here can power off this
//! machine. Needs root (loop devices); under CI=true it never skips.

mod support;

#[path = "../actors/tests/steps_support/mod.rs"]
mod steps_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use steps_support::{
    loop_devices_usable, pseudo_random, qcow2_of, sha256, tinyproxy_usable, Behaviour, LoopDev,
    TestServer, Tinyproxy,
};
use support::conductor::{
    conductor_called, diagnosis, expect_state, one_ironic, AgentSetup, ConductorAgent,
};
use support::ironic::{IronicOptions, IronicSandbox};

const MIB: usize = 1024 * 1024;

/// A write of a few tens of MiB plus Ironic's deploy steps: well within this.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);

/// The password of the authenticating proxy in the node's `image_http_proxy` URL.
const PROXY_PASSWORD: &str = "pr0xy-s3cret-7f3a";

/// The MBR disk signature planted in the image: the agent reports it as the root UUID.
const SIGNATURE: [u8; 4] = [0x44, 0x33, 0x22, 0x11];

/// Host power programs the agent could run, replaced by stand-ins that only record.
const POWER_PROGRAMS: [&str; 4] = ["poweroff", "reboot", "shutdown", "hwclock"];

/// A directory of recording stand-ins for [`POWER_PROGRAMS`]; returns the PATH to use.
fn power_standins(dir: &Path) -> String {
    let bin = dir.join("power-standins");
    std::fs::create_dir_all(&bin).expect("stand-in dir");
    for program in POWER_PROGRAMS {
        let path = bin.join(program);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{program} $*\" >> {}\nexit 0\n",
                dir.join("power-calls.log").display()
            ),
        )
        .expect("stand-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The raw whole-disk image: pseudo-random bytes with an MBR disk signature.
fn raw_image() -> Vec<u8> {
    let mut image = pseudo_random(24 * MIB + 4096, 6006);
    image[440..444].copy_from_slice(&SIGNATURE);
    image
}

/// Deploys `served` (in `disk_format`) with the `direct` interface and checks the loop
/// disk holds `raw` afterwards. With `proxied`, the node's driver_info names a real
/// authenticating tinyproxy as `image_http_proxy` (and an `image_no_proxy` that does not
/// cover the image server), and the image must have come through it.
fn direct_deploy_writes(
    name: &str,
    mac: &str,
    disk_format: &str,
    served: Vec<u8>,
    raw: &[u8],
    proxied: bool,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let proxy = proxied.then(|| Tinyproxy::start(dir.path(), Some(("ironic", PROXY_PASSWORD))));
    let disk = LoopDev::new(dir.path(), "disk.img", 64 * MIB as u64);
    // Dirty the disk: the deploy must overwrite what the image covers.
    std::fs::write(&disk.path, pseudo_random(raw.len(), 77)).expect("dirty the disk");
    let server = TestServer::start();
    let file = format!("/{name}.{disk_format}");
    let url = server.route(&file, Behaviour::Ok(Arc::new(served.clone())));

    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let node = ironic.available_node(name, mac, Duration::from_secs(60));
    ironic
        .patch_node(
            &node,
            json!([
                {"op": "replace", "path": "/deploy_interface", "value": "direct"},
                // `direct` sets the boot device to disk: fake management knows only PXE.
                {"op": "replace", "path": "/management_interface", "value": "noop"},
                {"op": "add", "path": "/properties/root_device",
                 "value": {"name": disk.dev()}},
                {"op": "add", "path": "/instance_info/image_source", "value": url},
                {"op": "add", "path": "/instance_info/image_disk_format", "value": disk_format},
                {"op": "add", "path": "/instance_info/image_os_hash_algo", "value": "sha256"},
                {"op": "add", "path": "/instance_info/image_os_hash_value",
                 "value": sha256(&served)},
            ]),
        )
        .unwrap_or_else(|err| panic!("{err:#}\n{}", diagnosis(&ironic, &node, None)));
    if let Some(proxy) = &proxy {
        ironic
            .patch_node(
                &node,
                json!([
                    {"op": "add", "path": "/driver_info/image_http_proxy",
                     "value": proxy.url(&format!("ironic:{PROXY_PASSWORD}@"))},
                    {"op": "add", "path": "/driver_info/image_no_proxy",
                     "value": ".example.org,images.invalid:8080"},
                ]),
            )
            .unwrap_or_else(|err| panic!("{err:#}\n{}", diagnosis(&ironic, &node, None)));
    }
    ironic
        .set_provision_state(&node, "active", json!({}))
        .expect("deploy");
    ironic
        .wait_for_provision_state(&node, &["wait call-back"], Duration::from_secs(60))
        .unwrap_or_else(|err| panic!("{err:#}\n{}", diagnosis(&ironic, &node, None)));

    let started = Instant::now();
    let mut setup = AgentSetup::plain_http()
        .args(["--block-device-allowlist", &disk.dev()])
        .env("PATH", &power_standins(dir.path()));
    if proxied {
        // Everything the agent logs, to show the proxy password is never among it.
        setup = setup.env("RUST_LOG", "trace");
    }
    let mut agent = ConductorAgent::start(&ironic.url(), mac, setup);
    let done = expect_state(&ironic, &node, &["active"], DEPLOY_TIMEOUT, &agent);
    eprintln!(
        "direct deploy of a {disk_format} image ({} bytes): agent start → active in {:.1} s",
        served.len(),
        started.elapsed().as_secs_f64()
    );
    agent.assert_running();

    assert_eq!(
        disk.sha256(Some(raw.len() as u64)),
        sha256(raw),
        "the loop disk does not hold the image"
    );
    // The conductor drove the whole direct deploy through us.
    for command in [
        "deploy.execute_deploy_step",
        "standby.get_partition_uuids",
        "image.install_bootloader",
        "standby.sync",
    ] {
        assert!(
            conductor_called(&ironic, command),
            "the conductor never sent {command}"
        );
    }
    assert_eq!(
        done["driver_internal_info"]["root_uuid_or_disk_id"], "0x11223344",
        "{}",
        done["driver_internal_info"]
    );
    let logs = agent.logs();
    assert!(logs.contains("image downloaded and verified"), "{logs}");
    // Streamed ("writing image …") or converted ("converting image …") onto the loop disk.
    assert!(
        logs.contains(&format!(" to {} total=", disk.dev())),
        "{logs}"
    );
    assert!(server.hits(&file) >= 1, "the image was never fetched");
    if let Some(proxy) = &proxy {
        let forwarded = format!("GET {url} HTTP/1.1");
        assert!(
            proxy.requests().contains(&forwarded),
            "the image did not come through the node's image_http_proxy: {:?}",
            proxy.requests()
        );
        assert!(
            logs.contains("image downloads go through a proxy"),
            "{logs}"
        );
        // Ironic passed the node's image_no_proxy along as image_info.no_proxy.
        assert!(logs.contains(".example.org,images.invalid:8080"), "{logs}");
        assert!(
            !logs.contains(PROXY_PASSWORD),
            "the proxy password is in the agent's trace log"
        );
    }
    let power_calls =
        std::fs::read_to_string(dir.path().join("power-calls.log")).unwrap_or_default();
    assert!(
        power_calls.is_empty(),
        "the agent tried a power action during a deploy: {power_calls}"
    );
}

#[test]
fn direct_deploy_of_a_raw_image_streams_it_to_the_loop_disk() {
    if !loop_devices_usable() {
        return;
    }
    let raw = raw_image();
    direct_deploy_writes(
        "direct-raw-0",
        "02:fc:00:00:16:01",
        "raw",
        raw.clone(),
        &raw,
        false,
    );
}

#[test]
fn direct_deploy_of_a_qcow2_image_converts_it_onto_the_loop_disk() {
    if !loop_devices_usable() {
        return;
    }
    let raw = raw_image();
    let qcow2 = qcow2_of(&raw);
    assert_ne!(
        qcow2.len(),
        raw.len(),
        "qemu-img did not produce a qcow2 image"
    );
    direct_deploy_writes(
        "direct-qcow2-0",
        "02:fc:00:00:16:02",
        "qcow2",
        qcow2,
        &raw,
        false,
    );
}

#[test]
fn direct_deploy_downloads_through_the_nodes_image_http_proxy() {
    if !loop_devices_usable() || !tinyproxy_usable() {
        return;
    }
    let raw = raw_image();
    direct_deploy_writes(
        "direct-proxy-0",
        "02:fc:00:00:16:03",
        "raw",
        raw.clone(),
        &raw,
        true,
    );
}
