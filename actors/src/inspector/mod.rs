//! Hardware inspector: builds IPA's inventory from sysfs, procfs and tools.
//!
//! The logic lives in plain modules ([`network`], [`disks`], [`cpu`], [`memory`],
//! [`bmc`], [`root_device`], [`collectors`]); [`InventorySources`] ties them to the
//! injectable host paths and the [`CommandRunner`]; the actor only caches.

mod actor;
pub mod bmc;
pub mod collectors;
pub mod cpu;
pub mod disks;
pub mod inventory;
pub mod lldp;
pub mod memory;
pub mod network;
pub mod root_device;
mod sysfs;
#[cfg(test)]
pub(crate) mod testutil;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use actor::{
    ChooseInstallDevice, CollectInspectionData, CollectInventory, HardwareInspector,
    SetSkipBmcDetect,
};
pub use collectors::InspectionData;
pub use inventory::{BlockDevice, Inventory};

use crate::config::AgentConfig;
use crate::errors::AgentError;
use crate::host::{CommandRunner, DeviceAllowlist, ProcessRunner};

use self::bmc::BmcInfo;
use self::disks::{DiskCandidate, DiskSources};
use self::inventory::BootInfo;
use self::network::{IfAddrs, NetSources};

/// Everything an inventory is read from: roots, the command runner and options.
#[derive(Debug, Clone)]
pub struct InventorySources {
    /// sysfs root (`/sys`).
    pub sys_root: PathBuf,
    /// procfs root (`/proc`).
    pub proc_root: PathBuf,
    /// Device directory (`/dev`).
    pub dev_root: PathBuf,
    /// `/run` (udev's database); `<dev_root>/../run`.
    pub run_root: PathBuf,
    /// The host's root file system (`/mnt/coreos`), for the host journal.
    pub host_root: PathBuf,
    /// Runs lsblk, ipmitool, dmidecode.
    pub runner: Arc<dyn CommandRunner>,
    /// Interface addresses; `None` reads them with getifaddrs (live `/sys` only).
    pub addresses: Option<BTreeMap<String, IfAddrs>>,
    /// `enable_vlan_interfaces`.
    pub enable_vlan_interfaces: Vec<String>,
    /// `block_device_allowlist`.
    pub allowlist: DeviceAllowlist,
    /// The raw `BOOTIF` kernel parameter.
    pub boot_if: Option<String>,
    /// Lookup's `agent_skip_bmc_detect`.
    pub skip_bmc_detect: bool,
    /// Arguments put before every ipmitool command (empty in production; tests use
    /// `-I lanplus -H 127.0.0.1 …` to reach `ipmi_sim`).
    pub ipmitool_args: Vec<String>,
    /// `collect_lldp`: fill `interfaces[].lldp` (live `/sys` only).
    pub collect_lldp: bool,
    /// `lldp_timeout`: the longest LLDP listening time.
    pub lldp_timeout: std::time::Duration,
    /// `inspection_dhcp_wait_timeout` (0 disables waiting).
    pub dhcp_wait_timeout: std::time::Duration,
    /// `inspection_dhcp_all_interfaces`.
    pub dhcp_all_interfaces: bool,
    /// Secrets (the agent token) the `logs` collector replaces by `***`.
    pub log_secrets: Vec<String>,
    /// `configuration.managers`: the hardware engine's managers, in dispatch order.
    pub managers: Vec<collectors::ManagerInfo>,
}

impl InventorySources {
    /// Sources for a configuration, running tools with `runner`.
    pub fn from_config(config: &AgentConfig, runner: Arc<dyn CommandRunner>) -> Self {
        let paths = &config.paths;
        InventorySources {
            sys_root: paths.sys_root.clone(),
            proc_root: paths.proc_root.clone(),
            dev_root: paths.dev_root.clone(),
            run_root: run_root_for(&paths.dev_root),
            host_root: paths.host_root.clone(),
            runner,
            addresses: None,
            enable_vlan_interfaces: config.enable_vlan_interfaces.clone(),
            allowlist: DeviceAllowlist::new(config.block_device_allowlist.iter()),
            boot_if: config.boot_if.clone(),
            skip_bmc_detect: false,
            ipmitool_args: Vec::new(),
            collect_lldp: config.collect_lldp,
            lldp_timeout: std::time::Duration::from_secs_f64(config.lldp_timeout.max(0.0)),
            dhcp_wait_timeout: std::time::Duration::from_secs(config.inspection_dhcp_wait_timeout),
            dhcp_all_interfaces: config.inspection_dhcp_all_interfaces,
            log_secrets: crate::logs::secrets_of(config, &[]),
            managers: collectors::managers(&crate::hardware::ManagerSet::standard(config)),
        }
    }

    /// Whether sysfs is the live one (then ioctls and getifaddrs describe the same host).
    pub fn live(&self) -> bool {
        self.sys_root == Path::new("/sys")
    }

    /// The disk-listing part of the sources.
    pub fn disk_sources(&self) -> DiskSources {
        DiskSources {
            sys_root: self.sys_root.clone(),
            dev_root: self.dev_root.clone(),
            run_root: self.run_root.clone(),
            allowlist: self.allowlist.clone(),
        }
    }

    /// Lists the disks (all-values mode included), warning on failure.
    pub async fn disks(&self, warnings: &mut Vec<String>) -> Vec<DiskCandidate> {
        disks::list_disks(self.runner.as_ref(), &self.disk_sources(), warnings).await
    }

    /// The inventory's interfaces (without LLDP data).
    pub fn interfaces(&self, warnings: &mut Vec<String>) -> Vec<inventory::NetworkInterface> {
        let addresses = match &self.addresses {
            Some(table) => table.clone(),
            None if self.live() => network::live_addresses().unwrap_or_else(|err| {
                warnings.push(format!("cannot read interface addresses: {err}"));
                BTreeMap::new()
            }),
            None => BTreeMap::new(),
        };
        let net = NetSources {
            addresses,
            query_permanent_mac: self.live(),
            enable_vlan_interfaces: self.enable_vlan_interfaces.clone(),
        };
        network::list_interfaces(&self.sys_root, &net, warnings)
    }

    /// Whether the `default` collector would wait for DHCP (IPA's `wait_for_dhcp`).
    pub fn waits_for_dhcp(&self) -> bool {
        !self.dhcp_wait_timeout.is_zero() && (self.dhcp_all_interfaces || self.pxe_mac().is_some())
    }

    /// The PXE MAC from BOOTIF: `01-aa-bb-…` → `aa:bb:…`.
    pub fn pxe_mac(&self) -> Option<String> {
        let raw = self.boot_if.as_deref()?.trim().to_ascii_lowercase();
        let raw = raw.strip_prefix("01-").unwrap_or(&raw);
        network::normalize_mac(&raw.replace('-', ":"))
    }

    /// IPA's `wait_for_dhcp`: polls every 2 s, up to `inspection_dhcp_wait_timeout`,
    /// until the PXE NIC (or every NIC with `inspection_dhcp_all_interfaces`) has an IPv4
    /// address. True when nothing is missing (or waiting is disabled).
    pub async fn wait_for_dhcp(&self) -> bool {
        if self.dhcp_wait_timeout.is_zero() {
            return true;
        }
        let pxe_mac = self.pxe_mac();
        if pxe_mac.is_none() && !self.dhcp_all_interfaces {
            tracing::warn!(
                "No PXE boot interface known - not waiting for it to get the IP address"
            );
            return false;
        }
        if self.dhcp_all_interfaces {
            tracing::info!(
                "inspection_dhcp_all_interfaces: this agent does not start DHCP itself; waiting \
                 for the host's network configuration to give every interface an address"
            );
        }
        let deadline = tokio::time::Instant::now() + self.dhcp_wait_timeout;
        loop {
            let mut ignored = Vec::new();
            let missing: Vec<String> = self
                .interfaces(&mut ignored)
                .into_iter()
                .filter(|i| i.ipv4_address.is_none())
                .filter(|i| self.dhcp_all_interfaces || i.mac_address == pxe_mac)
                .map(|i| i.name)
                .collect();
            if missing.is_empty() {
                return true;
            }
            if tokio::time::Instant::now() + DHCP_RETRY_INTERVAL > deadline {
                tracing::warn!(
                    "Not all network interfaces received IP addresses in {:?}: {}",
                    self.dhcp_wait_timeout,
                    missing.join(", ")
                );
                return false;
            }
            tracing::debug!("still waiting for DHCP on {}", missing.join(", "));
            tokio::time::sleep(DHCP_RETRY_INTERVAL).await;
        }
    }

    /// LLDP TLVs of those `names` that are up, listening at most `lldp_timeout`.
    pub async fn lldp(
        &self,
        names: &[String],
        warnings: &mut Vec<String>,
    ) -> BTreeMap<String, lldp::LldpTlvs> {
        let up: Vec<String> = names
            .iter()
            .filter(|n| lldp::interface_is_up(&self.sys_root, n))
            .cloned()
            .collect();
        lldp::collect_lldp(&up, self.lldp_timeout, warnings).await
    }

    /// Builds the whole inventory. Nothing fails it: a missing source degrades its
    /// field and adds one line to `warnings`. `bmc_cache` keeps IPA's per-process BMC
    /// cache (filled on first use).
    pub async fn collect(
        &self,
        bmc_cache: &mut Option<BmcInfo>,
        warnings: &mut Vec<String>,
    ) -> Inventory {
        let mut interfaces = self.interfaces(warnings);
        if self.collect_lldp && self.live() {
            let names: Vec<String> = interfaces.iter().map(|i| i.name.clone()).collect();
            let mut found = self.lldp(&names, warnings).await;
            for iface in &mut interfaces {
                iface.lldp = found.remove(&iface.name);
            }
        }
        let disks = self
            .disks(warnings)
            .await
            .into_iter()
            .map(|c| c.device)
            .collect();
        let bmc = if self.skip_bmc_detect {
            BmcInfo::default()
        } else {
            match bmc_cache {
                Some(cached) => cached.clone(),
                None => {
                    let found = bmc::detect(
                        self.runner.as_ref(),
                        &self.dev_root,
                        &self.ipmitool_args,
                        warnings,
                    )
                    .await;
                    *bmc_cache = Some(found.clone());
                    found
                }
            }
        };
        Inventory {
            interfaces,
            cpu: cpu::cpu_info(&self.sys_root, &self.proc_root, warnings),
            disks,
            memory: memory::memory_info(&self.sys_root, &self.proc_root, warnings),
            bmc_address: bmc.address,
            bmc_v6address: bmc.v6address,
            bmc_mac: bmc.mac,
            system_vendor: memory::system_vendor(&self.sys_root, warnings),
            boot: boot_info(&self.sys_root, self.boot_if.clone()),
            hostname: hostname(&self.proc_root),
        }
    }
}

/// How often `wait_for_dhcp` looks again.
pub const DHCP_RETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// `/run` for a device root: `/run` for `/dev`, `<root>/run` for `<root>/dev`.
pub fn run_root_for(dev_root: &Path) -> PathBuf {
    dev_root
        .parent()
        .map(|p| p.join("run"))
        .unwrap_or_else(|| PathBuf::from("/run"))
}

/// `inventory.boot`: `uefi` when `<sys>/firmware/efi` exists, and the raw BOOTIF.
pub fn boot_info(sys_root: &Path, boot_if: Option<String>) -> BootInfo {
    let uefi = sys_root.join("firmware/efi").is_dir();
    BootInfo {
        current_boot_mode: if uefi { "uefi" } else { "bios" }.to_string(),
        pxe_interface: boot_if,
    }
}

/// The host name: `<proc>/sys/kernel/hostname` (what gethostname returns), else
/// gethostname itself.
pub fn hostname(proc_root: &Path) -> String {
    sysfs::read_trimmed(&proc_root.join("sys/kernel/hostname")).unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// Logs each warning once.
pub fn log_warnings(warnings: &[String]) {
    for warning in warnings {
        tracing::warn!("inventory: {warning}");
    }
}

/// The disks an install may target: `disks` minus those holding a mounted
/// filesystem of this system (never offered, whatever the hints say).
pub fn install_candidates(
    mut disks: Vec<DiskCandidate>,
    paths: &crate::config::HostPaths,
) -> Vec<DiskCandidate> {
    let in_use = crate::host::disks_in_use(&paths.proc_root, &paths.sys_root);
    disks.retain(|disk| {
        let busy = in_use.contains(disk.device.name.trim_start_matches("/dev/"));
        if busy {
            tracing::warn!(device = %disk.device.name, "not offered for installation: it holds a mounted filesystem");
        }
        !busy
    });
    disks
}

/// What `ironic-agent inventory` prints: the inventory JSON (IPA's key order), or with
/// hints the chosen disk. Used by the binary; runs tools with a [`ProcessRunner`].
pub async fn inventory_command(
    config: &AgentConfig,
    root_device_hints: Option<&str>,
) -> Result<String, AgentError> {
    let sources = InventorySources::from_config(config, Arc::new(ProcessRunner::default()));
    let mut warnings = Vec::new();
    let text = match root_device_hints {
        None => {
            let inventory = sources.collect(&mut None, &mut warnings).await;
            serde_json::to_string_pretty(&inventory)
        }
        Some(hints) => {
            let hints: serde_json::Value = serde_json::from_str(hints).map_err(|e| {
                AgentError::invalid_params(format!("--root-device-hints is not JSON: {e}"))
            })?;
            let node = serde_json::json!({"instance_info": {"root_device": hints}});
            let disks = install_candidates(sources.disks(&mut warnings).await, &config.paths);
            log_warnings(&warnings);
            warnings.clear();
            serde_json::to_string_pretty(&root_device::choose_install_device(&node, disks)?)
        }
    };
    log_warnings(&warnings);
    text.map_err(|e| AgentError::execution(format!("cannot serialize: {e}")))
}

/// Blocking wrapper of [`inventory_command`] for the binary.
pub fn inventory_command_blocking(
    config: &AgentConfig,
    root_device_hints: Option<&str>,
) -> Result<String, AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::execution(format!("cannot start a runtime: {e}")))?;
    runtime.block_on(inventory_command(config, root_device_hints))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::testutil::{CannedRunner, Tree};

    #[test]
    fn inspector_boot_mode_efi_vs_bios() {
        let t = Tree::new();
        let bios = boot_info(&t.path("sys"), None);
        assert_eq!(bios.current_boot_mode, "bios");
        assert_eq!(bios.pxe_interface, None);
        t.dir("sys/firmware/efi/efivars");
        let uefi = boot_info(&t.path("sys"), Some("01-52-54-00-12-34-56".into()));
        assert_eq!(uefi.current_boot_mode, "uefi");
        assert_eq!(uefi.pxe_interface.as_deref(), Some("01-52-54-00-12-34-56"));
    }

    #[test]
    fn inspector_hostname_and_run_root() {
        let t = Tree::new();
        t.file("proc/sys/kernel/hostname", "node-1.example\n");
        assert_eq!(hostname(&t.path("proc")), "node-1.example");
        assert!(!hostname(&t.path("nothing")).is_empty());
        assert_eq!(run_root_for(Path::new("/dev")), PathBuf::from("/run"));
        assert_eq!(run_root_for(&t.path("dev")), t.path("run"));
    }

    #[actix_rt::test]
    async fn inspector_whole_inventory_from_fixtures_degrades_with_warnings() {
        let t = Tree::new();
        t.file(
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: X\nflags\t: fpu\n\n",
        );
        t.file("proc/meminfo", "MemTotal: 1024 kB\n");
        t.file("proc/sys/kernel/hostname", "fixture\n");
        t.file("sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        t.dir("sys/devices/virtio0");
        t.link("sys/class/net/eth0/device", "../../../devices/virtio0");
        let config = AgentConfig {
            paths: crate::config::HostPaths::rooted_at(t.root()),
            boot_if: Some("01-52-54-00-12-34-56".into()),
            ..AgentConfig::default()
        };
        let runner = Arc::new(CannedRunner::default());
        let sources = InventorySources::from_config(&config, runner.clone());
        let mut warnings = Vec::new();
        let mut cache = None;
        let inv = sources.collect(&mut cache, &mut warnings).await;
        assert_eq!(inv.mac_addresses(), ["52:54:00:12:34:56"]);
        assert_eq!(inv.hostname, "fixture");
        assert_eq!(inv.memory.total, 1024 * 1024);
        assert!(inv.disks.is_empty());
        assert_eq!(inv.bmc_address, None);
        assert_eq!(
            inv.boot.pxe_interface.as_deref(),
            Some("01-52-54-00-12-34-56")
        );
        // lsblk missing, no DMI, no physical memory size: one warning each.
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        // No /dev/ipmi*: ipmitool never runs.
        assert_eq!(runner.calls().len(), 1);
        assert!(cache.is_some());
    }

    #[actix_rt::test]
    async fn inspector_wait_for_dhcp_rules() {
        let t = Tree::new();
        for (name, mac) in [("eth0", "52:54:00:12:34:56"), ("eth1", "52:54:00:12:34:57")] {
            t.file(
                &format!("sys/class/net/{name}/address"),
                &format!("{mac}\n"),
            );
            t.dir(&format!("sys/devices/{name}"));
            t.link(
                &format!("sys/class/net/{name}/device"),
                &format!("../../../devices/{name}"),
            );
        }
        let config = AgentConfig {
            paths: crate::config::HostPaths::rooted_at(t.root()),
            boot_if: Some("01-52-54-00-12-34-56".into()),
            inspection_dhcp_wait_timeout: 1,
            ..AgentConfig::default()
        };
        let mut sources = InventorySources::from_config(&config, Arc::new(CannedRunner::default()));
        assert_eq!(sources.pxe_mac().as_deref(), Some("52:54:00:12:34:56"));
        let mut table = BTreeMap::new();
        table.insert(
            "eth0".to_string(),
            IfAddrs {
                ipv4: Some("192.0.2.10".into()),
                ..IfAddrs::default()
            },
        );
        sources.addresses = Some(table);
        assert!(sources.waits_for_dhcp());
        assert!(sources.wait_for_dhcp().await, "the PXE NIC has an address");
        sources.dhcp_all_interfaces = true;
        let start = std::time::Instant::now();
        assert!(!sources.wait_for_dhcp().await, "eth1 has none");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        sources.dhcp_all_interfaces = false;
        sources.boot_if = None;
        assert!(!sources.waits_for_dhcp());
        assert!(!sources.wait_for_dhcp().await, "no BOOTIF: not waiting");
        sources.dhcp_wait_timeout = std::time::Duration::ZERO;
        assert!(sources.wait_for_dhcp().await, "disabled");
    }
}
