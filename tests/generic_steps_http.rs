//! The generic steps through the BUILT binary's HTTP API on loop devices:
//! `--standalone --block-device-allowlist <loop>` with `clean.execute_clean_step`
//! (`erase_devices_metadata`) and `deploy.execute_deploy_step` (`write_image`).

mod support;

#[path = "../actors/tests/steps_support/mod.rs"]
mod steps_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use steps_support::{
    loop_devices_usable, pseudo_random, sh, sha256, Behaviour, LoopDev, TestServer,
};
use support::agent::{post_json, send, AgentOptions, AgentProcess};

const MIB: u64 = 1024 * 1024;

/// A step command for a node whose root-device hint names `disk`.
fn step_command(kind: &str, step: &str, args: Value, disk: &str) -> Value {
    json!({"name": format!("{kind}.execute_{kind}_step"), "params": {
        "step": {"step": step, "interface": "deploy", "args": args, "priority": 0},
        "node": {"uuid": "1", "properties": {"root_device": {"name": disk}},
                 "instance_info": {}, "driver_internal_info": {}},
        "ports": []}})
}

fn run_to_end(agent: &AgentProcess, body: &Value) -> Value {
    let reply = post_json(
        &agent.client(),
        &agent.url_with_token("/v1/commands/?wait=false"),
        body,
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let id = reply.json()["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reply = send(
            agent
                .client()
                .get(&agent.url_with_token(&format!("/v1/commands/{id}"))),
            None,
        );
        let result = reply.json();
        if result["command_status"] != "RUNNING" {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "command never finished:\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn erase_metadata_and_write_image_through_the_binary_http_api() {
    if !loop_devices_usable() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDev::new(dir.path(), "disk.img", 32 * MIB);
    let bystander = LoopDev::new(dir.path(), "bystander.img", 8 * MIB);
    sh("mkfs.ext4", &["-q", "-F", &disk.dev()]);
    sh("mkfs.ext4", &["-q", "-F", &bystander.dev()]);
    let bystander_before = bystander.sha256(None);
    let agent = AgentProcess::start_with(
        AgentOptions::default().args(["--block-device-allowlist", &disk.dev()]),
    );

    let result = run_to_end(
        &agent,
        &step_command("clean", "erase_devices_metadata", json!({}), &disk.dev()),
    );
    assert_eq!(
        result["command_status"],
        "SUCCEEDED",
        "{result}\n{}",
        agent.logs()
    );
    assert_eq!(result["command_result"]["clean_result"], Value::Null);
    assert_eq!(disk.signatures().trim(), "");

    let server = TestServer::start();
    let image = pseudo_random(20 * MIB as usize, 41);
    let url = server.route("/disk.raw", Behaviour::Ok(Arc::new(image.clone())));
    let info = json!({"id": "http-api-image", "urls": [url], "os_hash_algo": "sha256",
        "os_hash_value": sha256(&image), "disk_format": "raw", "stream_raw_images": true,
        "image_type": "whole-disk"});
    let result = run_to_end(
        &agent,
        &step_command(
            "deploy",
            "write_image",
            json!({"image_info": info, "configdrive": null}),
            &disk.dev(),
        ),
    );
    assert_eq!(
        result["command_status"],
        "SUCCEEDED",
        "{result}\n{}",
        agent.logs()
    );
    let text = result["command_result"]["deploy_result"]["result"]
        .as_str()
        .expect("result text");
    assert!(
        text.starts_with(&format!(
            "prepare_image: image (http-api-image) written to device {} root_uuid=0x",
            disk.dev()
        )),
        "{text}"
    );
    assert_eq!(disk.sha256(Some(image.len() as u64)), sha256(&image));
    assert_eq!(
        bystander.sha256(None),
        bystander_before,
        "the unlisted device changed"
    );

    // A bad image_info through standby.prepare_image is an HTTP 400.
    let reply = post_json(
        &agent.client(),
        &agent.url_with_token("/v1/commands/?wait=true"),
        &json!({"name": "standby.prepare_image", "params": {"image_info": {"id": "x", "urls": [], "checksum": "a"}}}),
    );
    assert_eq!(reply.status, 400, "{reply:?}");
}
