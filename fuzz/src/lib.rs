//! The fuzz targets: each takes arbitrary bytes and feeds one of the agent's parsers of
//! hostile input. A panic is a bug. The same functions run under libFuzzer
//! (`fuzz/fuzz_targets/*.rs`, `cargo fuzz`) and in the stable mutation loop of
//! `tests/fuzz_parsers.rs`, which includes this file.

use std::path::Path;

use ironic_agent_actors::coordinator::commands;
use ironic_agent_actors::inspector::disks::DiskCandidate;
use ironic_agent_actors::inspector::inventory::BlockDevice;
use ironic_agent_actors::inspector::root_device;
use ironic_agent_actors::installer::coreos;
use ironic_agent_actors::installer::image::checksum;
use serde_json::{Map, Value};

/// One fuzz target: arbitrary bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("api_command", api_command),
    ("config_ini", config_ini),
    ("cmdline", cmdline),
    ("root_device_hints", root_device_hints),
    ("checksum_file", checksum_file),
    ("installer_progress", installer_progress),
    ("ignition", ignition),
];

/// A POST `/v1/commands/` body: decoding, command lookup, the validators of the
/// command params, the step label and a command result round trip.
pub fn api_command(data: &[u8]) {
    let Ok(request) = ironic_agent_actors::api::routes::parse_run_body(data) else {
        return;
    };
    let _ = commands::lookup(&request.name);
    let params = &request.params;
    let _ = commands::validate_image_info(params.get("image_info"));
    let _ = commands::validate_flow(params.get("flow"));
    let _ = ironic_agent_actors::installer::image::validate_checksum_config(
        params.get("image_info"),
        false,
    );
    if let Ok(info) =
        ironic_agent_actors::installer::image::ImageInfo::parse(params.get("image_info"), true)
    {
        // Which proxy (after no_proxy) each image URL would use.
        for url in info.urls.iter().filter_map(|u| url::Url::parse(u).ok()) {
            let _ = info.proxies.proxy_for(&url);
        }
    }
    let _ = ironic_agent_actors::state::command_label(&request.name, params);
    if let Ok(result) = serde_json::from_value::<ironic_agent_actors::command::CommandResult>(
        Value::Object(params.clone()),
    ) {
        let _ = serde_json::to_vec(&result);
    }
}

/// `/etc/ironic-python-agent.conf` (INI).
pub fn config_ini(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ironic_agent::config::ini::parse(text, Path::new("fuzz.conf"));
    }
}

/// The kernel command line (`/proc/cmdline`).
pub fn cmdline(data: &[u8]) {
    let _ = ironic_agent::config::cmdline::parse(&String::from_utf8_lossy(data));
}

/// Root-device hints (JSON) and hint operator specs, matched against a disk.
pub fn root_device_hints(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = root_device::parse_spec(&text);
    let _ = root_device::specs_match("100", &text);
    let Ok(hints) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let disk = DiskCandidate {
        device: BlockDevice {
            name: "/dev/sda".into(),
            size: 107_374_182_400,
            model: Some("Fuzz Disk".into()),
            serial: Some("S123".into()),
            rotational: true,
            ..BlockDevice::default()
        },
        all_serials: vec!["S123".into()],
        all_wwns: vec!["0x5000".into()],
        devtype: "disk".into(),
    };
    let _ = root_device::find_by_hints(std::slice::from_ref(&disk), &hints);
}

/// A checksum file (§10.3): bare digest, GNU and BSD lines, looked up for two names.
pub fn checksum_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for name in ["disk.img", ""] {
        if let Ok(digest) = checksum::parse_checksum_file(&text, name) {
            assert!(checksum::is_hex(&digest), "non-hex digest {digest:?}");
        }
    }
}

/// coreos-installer output: progress lines split as the watcher splits them.
pub fn installer_progress(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split(['\n', '\r']) {
        if let Some((done, Some(total))) = coreos::parse_progress(line) {
            let _ = done.checked_mul(100).map(|d| d / total.max(1));
        }
    }
}

/// Ignition handling: `data:` URLs, extra options and the installer's hostname merge.
pub fn ignition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = ironic_agent::ignition::decode_data_url(&text);
    let _ = ironic_agent::ignition::parse_extra_option(&text);
    let value = serde_json::from_slice::<Value>(data).unwrap_or(Value::String(text.into()));
    let _ = coreos::ignition_with_hostname(Some(&value), None);
    if let Ok(Some(merged)) = coreos::ignition_with_hostname(Some(&value), Some("fuzz-host")) {
        let parsed: Map<String, Value> =
            serde_json::from_str(&merged).expect("a merged Ignition is a JSON object");
        assert!(merged.contains("fuzz-host"), "hostname lost: {parsed:?}");
    }
}
