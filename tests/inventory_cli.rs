//! `ironic-agent inventory` as the built binary, on this real machine and on a fixture
//! tree. Read-only on the host: the only block device touched is a loop device over a
//! sparse file that the test creates and detaches.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ironic-agent");

/// Runs the binary with an empty kernel command line (no host config leaks in).
fn agent(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let cmdline = dir.path().join("cmdline");
    std::fs::write(&cmdline, "").expect("write cmdline");
    Command::new(BIN)
        .arg("--cmdline-file")
        .arg(&cmdline)
        .args(args)
        .output()
        .expect("run ironic-agent")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A loop device over a sparse file, detached on drop (even when the test panics).
struct LoopDevice {
    device: String,
    _dir: tempfile::TempDir,
}

impl LoopDevice {
    fn new(size: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size))
            .expect("sparse image");
        let out = Command::new("losetup")
            .arg("-f")
            .arg("--show")
            .arg(&image)
            .output()
            .expect("run losetup (util-linux)");
        assert!(
            out.status.success(),
            "losetup -f --show failed (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(device.starts_with("/dev/loop"), "{device}");
        LoopDevice { device, _dir: dir }
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

fn assert_type(v: &Value, key: &str, check: fn(&Value) -> bool, what: &str) {
    let field = v
        .get(key)
        .unwrap_or_else(|| panic!("key {key} missing in {v}"));
    assert!(check(field), "{key} should be {what}, is {field}");
}

fn is_str_or_null(v: &Value) -> bool {
    v.is_string() || v.is_null()
}

fn is_uint_or_null(v: &Value) -> bool {
    v.is_u64() || v.is_null()
}

/// Every §5.1 key with IPA's JSON types.
fn check_inventory_shape(inv: &Value) {
    let obj = inv.as_object().expect("object");
    for key in [
        "interfaces",
        "cpu",
        "disks",
        "memory",
        "bmc_address",
        "bmc_v6address",
        "system_vendor",
        "boot",
        "hostname",
    ] {
        assert!(obj.contains_key(key), "missing {key}");
    }
    assert_type(inv, "interfaces", Value::is_array, "a list");
    assert_type(inv, "disks", Value::is_array, "a list");
    assert_type(inv, "bmc_address", is_str_or_null, "a string or null");
    assert_type(inv, "bmc_v6address", is_str_or_null, "a string or null");
    if let Some(mac) = obj.get("bmc_mac") {
        assert!(mac.is_string(), "bmc_mac is present only as a string");
    }
    assert_type(inv, "hostname", Value::is_string, "a string");

    for iface in inv["interfaces"].as_array().expect("list") {
        assert_type(iface, "name", Value::is_string, "a string");
        assert_type(iface, "mac_address", Value::is_string, "a string");
        assert_type(iface, "has_carrier", Value::is_boolean, "a bool");
        assert_type(iface, "speed_mbps", is_uint_or_null, "an int or null");
        for key in [
            "ipv4_address",
            "ipv6_address",
            "vendor",
            "product",
            "client_id",
            "biosdevname",
            "pci_address",
            "driver",
        ] {
            assert_type(iface, key, is_str_or_null, "a string or null");
        }
        assert_type(
            iface,
            "lldp",
            |v| v.is_null() || v.is_array(),
            "null or a list",
        );
        let mac = iface["mac_address"].as_str().expect("mac");
        assert!(!mac.starts_with("fa:"), "fa: MACs are dropped");
    }

    let cpu = &inv["cpu"];
    assert_type(cpu, "model_name", is_str_or_null, "a string or null");
    assert_type(cpu, "frequency", Value::is_string, "a string");
    assert_type(cpu, "count", Value::is_u64, "an int");
    assert_type(cpu, "architecture", Value::is_string, "a string");
    assert_type(cpu, "flags", Value::is_array, "a list");
    assert_type(cpu, "socket_count", Value::is_u64, "an int");
    assert!(cpu["count"].as_u64().expect("count") >= 1);

    for disk in inv["disks"].as_array().expect("list") {
        assert_type(disk, "name", Value::is_string, "a string");
        assert_type(disk, "size", Value::is_u64, "an int");
        assert_type(disk, "rotational", Value::is_boolean, "a bool");
        for key in [
            "model",
            "wwn",
            "serial",
            "vendor",
            "wwn_with_extension",
            "wwn_vendor_extension",
            "hctl",
            "by_path",
            "tran",
        ] {
            assert_type(disk, key, is_str_or_null, "a string or null");
        }
        assert_type(disk, "logical_sectors", is_uint_or_null, "an int or null");
        assert_type(disk, "physical_sectors", is_uint_or_null, "an int or null");
        assert!(disk.get("uuid").is_none(), "uuid is not serialized");
        assert!(disk.get("partuuid").is_none(), "partuuid is not serialized");
    }

    let mem = &inv["memory"];
    assert_type(mem, "total", Value::is_u64, "an int");
    assert_type(mem, "physical_mb", is_uint_or_null, "an int or null");

    let vendor = &inv["system_vendor"];
    for key in ["product_name", "serial_number", "manufacturer"] {
        assert_type(vendor, key, Value::is_string, "a string");
    }
    for key in ["vendor", "version", "build_date"] {
        assert_type(&vendor["firmware"], key, Value::is_string, "a string");
    }

    let boot = &inv["boot"];
    assert_type(boot, "current_boot_mode", Value::is_string, "a string");
    assert_type(boot, "pxe_interface", is_str_or_null, "a string or null");
    let mode = boot["current_boot_mode"].as_str().expect("mode");
    assert!(mode == "uefi" || mode == "bios", "{mode}");
}

fn meminfo_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal");
    kb * 1024
}

#[test]
fn inventory_of_this_machine_has_ipa_shape_and_real_values() {
    let inv = json_of(&agent(&["inventory"]));
    check_inventory_shape(&inv);

    let eth0_mac = std::fs::read_to_string("/sys/class/net/eth0/address")
        .expect("this machine kind has eth0")
        .trim()
        .to_ascii_lowercase();
    let eth0 = inv["interfaces"]
        .as_array()
        .expect("list")
        .iter()
        .find(|i| i["name"] == "eth0")
        .expect("eth0 listed");
    assert_eq!(eth0["mac_address"], eth0_mac.as_str());
    assert!(
        !inv["interfaces"]
            .as_array()
            .expect("list")
            .iter()
            .any(|i| i["name"] == "lo"),
        "lo has no device link"
    );
    assert_eq!(inv["memory"]["total"].as_u64(), Some(meminfo_total()));
    let efi = Path::new("/sys/firmware/efi").is_dir();
    assert_eq!(
        inv["boot"]["current_boot_mode"],
        if efi { "uefi" } else { "bios" }
    );
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(inv["hostname"], hostname.trim());
    let count = std::fs::read_to_string("/proc/cpuinfo")
        .expect("cpuinfo")
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u64;
    assert_eq!(inv["cpu"]["count"].as_u64(), Some(count));
    // No IPMI device on this machine kind: no BMC fields, no bmc_mac key.
    if !Path::new("/dev/ipmi0").exists() {
        assert!(inv["bmc_address"].is_null());
        assert!(inv.get("bmc_mac").is_none());
    }
}

#[test]
fn inventory_with_allowlisted_loop_device_and_root_device_hints() {
    let lo = LoopDevice::new(5 << 30);
    let inv = json_of(&agent(&[
        "inventory",
        "--block-device-allowlist",
        &lo.device,
    ]));
    check_inventory_shape(&inv);
    let disks = inv["disks"].as_array().expect("list");
    assert_eq!(disks.len(), 1, "{disks:?}");
    assert_eq!(disks[0]["name"], lo.device.as_str());
    assert_eq!(disks[0]["size"].as_u64(), Some(5 << 30));

    let chosen = json_of(&agent(&[
        "--block-device-allowlist",
        &lo.device,
        "inventory",
        "--root-device-hints",
        r#"{"size": ">= 4"}"#,
    ]));
    assert_eq!(chosen["name"], lo.device.as_str());
    assert_eq!(chosen["size"].as_u64(), Some(5 << 30));

    // The same without hints: the smallest disk of at least 4 GiB.
    let chosen = json_of(&agent(&[
        "inventory",
        "--block-device-allowlist",
        &lo.device,
        "--root-device-hints",
        "{}",
    ]));
    assert_eq!(chosen["name"], lo.device.as_str());

    // No match: a failure with IPA's DeviceNotFound text, nothing on stdout.
    let out = agent(&[
        "inventory",
        "--block-device-allowlist",
        &lo.device,
        "--root-device-hints",
        r#"{"size": ">= 6"}"#,
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No suitable device was found for deployment using these hints"),
        "{stderr}"
    );
    let out = agent(&[
        "inventory",
        "--block-device-allowlist",
        &lo.device,
        "--root-device-hints",
        r#"{"colour": "red"}"#,
    ]);
    assert!(!out.status.success());
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(target, path).expect("symlink");
}

#[test]
fn inventory_honours_sys_proc_and_dev_roots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root: PathBuf = dir.path().to_path_buf();
    write(&root, "proc/cpuinfo", "processor\t: 0\nmodel name\t: Fixture CPU\ncpu MHz\t: 1234.5\nflags\t: fpu sse\n\nprocessor\t: 1\nmodel name\t: Fixture CPU\n\n");
    write(&root, "proc/meminfo", "MemTotal:  4096 kB\n");
    write(&root, "proc/sys/kernel/hostname", "fixture-host\n");
    write(&root, "proc/sys/kernel/arch", "aarch64\n");
    write(&root, "sys/class/net/eno1/address", "3c:fd:fe:00:00:01\n");
    write(&root, "sys/class/net/eno1/carrier", "1\n");
    write(&root, "sys/class/net/eno1/speed", "25000\n");
    write(&root, "sys/devices/pci/0000:3b:00.0/vendor", "0x8086\n");
    std::fs::create_dir_all(root.join("sys/bus/pci/drivers/ice")).expect("mkdir");
    link(
        &root,
        "sys/devices/pci/0000:3b:00.0/driver",
        "../../../bus/pci/drivers/ice",
    );
    link(
        &root,
        "sys/class/net/eno1/device",
        "../../../devices/pci/0000:3b:00.0",
    );
    write(&root, "sys/class/net/ens9/address", "fa:16:3e:00:00:01\n");
    link(
        &root,
        "sys/class/net/ens9/device",
        "../../../devices/pci/0000:3b:00.0",
    );
    write(&root, "sys/class/dmi/id/sys_vendor", "Fixture Inc.\n");
    write(&root, "sys/class/dmi/id/product_name", "Model 1\n");
    write(&root, "sys/class/dmi/id/bios_date", "01/02/2026\n");
    std::fs::create_dir_all(root.join("sys/firmware/efi")).expect("mkdir");
    std::fs::create_dir_all(root.join("dev")).expect("mkdir");

    let r = |rel: &str| root.join(rel).display().to_string();
    let inv = json_of(&agent(&[
        "inventory",
        "--sys-root",
        &r("sys"),
        "--proc-root",
        &r("proc"),
        "--dev-root",
        &r("dev"),
        "--block-device-allowlist",
        "/dev/does-not-exist",
    ]));
    check_inventory_shape(&inv);
    let names: Vec<&str> = inv["interfaces"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["eno1"]);
    assert_eq!(inv["interfaces"][0]["driver"], "ice");
    assert_eq!(inv["interfaces"][0]["speed_mbps"], 25000);
    assert_eq!(inv["cpu"]["model_name"], "Fixture CPU");
    assert_eq!(inv["cpu"]["frequency"], "1234.5");
    assert_eq!(inv["cpu"]["count"], 2);
    assert_eq!(inv["cpu"]["architecture"], "aarch64");
    assert_eq!(inv["memory"]["total"], 4096 * 1024);
    assert!(inv["memory"]["physical_mb"].is_null());
    assert_eq!(inv["hostname"], "fixture-host");
    assert_eq!(inv["boot"]["current_boot_mode"], "uefi");
    assert_eq!(inv["system_vendor"]["manufacturer"], "Fixture Inc.");
    assert_eq!(inv["system_vendor"]["product_name"], "Model 1");
    assert_eq!(inv["system_vendor"]["serial_number"], "");
    assert_eq!(inv["system_vendor"]["firmware"]["build_date"], "01/02/2026");
    assert_eq!(inv["disks"], serde_json::json!([]));
}
