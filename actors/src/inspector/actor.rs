//! The hardware inspector actor: caches the inventory and the BMC values, and answers
//! inventory, install-device and inspection requests. The work is in plain modules.

use std::sync::Arc;

use actix::{Actor, ActorFutureExt, Context, ResponseActFuture, WrapFuture};

use super::bmc::BmcInfo;
use super::collectors::{self, InspectionData};
use super::inventory::{BlockDevice, Inventory};
use super::{log_warnings, root_device, InventorySources};
use crate::config::AgentConfig;
use crate::errors::AgentError;
use crate::host::{CommandRunner, ProcessRunner};

/// Owns inventory collection; runs its work off the API path.
#[derive(Debug)]
pub struct HardwareInspector {
    config: AgentConfig,
    sources: InventorySources,
    cache: Option<Inventory>,
    bmc_cache: Option<BmcInfo>,
}

impl HardwareInspector {
    /// Creates the inspector for the given configuration; tools run as real processes.
    pub fn new(config: AgentConfig) -> Self {
        Self::with_runner(config, Arc::new(ProcessRunner::default()))
    }

    /// Creates the inspector with a given command runner (tests pass stand-ins).
    pub fn with_runner(config: AgentConfig, runner: Arc<dyn CommandRunner>) -> Self {
        let sources = InventorySources::from_config(&config, runner);
        Self {
            config,
            sources,
            cache: None,
            bmc_cache: None,
        }
    }

    /// Creates the inspector over explicit sources (fixture addresses, etc.).
    pub fn with_sources(config: AgentConfig, sources: InventorySources) -> Self {
        Self {
            config,
            sources,
            cache: None,
            bmc_cache: None,
        }
    }

    /// The configuration this inspector reads host paths from.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The cached inventory, or a future that builds (and caches) a new one.
    fn inventory(&mut self, refresh: bool) -> ResponseActFuture<Self, Inventory> {
        if let (Some(cached), false) = (&self.cache, refresh) {
            let cached = cached.clone();
            return Box::pin(async move { cached }.into_actor(self));
        }
        let sources = self.sources.clone();
        let mut bmc = self.bmc_cache.clone();
        Box::pin(
            async move {
                let mut warnings = Vec::new();
                let inventory = sources.collect(&mut bmc, &mut warnings).await;
                log_warnings(&warnings);
                (inventory, bmc)
            }
            .into_actor(self)
            .map(|(inventory, bmc), act, _| {
                act.bmc_cache = bmc;
                act.cache = Some(inventory.clone());
                inventory
            }),
        )
    }
}

impl Actor for HardwareInspector {
    type Context = Context<Self>;
}

crate::answer_probe!(HardwareInspector, "hardware-inspector");

/// Request: the inventory of this machine (`refresh` rebuilds a cached one).
#[derive(Debug, Clone, Copy, Default)]
pub struct CollectInventory {
    /// Rebuild instead of answering from the cache.
    pub refresh: bool,
}

impl actix::Message for CollectInventory {
    type Result = Result<Inventory, AgentError>;
}

impl actix::Handler<CollectInventory> for HardwareInspector {
    type Result = ResponseActFuture<Self, Result<Inventory, AgentError>>;

    fn handle(&mut self, msg: CollectInventory, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(self.inventory(msg.refresh).map(|inv, _, _| Ok(inv)))
    }
}

/// Request: the OS install device for a node (`get_os_install_device`, §5.6): hints
/// from `instance_info.root_device` / `properties.root_device`, minus
/// `properties.skip_block_devices`. Disks are listed afresh.
#[derive(Debug, Clone, Default)]
pub struct ChooseInstallDevice {
    /// The node as Ironic sent it (lookup or command parameters).
    pub node: serde_json::Value,
}

impl actix::Message for ChooseInstallDevice {
    type Result = Result<BlockDevice, AgentError>;
}

impl actix::Handler<ChooseInstallDevice> for HardwareInspector {
    type Result = ResponseActFuture<Self, Result<BlockDevice, AgentError>>;

    fn handle(&mut self, msg: ChooseInstallDevice, _ctx: &mut Self::Context) -> Self::Result {
        let sources = self.sources.clone();
        let paths = self.config.paths.clone();
        Box::pin(
            async move {
                let mut warnings = Vec::new();
                let disks = super::install_candidates(sources.disks(&mut warnings).await, &paths);
                log_warnings(&warnings);
                root_device::choose_install_device(&msg.node, disks)
            }
            .into_actor(self),
        )
    }
}

/// Request: run inspection collectors (§7) over the cached inventory. An unknown
/// collector name is an error (IPA fails the inspection after posting empty data);
/// collectors not available here are reported in the body's `error`.
#[derive(Debug, Clone, Default)]
pub struct CollectInspectionData {
    /// Collector names in order, e.g. `["default", "logs"]`.
    pub collectors: Vec<String>,
}

impl actix::Message for CollectInspectionData {
    type Result = Result<InspectionData, AgentError>;
}

impl actix::Handler<CollectInspectionData> for HardwareInspector {
    type Result = ResponseActFuture<Self, Result<InspectionData, AgentError>>;

    fn handle(&mut self, msg: CollectInspectionData, _ctx: &mut Self::Context) -> Self::Result {
        if let Err(err) = collectors::validate_collectors(&msg.collectors) {
            return Box::pin(async move { Err(err) }.into_actor(self));
        }
        let sources = self.sources.clone();
        let wait = msg.collectors.iter().any(|c| c == "default") && sources.waits_for_dhcp();
        if wait {
            let waiting = sources.clone();
            return Box::pin(
                async move { waiting.wait_for_dhcp().await }
                    .into_actor(self)
                    .then(move |_, act, _| act.inventory(true))
                    .then(move |inventory, act, _| {
                        async move {
                            collectors::run_collectors(&msg.collectors, &inventory, &sources).await
                        }
                        .into_actor(act)
                    }),
            );
        }
        Box::pin(self.inventory(false).then(move |inventory, act, _| {
            async move { collectors::run_collectors(&msg.collectors, &inventory, &sources).await }
                .into_actor(act)
        }))
    }
}

/// Request: honour lookup's `agent_skip_bmc_detect` (BMC fields null/absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct SetSkipBmcDetect {
    /// Skip BMC detection from now on.
    pub skip: bool,
}

impl actix::Message for SetSkipBmcDetect {
    type Result = ();
}

impl actix::Handler<SetSkipBmcDetect> for HardwareInspector {
    type Result = ();

    fn handle(&mut self, msg: SetSkipBmcDetect, _ctx: &mut Self::Context) {
        if self.sources.skip_bmc_detect != msg.skip {
            self.sources.skip_bmc_detect = msg.skip;
            self.cache = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::testutil::{CannedRunner, Tree};
    use actix::Actor;

    fn fixture() -> (Tree, AgentConfig) {
        let t = Tree::new();
        t.file("proc/cpuinfo", "processor\t: 0\nmodel name\t: X\n\n");
        t.file("proc/meminfo", "MemTotal: 2048 kB\n");
        t.file("sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        t.dir("sys/devices/virtio0");
        t.link("sys/class/net/eth0/device", "../../../devices/virtio0");
        let config = AgentConfig {
            paths: crate::config::HostPaths::rooted_at(t.root()),
            ..AgentConfig::default()
        };
        (t, config)
    }

    const LSBLK: &str = r#"{"blockdevices": [
        {"kname": "sda", "model": "M", "size": 107374182400, "rota": false, "type": "disk",
         "uuid": null, "partuuid": null, "serial": "S1", "wwn": null, "log-sec": 512,
         "phy-sec": 512, "tran": "sata"},
        {"kname": "sdb", "model": "M", "size": 21474836480, "rota": true, "type": "disk",
         "uuid": null, "partuuid": null, "serial": "S2", "wwn": null, "log-sec": 512,
         "phy-sec": 512, "tran": "sata"}]}"#;

    #[actix_rt::test]
    async fn inspector_actor_caches_until_refresh() {
        let (t, config) = fixture();
        let runner = Arc::new(CannedRunner::default().with("lsblk", 0, LSBLK));
        let addr = HardwareInspector::with_runner(config, runner.clone()).start();
        let first = addr
            .send(CollectInventory { refresh: false })
            .await
            .expect("mailbox")
            .expect("inventory");
        assert_eq!(first.disks.len(), 2);
        t.file("proc/meminfo", "MemTotal: 4096 kB\n");
        let cached = addr
            .send(CollectInventory::default())
            .await
            .expect("mailbox")
            .expect("inventory");
        assert_eq!(cached.memory.total, 2048 * 1024);
        assert_eq!(runner.calls().len(), 1);
        let fresh = addr
            .send(CollectInventory { refresh: true })
            .await
            .expect("mailbox")
            .expect("inventory");
        assert_eq!(fresh.memory.total, 4096 * 1024);
        assert_eq!(runner.calls().len(), 2);
    }

    #[actix_rt::test]
    async fn inspector_actor_install_device_and_inspection() {
        let (_t, config) = fixture();
        let runner = Arc::new(CannedRunner::default().with("lsblk", 0, LSBLK));
        let addr = HardwareInspector::with_runner(config, runner).start();
        let dev = addr
            .send(ChooseInstallDevice {
                node: serde_json::json!({"instance_info": {}, "properties": {}}),
            })
            .await
            .expect("mailbox")
            .expect("device");
        assert_eq!(dev.name, "/dev/sdb");
        let dev = addr
            .send(ChooseInstallDevice {
                node: serde_json::json!({"properties": {"root_device": {"serial": "s1"}}}),
            })
            .await
            .expect("mailbox")
            .expect("device");
        assert_eq!(dev.name, "/dev/sda");
        let err = addr
            .send(ChooseInstallDevice {
                node: serde_json::json!({"properties": {"root_device": {"size": 1000}}}),
            })
            .await
            .expect("mailbox")
            .expect_err("none");
        assert_eq!(err.error_type, "DeviceNotFound");

        let data = addr
            .send(CollectInspectionData {
                collectors: vec!["default".into(), "logs".into()],
            })
            .await
            .expect("mailbox")
            .expect("data");
        assert_eq!(data.root_disk.expect("root").name, "/dev/sdb");
        assert_eq!(data.error, None);
        assert!(data.logs.is_some());
        assert_eq!(
            data.inventory.expect("inventory").mac_addresses(),
            ["52:54:00:12:34:56"]
        );
        let err = addr
            .send(CollectInspectionData {
                collectors: vec!["nope".into()],
            })
            .await
            .expect("mailbox")
            .expect_err("unknown");
        assert_eq!(err.code, 400);
        addr.send(SetSkipBmcDetect { skip: true })
            .await
            .expect("mailbox");
    }
}
