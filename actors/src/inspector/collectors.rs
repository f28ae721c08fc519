//! Inspection collectors (ipa-protocol.md §7): the body posted to
//! `continue_inspection`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::inventory::{BlockDevice, Inventory};
use super::root_device::guess_root_disk;
use super::sysfs::{list_dir, read_trimmed};
use super::InventorySources;
use crate::errors::AgentError;
use crate::host::{CommandRunner, CommandSpec};

/// `configuration.managers[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerInfo {
    /// Manager name (`HARDWARE_MANAGER_NAME`, else the class name).
    pub name: String,
    /// Manager version.
    pub version: String,
}

/// The managers of a loaded [`crate::hardware::ManagerSet`], in dispatch order (highest
/// support level first), as `configuration.managers` reports them.
pub fn managers(set: &crate::hardware::ManagerSet) -> Vec<ManagerInfo> {
    set.names_and_versions()
        .into_iter()
        .map(|(name, version)| ManagerInfo { name, version })
        .collect()
}

/// `configuration`: collector names and managers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    /// The collectors, in the order they ran.
    pub collectors: Vec<String>,
    /// The hardware managers.
    pub managers: Vec<ManagerInfo>,
}

/// One `pci_devices[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// Vendor id without `0x`.
    pub vendor_id: String,
    /// Device id without `0x`.
    pub product_id: String,
    /// Class without `0x`.
    pub class: String,
    /// Revision without `0x`; null when sysfs has none.
    pub revision: Option<String>,
    /// The PCI address.
    pub bus: String,
    /// The raw `numa_node` string, null when absent.
    pub numa_node_id: Option<String>,
}

/// `numa_topology.ram[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaRam {
    /// Node id.
    pub numa_node: u32,
    /// MemTotal of the node in KiB.
    pub size_kb: u64,
}

/// `numa_topology.cpus[]`: one physical core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaCpu {
    /// The core id.
    pub cpu: u32,
    /// Node id.
    pub numa_node: u32,
    /// Logical CPUs of the core, sorted.
    pub thread_siblings: Vec<u32>,
}

/// `numa_topology.nics[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNic {
    /// Interface name.
    pub name: String,
    /// Node id.
    pub numa_node: i64,
}

/// `numa_topology`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaTopology {
    /// Memory per node.
    pub ram: Vec<NumaRam>,
    /// Cores per node.
    pub cpus: Vec<NumaCpu>,
    /// NICs per node.
    pub nics: Vec<NumaNic>,
}

/// The inspection body, IPA's shape: keys of collectors that did not run are absent;
/// `error` is always present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InspectionData {
    /// `default`: the inventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// `default`: `guess_root_disk` over the inventory disks, absent if none qualifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_disk: Option<BlockDevice>,
    /// `default`: the raw BOOTIF (`Some(None)` serializes as null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_interface: Option<Option<String>>,
    /// `default`: collectors and managers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Configuration>,
    /// `pci-devices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_devices: Option<Vec<PciDevice>>,
    /// `numa-topology`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_topology: Option<NumaTopology>,
    /// `dmi-decode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmi: Option<Value>,
    /// `lldp`: raw TLVs per interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lldp_raw: Option<BTreeMap<String, super::lldp::LldpTlvs>>,
    /// `logs`: base64 of a tar.gz (see [`super::system_logs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// `null`, or `The following errors were encountered:\n* …`.
    pub error: Option<String>,
}

impl InspectionData {
    /// Joins collector failures the way IPA does; `None` when there were none.
    pub fn error_text(failures: &[String]) -> Option<String> {
        if failures.is_empty() {
            return None;
        }
        let items: Vec<String> = failures.iter().map(|f| format!("* {f}")).collect();
        Some(format!(
            "The following errors were encountered:\n{}",
            items.join("\n")
        ))
    }
}

/// Collectors this agent implements.
pub const IMPLEMENTED: [&str; 6] = [
    "default",
    "logs",
    "lldp",
    "pci-devices",
    "numa-topology",
    "dmi-decode",
];
/// IPA collectors known but not available in this agent yet. As in IPA, a failing
/// `extra-hardware` is reported in `error`; the others only log a warning (IPA's
/// `logs`/`lldp` failures do not fail inspection, and Ironic's `ramdisk-error` hook
/// fails the node on any `error`).
pub const NOT_AVAILABLE: [&str; 2] = ["extra-hardware", "usb-devices"];

/// Checks collector names: an unknown one fails the whole inspection, as in IPA.
pub fn validate_collectors(collectors: &[String]) -> Result<(), AgentError> {
    match collectors
        .iter()
        .find(|c| !IMPLEMENTED.contains(&c.as_str()) && !NOT_AVAILABLE.contains(&c.as_str()))
    {
        Some(unknown) => Err(AgentError::invalid_params(format!(
            "Inspection collector {unknown} is not installed"
        ))),
        None => Ok(()),
    }
}

/// Runs the collectors in order over an already collected inventory.
pub async fn run_collectors(
    collectors: &[String],
    inventory: &Inventory,
    sources: &InventorySources,
) -> Result<InspectionData, AgentError> {
    let sys_root = sources.sys_root.as_path();
    let runner = sources.runner.as_ref();
    let boot_if = sources.boot_if.clone();
    validate_collectors(collectors)?;
    let mut data = InspectionData::default();
    let mut failures = Vec::new();
    for name in collectors {
        match name.as_str() {
            "default" => {
                data.inventory = Some(inventory.clone());
                data.root_disk = guess_root_disk(&inventory.disks).ok();
                data.boot_interface = Some(boot_if.clone());
                data.configuration = Some(Configuration {
                    collectors: collectors.to_vec(),
                    managers: sources.managers.clone(),
                });
            }
            "pci-devices" => match pci_devices(sys_root) {
                Ok(devices) => data.pci_devices = Some(devices),
                Err(err) => failures.push(err),
            },
            "numa-topology" => match numa_topology(sys_root) {
                Ok(topology) => data.numa_topology = Some(topology),
                Err(err) => tracing::warn!("numa-topology collector: {err}"),
            },
            "dmi-decode" => match dmi_decode(runner).await {
                Ok(dmi) => data.dmi = Some(dmi),
                Err(err) => tracing::warn!("dmi-decode collector: {err}"),
            },
            "logs" => match crate::logs::collect_system_logs(
                &sources.host_root,
                &sources.proc_root,
                runner,
                &sources.log_secrets,
            )
            .await
            {
                Ok(logs) => data.logs = Some(logs),
                Err(err) => tracing::warn!("Failed to collect logs: {err}"),
            },
            "lldp" => {
                let names: Vec<String> = inventory
                    .interfaces
                    .iter()
                    .map(|i| i.name.clone())
                    .collect();
                let mut warnings = Vec::new();
                data.lldp_raw = Some(sources.lldp(&names, &mut warnings).await);
                super::log_warnings(&warnings);
            }
            "extra-hardware" => failures.push(
                "failed to run hardware-detect utility: not available in this agent".to_string(),
            ),
            other => tracing::warn!("the {other} collector is not available in this agent yet"),
        }
    }
    data.error = InspectionData::error_text(&failures);
    Ok(data)
}

/// `pci_devices` from `<sys>/bus/pci/devices/*` (IPA's `collect_pci_devices_info`):
/// vendor, device and class are required (a device missing one is skipped), revision
/// and numa_node are optional. An unreadable directory is an inspection failure.
pub fn pci_devices(sys_root: &Path) -> Result<Vec<PciDevice>, String> {
    let dir = sys_root.join("bus/pci/devices");
    if let Err(err) = std::fs::read_dir(&dir) {
        return Err(format!("Failed to get list of PCI devices: {err}"));
    }
    Ok(list_dir(&dir)
        .into_iter()
        .filter(|bus| dir.join(bus).is_dir())
        .filter_map(|bus| {
            let d = dir.join(&bus);
            // IPA keeps what follows the `x` of `0x1234`.
            let read = |f: &str| {
                read_trimmed(&d.join(f)).and_then(|v| v.split('x').nth(1).map(str::to_string))
            };
            let (Some(vendor_id), Some(product_id), Some(class)) =
                (read("vendor"), read("device"), read("class"))
            else {
                tracing::warn!("PCI device {bus}: no vendor, device or class; skipped");
                return None;
            };
            Some(PciDevice {
                vendor_id,
                product_id,
                class,
                revision: read("revision"),
                numa_node_id: read_trimmed(&d.join("numa_node")),
                bus,
            })
        })
        .collect())
}

fn numbered(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// `numa_topology` from `<sys>/devices/system/node` and `<sys>/class/net`.
pub fn numa_topology(sys_root: &Path) -> Result<NumaTopology, String> {
    let nodes_dir = sys_root.join("devices/system/node");
    if !nodes_dir.is_dir() {
        return Err(format!(
            "Failed to get list of NUMA nodes, NUMA node path does not exist: {}",
            nodes_dir.display()
        ));
    }
    let nodes: Vec<(u32, String)> = list_dir(&nodes_dir)
        .into_iter()
        .filter(|n| nodes_dir.join(n).is_dir())
        .filter_map(|n| numbered(&n, "node").map(|id| (id, n)))
        .collect();
    let mut topology = NumaTopology::default();
    for (id, dir_name) in &nodes {
        let node_dir = nodes_dir.join(dir_name);
        let meminfo = std::fs::read_to_string(node_dir.join("meminfo"))
            .map_err(|e| format!("node {id} meminfo: {e}"))?;
        let size_kb = meminfo
            .lines()
            .find(|l| l.contains("MemTotal"))
            .and_then(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                parts.get(parts.len().checked_sub(2)?)?.parse().ok()
            })
            .ok_or_else(|| format!("node {id}: no MemTotal"))?;
        topology.ram.push(NumaRam {
            numa_node: *id,
            size_kb,
        });
        let mut cores: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for cpu_name in list_dir(&node_dir) {
            if !node_dir.join(&cpu_name).is_dir() {
                continue;
            }
            let Some(cpu) = numbered(&cpu_name, "cpu") else {
                continue;
            };
            let core = read_trimmed(&node_dir.join(&cpu_name).join("topology/core_id"))
                .and_then(|c| c.parse::<u32>().ok())
                .ok_or_else(|| format!("node {id} cpu {cpu}: no core_id"))?;
            cores.entry(core).or_default().insert(cpu);
        }
        for (core, threads) in cores {
            topology.cpus.push(NumaCpu {
                cpu: core,
                numa_node: *id,
                thread_siblings: threads.into_iter().collect(),
            });
        }
    }
    let class_net = sys_root.join("class/net");
    for nic in list_dir(&class_net) {
        if let Some(node) = read_trimmed(&class_net.join(&nic).join("device/numa_node"))
            .and_then(|n| n.parse::<i64>().ok())
        {
            topology.nics.push(NumaNic {
                name: nic,
                numa_node: node,
            });
        }
    }
    Ok(topology)
}

/// Parses `dmidecode -t bios -t processor -t memory` output into IPA's `dmi` object.
pub fn parse_dmidecode(text: &str) -> Value {
    let mut records: Vec<(u32, Map<String, Value>)> = Vec::new();
    let mut current: Option<(u32, Map<String, Value>)> = None;
    let mut list_key: Option<String> = None;
    let mut title_pending = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Handle ") {
            if let Some(done) = current.take() {
                records.push(done);
            }
            let mut parts = rest.split(',');
            let handle = parts.next().unwrap_or("").trim().to_string();
            let kind = parts
                .next()
                .and_then(|p| p.trim().strip_prefix("DMI type "))
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(u32::MAX);
            let mut map = Map::new();
            map.insert("Handle".into(), Value::String(handle));
            current = Some((kind, map));
            list_key = None;
            title_pending = true;
            continue;
        }
        let Some((_, map)) = current.as_mut() else {
            continue;
        };
        if line.trim().is_empty() {
            list_key = None;
            continue;
        }
        if title_pending && !line.starts_with('\t') {
            title_pending = false;
            continue;
        }
        title_pending = false;
        if let Some(item) = line.strip_prefix("\t\t") {
            if let Some(key) = &list_key {
                if let Some(Value::Array(items)) = map.get_mut(key) {
                    items.push(Value::String(item.trim().to_string()));
                }
            }
            continue;
        }
        if let Some(entry) = line.strip_prefix('\t') {
            if let Some((k, v)) = entry.split_once(':') {
                let (k, v) = (k.trim().to_string(), v.trim());
                if v.is_empty() {
                    map.insert(k.clone(), Value::Array(Vec::new()));
                    list_key = Some(k);
                } else {
                    map.insert(k, Value::String(v.to_string()));
                    list_key = None;
                }
            }
        }
    }
    if let Some(done) = current.take() {
        records.push(done);
    }
    let mut bios = Map::new();
    let mut cpus = Vec::new();
    let mut memories: Vec<Map<String, Value>> = Vec::new();
    let mut devices = Vec::new();
    for (kind, map) in records {
        match kind {
            0 => bios = map,
            4 => cpus.push(Value::Object(map)),
            16 => memories.push(map),
            17 => devices.push(Value::Object(map)),
            _ => {}
        }
    }
    let mut memory = Map::new();
    if let Some(first) = memories.first() {
        let count: Option<u64> = memories
            .iter()
            .map(|m| {
                m.get("Number Of Devices")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
            })
            .sum();
        memory = first.clone();
        memory.remove("Handle");
        if let Some(count) = count {
            memory.insert("Number Of Devices".into(), Value::from(count));
        }
    }
    memory.insert("devices".into(), Value::Array(devices));
    serde_json::json!({"bios": bios, "cpu": cpus, "memory": memory})
}

/// Runs dmidecode for the `dmi-decode` collector.
pub async fn dmi_decode(runner: &dyn CommandRunner) -> Result<Value, String> {
    let spec = CommandSpec::new(
        "dmidecode",
        ["-t", "bios", "-t", "processor", "-t", "memory"],
    );
    let out = runner
        .run(spec.clone())
        .await
        .map_err(|e| format!("cannot run {spec}: {e}"))?;
    if !out.success() {
        return Err(format!(
            "{spec} failed with {}: {}",
            out.describe_exit(),
            out.stderr.trim()
        ));
    }
    Ok(parse_dmidecode(&out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::inventory::NetworkInterface;
    use crate::inspector::testutil::{CannedRunner, Tree};
    use std::sync::Arc;

    fn sources(t: &Tree, runner: CannedRunner, boot_if: Option<&str>) -> InventorySources {
        let config = crate::config::AgentConfig {
            paths: crate::config::HostPaths::rooted_at(t.root()),
            boot_if: boot_if.map(str::to_string),
            ..crate::config::AgentConfig::default()
        };
        InventorySources::from_config(&config, Arc::new(runner))
    }

    const DMIDECODE: &str = "# dmidecode 3.4\nGetting SMBIOS data from sysfs.\nSMBIOS 3.0 present.\n\nHandle 0x0000, DMI type 0, 26 bytes\nBIOS Information\n\tVendor: Dell Inc.\n\tVersion: 2.10.2\n\tCharacteristics:\n\t\tISA is supported\n\t\tPCI is supported\n\tBIOS Revision: 2.10\n\nHandle 0x0400, DMI type 4, 48 bytes\nProcessor Information\n\tSocket Designation: CPU1\n\tVersion: Intel(R) Xeon(R) Gold 6130\n\nHandle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tLocation: System Board Or Motherboard\n\tNumber Of Devices: 12\n\nHandle 0x1001, DMI type 16, 23 bytes\nPhysical Memory Array\n\tLocation: System Board Or Motherboard\n\tNumber Of Devices: 12\n\nHandle 0x1100, DMI type 17, 84 bytes\nMemory Device\n\tSize: 16 GB\n\tLocator: A1\n\n";

    fn inventory() -> Inventory {
        Inventory {
            interfaces: vec![NetworkInterface {
                name: "eth0".into(),
                mac_address: Some("52:54:00:12:34:56".into()),
                ..NetworkInterface::default()
            }],
            disks: vec![
                BlockDevice {
                    name: "/dev/sda".into(),
                    size: 100 << 30,
                    ..BlockDevice::default()
                },
                BlockDevice {
                    name: "/dev/sdb".into(),
                    size: 10 << 30,
                    ..BlockDevice::default()
                },
            ],
            ..Inventory::default()
        }
    }

    #[actix_rt::test]
    async fn inspector_collect_default_shape() {
        let t = Tree::new();
        let names = vec!["default".to_string()];
        let src = sources(&t, CannedRunner::default(), Some("01-52-54-00-12-34-56"));
        let data = run_collectors(&names, &inventory(), &src)
            .await
            .expect("collect");
        let json = serde_json::to_value(&data).expect("json");
        assert_eq!(json["root_disk"]["name"], "/dev/sdb");
        assert_eq!(json["boot_interface"], "01-52-54-00-12-34-56");
        assert_eq!(
            json["configuration"]["collectors"],
            serde_json::json!(["default"])
        );
        // The hardware engine's managers, names and versions: one source of truth.
        assert_eq!(
            json["configuration"]["managers"],
            serde_json::json!([
                {"name": "CoreOSInstallHardwareManager", "version": "1"},
                {"name": "generic_hardware_manager", "version": "1.2"},
            ])
        );
        let engine = crate::hardware::ManagerSet::standard(&crate::config::AgentConfig::default());
        let versions: serde_json::Map<String, serde_json::Value> = json["configuration"]
            ["managers"]
            .as_array()
            .expect("managers")
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().expect("name").to_string(),
                    m["version"].clone(),
                )
            })
            .collect();
        assert_eq!(serde_json::Value::Object(versions), engine.versions());
        assert!(json["error"].is_null());
        assert!(json.get("pci_devices").is_none());
        assert_eq!(json["inventory"]["interfaces"][0]["name"], "eth0");

        let mut small = inventory();
        small.disks.truncate(0);
        let src = sources(&t, CannedRunner::default(), None);
        let data = run_collectors(&names, &small, &src).await.expect("collect");
        let json = serde_json::to_value(&data).expect("json");
        assert!(json.get("root_disk").is_none());
        assert!(json["boot_interface"].is_null());
        assert!(json
            .as_object()
            .expect("obj")
            .contains_key("boot_interface"));
    }

    #[actix_rt::test]
    async fn inspector_collect_unknown_and_unavailable_collectors() {
        let t = Tree::new();
        let src = sources(&t, CannedRunner::default().with("ps", 0, "PID\n"), None);
        let err = run_collectors(&["default".into(), "bogus".into()], &inventory(), &src)
            .await
            .expect_err("unknown collector");
        assert!(err.details.contains("bogus"));
        // logs and lldp are best effort, usb-devices only warns: no error, which would
        // fail the node in Ironic's ramdisk-error hook.
        let names: Vec<String> = ["default", "logs", "lldp", "usb-devices"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let data = run_collectors(&names, &inventory(), &src)
            .await
            .expect("collect");
        assert_eq!(data.error, None);
        assert!(data.logs.as_deref().is_some_and(|l| !l.is_empty()));
        // The fixture interface is not up: nothing listened to, an empty map.
        assert_eq!(data.lldp_raw, Some(BTreeMap::new()));
        let data = run_collectors(&["extra-hardware".into()], &inventory(), &src)
            .await
            .expect("collect");
        let error = data.error.expect("error text");
        assert!(
            error.starts_with(
                "The following errors were encountered:\n* failed to run hardware-detect"
            ),
            "{error}"
        );
    }

    #[actix_rt::test]
    async fn inspector_collect_pci_numa_dmi() {
        let t = Tree::new();
        for (bus, vendor, node) in [
            ("0000:3b:00.0", "0x8086", Some("0")),
            ("0000:00:01.0", "0x1af4", None),
        ] {
            t.file(
                &format!("sys/bus/pci/devices/{bus}/vendor"),
                &format!("{vendor}\n"),
            );
            t.file(&format!("sys/bus/pci/devices/{bus}/device"), "0x1572\n");
            t.file(&format!("sys/bus/pci/devices/{bus}/class"), "0x020000\n");
            t.file(&format!("sys/bus/pci/devices/{bus}/revision"), "0x01\n");
            if let Some(node) = node {
                t.file(
                    &format!("sys/bus/pci/devices/{bus}/numa_node"),
                    &format!("{node}\n"),
                );
            }
        }
        t.file(
            "sys/devices/system/node/node0/meminfo",
            "Node 0 MemTotal:       65843012 kB\nNode 0 MemFree: 1 kB\n",
        );
        t.file(
            "sys/devices/system/node/node1/meminfo",
            "Node 1 MemTotal:       1000 kB\n",
        );
        for (node, cpu, core) in [(0, 0, 0), (0, 2, 0), (0, 1, 1), (1, 3, 0)] {
            t.file(
                &format!("sys/devices/system/node/node{node}/cpu{cpu}/topology/core_id"),
                &format!("{core}\n"),
            );
        }
        t.file("sys/devices/system/node/node0/cpumap", "5\n");
        t.file("sys/class/net/eth0/device/numa_node", "1\n");
        t.dir("sys/class/net/lo");
        let runner = CannedRunner::default().with("dmidecode", 0, DMIDECODE);
        let names: Vec<String> = ["pci-devices", "numa-topology", "dmi-decode"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let src = sources(&t, runner, None);
        let data = run_collectors(&names, &inventory(), &src)
            .await
            .expect("collect");
        let json = serde_json::to_value(&data).expect("json");
        assert!(json.get("inventory").is_none());
        assert_eq!(
            json["pci_devices"],
            serde_json::json!([
                {"vendor_id": "1af4", "product_id": "1572", "class": "020000", "revision": "01",
                 "bus": "0000:00:01.0", "numa_node_id": null},
                {"vendor_id": "8086", "product_id": "1572", "class": "020000", "revision": "01",
                 "bus": "0000:3b:00.0", "numa_node_id": "0"}
            ])
        );
        assert_eq!(
            json["numa_topology"],
            serde_json::json!({
                "ram": [{"numa_node": 0, "size_kb": 65843012}, {"numa_node": 1, "size_kb": 1000}],
                "cpus": [{"cpu": 0, "numa_node": 0, "thread_siblings": [0, 2]},
                         {"cpu": 1, "numa_node": 0, "thread_siblings": [1]},
                         {"cpu": 0, "numa_node": 1, "thread_siblings": [3]}],
                "nics": [{"name": "eth0", "numa_node": 1}]
            })
        );
        let dmi = &json["dmi"];
        assert_eq!(dmi["bios"]["Vendor"], "Dell Inc.");
        assert_eq!(
            dmi["bios"]["Characteristics"],
            serde_json::json!(["ISA is supported", "PCI is supported"])
        );
        assert_eq!(dmi["bios"]["BIOS Revision"], "2.10");
        assert_eq!(dmi["cpu"][0]["Socket Designation"], "CPU1");
        assert_eq!(dmi["memory"]["Number Of Devices"], 24);
        assert!(dmi["memory"].get("Handle").is_none());
        assert_eq!(dmi["memory"]["devices"][0]["Size"], "16 GB");
        assert!(json.get("logs").is_none());
    }

    /// Runs the real dmidecode on a synthesized dump (`--from-dump`).
    #[derive(Debug)]
    struct DumpRunner {
        dump: std::path::PathBuf,
    }

    impl CommandRunner for DumpRunner {
        fn run(
            &self,
            mut spec: CommandSpec,
        ) -> crate::host::BoxFuture<'static, std::io::Result<crate::host::CommandOutput>> {
            if spec.program == "dmidecode" {
                let mut args = vec!["--from-dump".to_string(), self.dump.display().to_string()];
                args.extend(spec.args);
                spec.args = args;
            }
            crate::host::ProcessRunner::default().run(spec)
        }
    }

    /// `dmidecode --dump-bin` layout: SMBIOS 3.0 entry point at 0, table at 0x20.
    fn smbios_dump(table: &[u8]) -> Vec<u8> {
        let mut ep = b"_SM3_".to_vec();
        ep.extend_from_slice(&[0, 0x18, 3, 0, 0, 1, 0]);
        ep.extend_from_slice(&(table.len() as u32).to_le_bytes());
        ep.extend_from_slice(&0x20u64.to_le_bytes());
        let sum = ep.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        ep[5] = 0u8.wrapping_sub(sum);
        ep.resize(0x20, 0);
        ep.extend_from_slice(table);
        ep
    }

    #[actix_rt::test]
    async fn inspector_collect_dmi_decode_with_real_dmidecode_on_a_dump() {
        let found = std::process::Command::new("dmidecode")
            .arg("--version")
            .output();
        if found.is_err() {
            eprintln!("SKIPPED: dmidecode is not installed (apt-get install dmidecode)");
            return;
        }
        let t = Tree::new();
        t.bytes(
            "smbios.bin",
            &smbios_dump(&crate::inspector::memory::tests::smbios_table()),
        );
        let runner = DumpRunner {
            dump: t.path("smbios.bin"),
        };
        let dmi = dmi_decode(&runner).await.expect("dmidecode");
        assert_eq!(dmi["bios"]["Vendor"], "Dell Inc.", "{dmi}");
        assert_eq!(dmi["bios"]["Version"], "2.10.2");
        assert_eq!(dmi["bios"]["Release Date"], "02/24/2021");
        assert!(dmi["bios"]["Characteristics"].is_array(), "{dmi}");
        assert_eq!(dmi["cpu"], serde_json::json!([]));
        assert_eq!(dmi["memory"]["Number Of Devices"], 4, "{dmi}");
        assert_eq!(dmi["memory"]["Maximum Capacity"], "256 GB");
        let devices = dmi["memory"]["devices"].as_array().expect("devices");
        assert_eq!(devices.len(), 4);
        assert_eq!(devices[0]["Size"], "16 GB");
        assert_eq!(devices[1]["Size"], "64 GB");
        assert_eq!(devices[0]["Locator"], "DIMM A1");
    }
}
