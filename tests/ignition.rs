//! `ironic-agent ignition` through the built binary: the output is a valid
//! Ignition config whose embedded conf parses back, with our own config
//! loader, to the values that went in; the shipped unit file is what the
//! generator renders.

use std::process::Command;

use ironic_agent::ignition::{decode_data_url, IgnitionConfig};

fn agent() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ironic-agent"));
    command.args(["--cmdline-file", "/dev/null"]);
    command
}

#[test]
fn embedded_conf_parses_back_to_the_same_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("pull.json");
    std::fs::write(
        &secret,
        r#"{"auths": {"quay.example": {"auth": "eHg6eHg="}}}"#,
    )
    .expect("write");
    let output = agent()
        .args([
            "ignition",
            "--api-url",
            "http://192.0.2.1:6385,https://[2001:db8::1]:6385/",
        ])
        .args([
            "--insecure",
            "--inspection-callback-url",
            "http://192.0.2.1:6385/v1/continue_inspection",
        ])
        .args([
            "--conf-option",
            "enable_vlan_interfaces=all",
            "--conf-option",
            "collect_lldp=True",
        ])
        .args(["--pull-secret", secret.to_str().expect("utf-8")])
        .args([
            "--image",
            "quay.example/ironic-agent:test",
            "--default-hostname",
            "worker-0",
        ])
        .output()
        .expect("run ironic-agent ignition");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let config: IgnitionConfig = serde_json::from_slice(&output.stdout).expect("Ignition JSON");
    assert_eq!(config.ignition.version, "3.2.0");
    let conf_file = &config.storage.files[0];
    assert_eq!(conf_file.path, "/etc/ironic-python-agent.conf");
    let conf = decode_data_url(&conf_file.contents.source).expect("data URL");
    let conf_path = dir.path().join("ignition.conf");
    std::fs::write(&conf_path, conf).expect("write conf");

    let dumped = agent()
        .args([
            "--dump-config",
            "--config-file",
            conf_path.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run --dump-config");
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    let effective: serde_json::Value = serde_json::from_slice(&dumped.stdout).expect("JSON");
    assert_eq!(
        effective["api_url"],
        serde_json::json!(["http://192.0.2.1:6385", "https://[2001:db8::1]:6385"])
    );
    assert_eq!(effective["insecure"], true);
    assert_eq!(
        effective["inspection_callback_url"],
        "http://192.0.2.1:6385/v1/continue_inspection"
    );
    assert_eq!(
        effective["enable_vlan_interfaces"],
        serde_json::json!(["all"])
    );
    assert_eq!(effective["collect_lldp"], true);

    let authfile = &config.storage.files[1];
    assert_eq!(
        (authfile.path.as_str(), authfile.mode),
        ("/etc/authfile.json", 0o600)
    );
    let unit = &config.systemd.units[0].contents;
    assert!(unit.contains("--name ironic-agent quay.example/ironic-agent:test"));
}

#[test]
fn missing_api_url_is_a_clear_error() {
    let output = agent().arg("ignition").output().expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--api-url is required"));
}

#[test]
fn shipped_unit_file_is_what_the_generator_renders() {
    let output = agent()
        .args([
            "ignition",
            "--print-unit",
            "--api-url",
            "http://192.0.2.1:6385",
        ])
        .output()
        .expect("run");
    assert!(output.status.success());
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/ironic-agent.service"
    ))
    .expect("systemd/ironic-agent.service");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        shipped,
        "regenerate with: ironic-agent ignition --print-unit --api-url http://192.0.2.1:6385 > systemd/ironic-agent.service"
    );
}
