//! Proves the real-Ironic test harness (`tests/harness/ironic/`,
//! `tests/support/ironic.rs`) against the genuine Ironic 39.0.0 conductor,
//! without any agent: enrollment, manage/provide, the node's fields, lookup
//! rules, and that the `require_tls` option reaches the conductor.
//!
//! Never skipped: it installs Ironic itself (setup.sh) when it is missing.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::ironic::{IronicOptions, IronicSandbox};

const MAC: &str = "02:fc:00:00:00:01";
const STATE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the reference agent sends: lookup at microversion 1.62, heartbeat at 1.68.
fn lookup(ironic: &IronicSandbox, mac: &str) -> (u16, String) {
    ironic
        .request_raw(
            "GET",
            &format!("/v1/lookup?addresses={mac}"),
            &[("X-OpenStack-Ironic-API-Version", "1.62")],
            None,
        )
        .expect("lookup request")
}

fn heartbeat(ironic: &IronicSandbox, node: &str, callback_url: &str, token: &str) -> (u16, String) {
    ironic
        .request_raw(
            "POST",
            &format!("/v1/heartbeat/{node}"),
            &[("X-OpenStack-Ironic-API-Version", "1.68")],
            Some(&json!({"callback_url": callback_url, "agent_token": token, "agent_version": "13.0.0"})),
        )
        .expect("heartbeat request")
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Enroll, manage, provide; returns the node uuid with the node `available`.
fn enroll_to_available(ironic: &IronicSandbox, name: &str) -> String {
    let uuid = ironic.create_node(name, json!({})).expect("create node");
    ironic.create_port(&uuid, MAC).expect("create port");
    ironic
        .set_provision_state(&uuid, "manage", Value::Null)
        .expect("manage");
    ironic
        .wait_for_provision_state(&uuid, &["manageable"], STATE_TIMEOUT)
        .expect("node becomes manageable");
    ironic
        .set_provision_state(&uuid, "provide", json!({}))
        .expect("provide");
    ironic
        .wait_for_provision_state(&uuid, &["available"], STATE_TIMEOUT)
        .expect("node becomes available (automated cleaning is off)");
    uuid
}

/// Deploy with the custom-agent interface up to `wait call-back` (the fake
/// boot interface "boots" nothing) and take the agent token from the first
/// lookup, as an agent would.
fn deploy_and_lookup(ironic: &IronicSandbox, uuid: &str) -> String {
    ironic
        .set_provision_state(uuid, "active", json!({}))
        .expect("deploy");
    let node = ironic
        .wait_for_provision_state(uuid, &["wait call-back"], STATE_TIMEOUT)
        .expect("node waits for the agent");
    assert_eq!(node["target_provision_state"], "active");

    let (status, body) = lookup(ironic, MAC);
    assert_eq!(status, 200, "lookup in wait call-back: {body}");
    let found: Value = serde_json::from_str(&body).expect("lookup body is JSON");
    assert_eq!(found["node"]["uuid"], uuid);
    assert_eq!(
        found["config"]["heartbeat_timeout"], 10,
        "ramdisk_heartbeat_timeout from our ironic.conf"
    );
    assert_eq!(found["config"]["agent_token_required"], true);
    let token = found["config"]["agent_token"]
        .as_str()
        .expect("first lookup hands out the token")
        .to_owned();
    assert_eq!(token.len(), 43, "token shape");

    // The token is handed out once per power cycle.
    let (status, body) = lookup(ironic, MAC);
    assert_eq!(status, 200, "second lookup: {body}");
    let again: Value = serde_json::from_str(&body).expect("lookup body is JSON");
    assert_eq!(again["config"]["agent_token"], "******");
    token
}

#[test]
fn conductor_enroll_manage_provide_and_lookup() {
    let t0 = Instant::now();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start the Ironic sandbox");
    eprintln!(
        "sandbox up in {:.1} s at {}",
        t0.elapsed().as_secs_f64(),
        ironic.url()
    );
    assert!(ironic.url().starts_with("http://127.0.0.1:"));

    let root = ironic.request("GET", "/", None).expect("GET /");
    assert_eq!(
        root["default_version"]["version"], "1.115",
        "ironic 39.0.0's newest microversion"
    );
    let conf = std::fs::read_to_string(ironic.run_dir().expect("run dir").join("ironic.conf"))
        .expect("rendered conf");
    assert!(conf.contains(&format!("port = {}\n", ironic.port())));
    assert!(!conf.contains('@'), "every placeholder rendered");

    let t1 = Instant::now();
    let uuid = ironic
        .create_node(
            "harness-node-0",
            json!({"extra": {"test": "ironic_harness"}}),
        )
        .expect("create node");
    let node = ironic.node("harness-node-0").expect("GET node by name");
    assert_eq!(node["uuid"], uuid.as_str());
    assert_eq!(node["provision_state"], "enroll");

    let port = ironic
        .create_port("harness-node-0", MAC)
        .expect("create port by node name");
    let ports = ironic.ports(&uuid).expect("list ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["uuid"], port.as_str());
    assert_eq!(ports[0]["address"], MAC);
    assert_eq!(ports[0]["node_uuid"], uuid.as_str());

    ironic
        .set_provision_state(&uuid, "manage", Value::Null)
        .expect("manage");
    ironic
        .wait_for_provision_state(&uuid, &["manageable"], STATE_TIMEOUT)
        .expect("manageable");
    ironic
        .set_provision_state(&uuid, "provide", json!({}))
        .expect("provide");
    let node = ironic
        .wait_for_provision_state(&uuid, &["available"], STATE_TIMEOUT)
        .expect("available");
    eprintln!(
        "enroll + manage + provide took {:.2} s",
        t1.elapsed().as_secs_f64()
    );

    assert_eq!(node["name"], "harness-node-0");
    assert_eq!(node["driver"], "fake-hardware");
    assert_eq!(node["deploy_interface"], "custom-agent");
    assert_eq!(node["inspect_interface"], "agent");
    assert_eq!(node["network_interface"], "noop");
    assert_eq!(node["boot_interface"], "fake");
    assert_eq!(node["power_interface"], "fake");
    assert_eq!(node["properties"]["cpu_arch"], "x86_64");
    assert_eq!(node["driver_info"]["deploy_forces_oob_reboot"], true);
    assert_eq!(
        node["extra"]["test"], "ironic_harness",
        "body_overrides are merged"
    );
    assert_eq!(node["provision_state"], "available");
    assert!(node["target_provision_state"].is_null());
    assert!(
        node["last_error"].is_null(),
        "last_error: {}",
        node["last_error"]
    );
    assert_eq!(node["maintenance"], false);

    // `available` is not a lookup state (fast track is off): 404, as for an
    // unknown MAC.
    let (status, body) = lookup(&ironic, MAC);
    assert_eq!(status, 404, "lookup while available: {body}");
    assert!(body.contains("could not be found"), "{body}");

    let patched = ironic
        .patch_node(
            &uuid,
            json!([{"op": "add", "path": "/extra/patched", "value": "yes"}]),
        )
        .expect("patch node");
    assert_eq!(patched["extra"]["patched"], "yes");

    // A heartbeat with a plain-http callback is accepted (require_tls=False).
    // Nothing listens behind the callback URL, so the conductor's first
    // command fails and the deploy fails: the waiter must report that at once.
    let token = deploy_and_lookup(&ironic, &uuid);
    let callback = format!("http://127.0.0.1:{}", closed_port());
    let (status, body) = heartbeat(&ironic, &uuid, &callback, &token);
    assert_eq!(
        status, 202,
        "plain-http heartbeat with require_tls=False: {body}"
    );
    let t2 = Instant::now();
    let err = ironic
        .wait_for_provision_state(&uuid, &["active"], Duration::from_secs(90))
        .expect_err("no agent behind the callback URL: the deploy must fail");
    let msg = format!("{err:#}");
    eprintln!(
        "deploy failed as expected after {:.1} s",
        t2.elapsed().as_secs_f64()
    );
    assert!(msg.contains("\"deploy failed\""), "{msg}");
    assert!(
        msg.contains("Failed to connect to the agent"),
        "last_error in the message: {msg}"
    );
    assert!(
        msg.contains("--- last lines of"),
        "log tail in the message: {msg}"
    );
    assert!(!ironic.log_tail(5).is_empty());
}

#[test]
fn conductor_with_require_tls() {
    let ironic = IronicSandbox::start(IronicOptions {
        require_tls: true,
        ..IronicOptions::default()
    })
    .expect("start the Ironic sandbox with require_tls");
    assert!(ironic.options().require_tls);
    let conf = std::fs::read_to_string(ironic.run_dir().expect("run dir").join("ironic.conf"))
        .expect("rendered conf");
    assert!(
        conf.contains("require_tls = True\n"),
        "rendered [agent] require_tls"
    );
    assert!(conf.contains("fast_track = False\n"));
    assert!(conf.contains("automated_clean = False\n"));

    let uuid = enroll_to_available(&ironic, "tls-node-0");
    let token = deploy_and_lookup(&ironic, &uuid);
    let callback = format!("http://127.0.0.1:{}", closed_port());
    let (status, body) = heartbeat(&ironic, &uuid, &callback, &token);
    assert_eq!(
        status, 400,
        "plain-http heartbeat with require_tls=True: {body}"
    );
    assert!(body.contains("TLS is required"), "{body}");
    // The refused heartbeat changes nothing.
    let node = ironic.node(&uuid).expect("GET node");
    assert_eq!(node["provision_state"], "wait call-back");

    // A restart keeps the database (and the port) and applies new options.
    let mut ironic = ironic;
    let port = ironic.port();
    ironic
        .restart(IronicOptions {
            fast_track: true,
            ..IronicOptions::default()
        })
        .expect("restart with fast_track");
    assert_eq!(ironic.port(), port);
    let conf = std::fs::read_to_string(ironic.run_dir().expect("run dir").join("ironic.conf"))
        .expect("rendered conf");
    assert!(conf.contains("require_tls = False\n") && conf.contains("fast_track = True\n"));
    let node = ironic
        .node("tls-node-0")
        .expect("the node survived the restart");
    assert_eq!(node["uuid"], uuid.as_str());
}
