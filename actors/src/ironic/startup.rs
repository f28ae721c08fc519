//! The non-standalone start-up sequence (`ipa-protocol.md` §1): wait for a MAC,
//! inspect, look up, install the token and node, auto-TLS, serve, heartbeat.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use actix::Addr;
use serde_json::Value;

use super::actor::{GetApiVersion, Inspect, IronicClient, Lookup, StartHeartbeating, TokenRenewal};
use super::callback;
use super::client::{normalize_urls, ApiVersion, IronicError, LookupResult};
use super::tls;
use super::token::{self, TokenDecision};
use crate::api::{ApiServer, ApplyTlsSettings, InstallAgentToken, StartServing, TlsFiles};
use crate::config::{AgentConfig, Secret};
use crate::coordinator::{ApplyLookupConfig, CacheNode, Coordinator, RedactInLogs};
use crate::inspector::{
    CollectInspectionData, CollectInventory, HardwareInspector, Inventory, SetSkipBmcDetect,
};
use crate::state::{Session, StateStore};

/// The actors the start-up sequence talks to.
#[derive(Debug, Clone)]
pub struct StartupPeers {
    /// Serves the API once the lookup is done.
    pub api: Addr<ApiServer>,
    /// Caches the node.
    pub coordinator: Addr<Coordinator>,
    /// Provides the inventory (MACs, inspection data).
    pub inspector: Addr<HardwareInspector>,
    /// Talks to Ironic.
    pub ironic: Addr<IronicClient>,
}

/// Waits of the sequence; IPA's by default, shorter in tests.
#[derive(Debug, Clone)]
pub struct StartupTiming {
    /// How long to wait for an interface with a MAC (60 s).
    pub interface_wait: Duration,
    /// How often to look (5 s).
    pub interface_poll: Duration,
}

impl Default for StartupTiming {
    fn default() -> Self {
        Self {
            interface_wait: Duration::from_secs(60),
            interface_poll: Duration::from_secs(5),
        }
    }
}

/// How the sequence ended when it did not fail.
#[derive(Debug, Clone)]
pub enum StartupOutcome {
    /// The API serves; heartbeating runs when `heartbeating` is true.
    Serving {
        /// Bound addresses.
        addrs: Vec<SocketAddr>,
        /// The node from the lookup, if one was done.
        node_uuid: Option<String>,
        /// The URL sent in heartbeats.
        callback_url: Option<String>,
        /// Whether the heartbeat loop was started.
        heartbeating: bool,
    },
    /// Lookup said `******` and no token is held: IPA's lockdown. Nothing is served.
    Lockdown,
}

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Lookup did not succeed before `lookup_timeout`.
    #[error("Could not look up node info within lookup_timeout ({timeout} s): {last_error}")]
    Lookup {
        /// `lookup_timeout`.
        timeout: u64,
        /// The last failure.
        last_error: IronicError,
    },
    /// No advertise address while auto-TLS needed one.
    #[error("cannot find an IP address to advertise to Ironic (set advertise_host)")]
    AdvertiseAddress,
    /// The certificate could not be made or written.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The API could not bind.
    #[error("cannot serve the API: {0}")]
    Serve(String),
    /// An actor did not answer.
    #[error("actor mailbox: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

/// The inspection callback URLs: `inspection_callback_url` split on `,` (`mdns` is not
/// supported and dropped with a warning). Empty when inspection is off.
pub fn inspection_urls(config: &AgentConfig) -> Vec<String> {
    let Some(raw) = config.inspection_callback_url.as_deref() else {
        return Vec::new();
    };
    raw.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .filter(|url| {
            if *url == "mdns" {
                tracing::warn!("mDNS discovery of the inspection URL is not supported");
                false
            } else {
                true
            }
        })
        .map(str::to_string)
        .collect()
}

/// The static TLS files (`listen_tls`, or both files given), as the API decides them.
pub fn static_tls(config: &AgentConfig) -> Result<Option<TlsFiles>, String> {
    crate::api::static_tls_files(config)
}

/// Whether auto-TLS applies: enabled, no static TLS, an API URL, Ironic ≥ 1.68.
pub fn auto_tls_applies(config: &AgentConfig, has_api: bool, version: ApiVersion) -> bool {
    config.enable_auto_tls
        && matches!(static_tls(config), Ok(None))
        && has_api
        && version >= ApiVersion::AGENT_VERIFY_CA
}

/// Polls the inventory until an interface has a MAC, up to `timing.interface_wait`.
async fn wait_for_inventory(
    inspector: &Addr<HardwareInspector>,
    timing: &StartupTiming,
) -> Option<Inventory> {
    let deadline = Instant::now() + timing.interface_wait;
    let mut last = None;
    let mut logged = false;
    loop {
        match inspector.send(CollectInventory { refresh: true }).await {
            Ok(Ok(inventory)) => {
                if !inventory.mac_addresses().is_empty() {
                    return Some(inventory);
                }
                last = Some(inventory);
            }
            Ok(Err(err)) if !logged => {
                tracing::warn!(error = %err, "no inventory yet");
                logged = true;
            }
            Ok(Err(_)) => {}
            Err(err) => tracing::warn!(error = %err, "the inspector does not answer"),
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                "no network interface with a MAC address after {:?}; continuing",
                timing.interface_wait
            );
            return last;
        }
        actix_rt::time::sleep(timing.interface_poll).await;
    }
}

/// The IPv4 address of `network_interface` in the inventory, if that option is set.
pub fn network_interface_ip(config: &AgentConfig, inventory: Option<&Inventory>) -> Option<String> {
    let wanted = config.network_interface.as_deref()?;
    inventory?
        .interfaces
        .iter()
        .find(|iface| iface.name == wanted)
        .and_then(|iface| iface.ipv4_address.clone())
}

async fn advertise_host(
    config: &AgentConfig,
    api_urls: &[String],
    inventory: Option<&Inventory>,
) -> Option<String> {
    if let Some(host) = config.advertise_host.as_deref().filter(|h| !h.is_empty()) {
        return Some(host.to_string());
    }
    if config.network_interface.is_some() {
        let ip = network_interface_ip(config, inventory);
        if ip.is_none() {
            tracing::error!(
                interface = ?config.network_interface,
                "network_interface has no IPv4 address"
            );
        }
        return ip;
    }
    let attempts = config.ip_lookup_attempts.max(1);
    for attempt in 1..=attempts {
        if let Some(ip) = callback::detect_advertise_ip(api_urls).await {
            tracing::info!(%ip, "advertise address detected");
            return Some(ip.to_string());
        }
        if attempt < attempts {
            actix_rt::time::sleep(Duration::from_secs(config.ip_lookup_sleep)).await;
        }
    }
    None
}

async fn advertise_ip(host: &str, port: u16) -> Option<IpAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse() {
        return Some(ip);
    }
    tokio::net::lookup_host((bare, port))
        .await
        .ok()?
        .map(|addr| addr.ip())
        .next()
}

/// Runs the start-up sequence of a non-standalone agent. Inspection failures are
/// logged and swallowed; a lookup that does not succeed within `lookup_timeout` is an
/// error (the agent then exits non-zero).
pub async fn run(
    config: &AgentConfig,
    peers: &StartupPeers,
    timing: &StartupTiming,
) -> Result<StartupOutcome, StartupError> {
    let api_urls = normalize_urls(&config.api_url);
    let inspect_urls = inspection_urls(config);
    let static_files = static_tls(config).map_err(StartupError::Serve)?;

    if api_urls.is_empty() && inspect_urls.is_empty() {
        tracing::warn!("no Ironic API URL configured: the agent will not look up or heartbeat");
        let addrs = serve(peers, static_files).await?;
        return Ok(StartupOutcome::Serving {
            addrs,
            node_uuid: None,
            callback_url: None,
            heartbeating: false,
        });
    }

    let inventory = wait_for_inventory(&peers.inspector, timing).await;
    let macs = inventory
        .as_ref()
        .map(Inventory::mac_addresses)
        .unwrap_or_default();

    let mut node_uuid = None;
    if !inspect_urls.is_empty() {
        node_uuid = inspect(config, peers, inspect_urls).await?;
    }

    if api_urls.is_empty() {
        tracing::warn!("no Ironic API URL configured: the agent will not look up or heartbeat");
        let addrs = serve(peers, static_files).await?;
        return Ok(StartupOutcome::Serving {
            addrs,
            node_uuid,
            callback_url: None,
            heartbeating: false,
        });
    }

    let found: LookupResult = peers
        .ironic
        .send(Lookup {
            macs: macs.clone(),
            node_uuid: node_uuid.clone(),
        })
        .await?
        .map_err(|last_error| StartupError::Lookup {
            timeout: config.lookup_timeout,
            last_error,
        })?;
    tracing::info!(node = %found.node_uuid, "lookup succeeded");

    // Restart recovery: a session saved by an earlier process of this boot for the
    // same node gives back the token Ironic will not hand out again.
    let store = StateStore::new(&config.paths.state_dir, &config.paths.proc_root);
    let saved = store
        .load_session()
        .filter(|session| session.node_uuid == found.node_uuid);
    let saved_token = saved.as_ref().and_then(Session::token);
    if saved.is_some() {
        tracing::info!(node = %found.node_uuid, "resuming the session saved before a restart");
    }
    let held = saved_token.clone().or_else(|| config.agent_token.clone());
    let received = found.config.agent_token.as_ref().map(Secret::expose);
    let decision = token::decide(received, held.as_ref());
    let token = match &decision {
        TokenDecision::Use(token) => {
            peers.api.send(InstallAgentToken(token.clone())).await?;
            Some(token.clone())
        }
        TokenDecision::KeepHeld(token) => {
            tracing::warn!("Ironic has already handed the agent token out; keeping ours");
            if saved_token.is_some() {
                peers.api.send(InstallAgentToken(token.clone())).await?;
            }
            Some(token.clone())
        }
        TokenDecision::Ignored(held) => {
            if received.is_some() {
                tracing::info!("ignoring an agent token shorter than 32 characters");
            }
            held.clone()
        }
        TokenDecision::Lockdown => {
            tracing::error!(
                "The agent token has already been retrieved and this agent holds none: \
                 locking down (nothing is served). Redo the operation in Ironic."
            );
            return Ok(StartupOutcome::Lockdown);
        }
    };

    // Both the token in use and one Ironic sent (even ignored) stay out of collected logs.
    let sent = found.config.agent_token.as_ref();
    let sent = sent.filter(|secret| secret.expose() != token::REDACTED_TOKEN);
    for secret in token.iter().chain(sent) {
        peers.coordinator.send(RedactInLogs(secret.clone())).await?;
    }

    let mut node = found.node.clone();
    if found.config.agent_skip_bmc_detect == Some(true) {
        if let Some(object) = node.as_object_mut() {
            object.insert("skip_bmc_detect".into(), Value::Bool(true));
        }
        peers
            .inspector
            .send(SetSkipBmcDetect { skip: true })
            .await?;
    }
    peers.coordinator.send(CacheNode { node }).await?;
    let (image_options, tls_options) = lookup_config_messages(&found.config);
    peers.coordinator.send(image_options).await?;
    peers.api.send(tls_options).await?;

    let version = peers.ironic.send(GetApiVersion).await?;
    let auto_tls = auto_tls_applies(config, true, version);
    let host = advertise_host(config, &api_urls, inventory.as_ref()).await;

    let mut protocol = config.advertise_protocol.as_str();
    let mut verify_ca = None;
    let mut tls_files = static_files;
    let resumed = saved.filter(|session| session.auto_tls == auto_tls);
    let resumed_tls = if auto_tls && resumed.is_some() {
        reuse_certificate(&config.paths.state_dir)
    } else {
        None
    };
    if let Some((files, cert_pem)) = resumed_tls.clone() {
        tracing::info!("reusing the auto-TLS certificate of the saved session");
        tls_files = Some(files);
        protocol = "https";
        verify_ca = Some(cert_pem);
    } else if auto_tls {
        let host = host.as_deref().ok_or(StartupError::AdvertiseAddress)?;
        let ip = advertise_ip(host, config.advertise_port)
            .await
            .ok_or(StartupError::AdvertiseAddress)?;
        let cert = tls::generate(
            &tls::hostname(&config.paths.proc_root),
            ip,
            config.tls_certificate_curve,
            Duration::from_secs(config.auto_tls_allowed_clock_skew),
        )?;
        tls_files = Some(tls::write_files(&config.paths.state_dir, &cert)?);
        tracing::info!(%ip, "auto-TLS certificate generated");
        protocol = "https";
        verify_ca = Some(cert.cert_pem);
    }

    let addrs = serve(peers, tls_files).await?;

    let resumed_url = resumed
        .filter(|_| !auto_tls || resumed_tls.is_some())
        .map(|session| session.callback_url);
    let host = if resumed_url.is_some() {
        host.or_else(|| Some(String::new()))
    } else {
        host
    };
    let Some(host) = host else {
        tracing::error!(
            "cannot find an IP address to advertise to Ironic: serving, but not heartbeating"
        );
        return Ok(StartupOutcome::Serving {
            addrs,
            node_uuid: Some(found.node_uuid),
            callback_url: None,
            heartbeating: false,
        });
    };
    let callback_url = resumed_url
        .unwrap_or_else(|| callback::callback_url(protocol, &host, config.advertise_port));
    let session = Session {
        boot_id: String::new(),
        node_uuid: found.node_uuid.clone(),
        agent_token: token.as_ref().map(|t| t.expose().to_string()),
        callback_url: callback_url.clone(),
        auto_tls,
    };
    if let Err(err) = store.save_session(&session) {
        tracing::warn!(error = %err, "cannot save the session: a restart will not recover");
    }
    peers
        .ironic
        .send(StartHeartbeating {
            node_uuid: found.node_uuid.clone(),
            agent_token: token,
            heartbeat_timeout: found.config.heartbeat_timeout,
            callback_url: callback_url.clone(),
            verify_ca,
            renewal: Some(TokenRenewal {
                macs,
                install: peers.api.clone().recipient(),
            }),
        })
        .await?;
    Ok(StartupOutcome::Serving {
        addrs,
        node_uuid: Some(found.node_uuid),
        callback_url: Some(callback_url),
        heartbeating: true,
    })
}

/// The options of lookup's `config` the coordinator and the API apply (§6.2).
pub fn lookup_config_messages(
    config: &crate::ironic::client::LookupConfig,
) -> (ApplyLookupConfig, ApplyTlsSettings) {
    (
        ApplyLookupConfig {
            agent_md5_checksum_enable: config.agent_md5_checksum_enable,
            permitted_image_formats: config.permitted_image_formats.clone(),
            disable_deep_image_inspection: config.disable_deep_image_inspection,
            enable_bios_bootloader_install: config.enable_bios_bootloader_install,
        },
        ApplyTlsSettings {
            tls_min_version: config.tls_min_version.clone(),
            tls_cipher_suites: config.tls_cipher_suites.clone(),
        },
    )
}

/// Collects the configured collectors' data and posts it; failures are logged and
/// swallowed (IPA goes on to lookup without a node UUID).
async fn inspect(
    config: &AgentConfig,
    peers: &StartupPeers,
    urls: Vec<String>,
) -> Result<Option<String>, StartupError> {
    let collected = peers
        .inspector
        .send(CollectInspectionData {
            collectors: config.inspection_collectors.clone(),
        })
        .await?;
    let data = match collected.map(|data| serde_json::to_value(&data)) {
        Ok(Ok(data)) => data,
        Ok(Err(err)) => {
            tracing::error!(error = %err, "inspection data cannot be serialized; skipping");
            return Ok(None);
        }
        Err(err) => {
            tracing::error!(error = %err, "inspection collectors failed; skipping inspection");
            return Ok(None);
        }
    };
    match peers.ironic.send(Inspect { urls, data }).await? {
        Ok(uuid) => Ok(uuid),
        Err(err) => {
            tracing::error!(error = %err, "inspection failed; continuing with lookup");
            Ok(None)
        }
    }
}

/// The auto-TLS files a previous process left in `state_dir`, with the certificate PEM,
/// when both are there and readable.
fn reuse_certificate(state_dir: &std::path::Path) -> Option<(TlsFiles, String)> {
    let files = TlsFiles {
        cert: state_dir.join(tls::CERT_FILE),
        key: state_dir.join(tls::KEY_FILE),
    };
    let cert_pem = std::fs::read_to_string(&files.cert).ok()?;
    std::fs::metadata(&files.key).ok()?;
    Some((files, cert_pem))
}

async fn serve(
    peers: &StartupPeers,
    tls: Option<TlsFiles>,
) -> Result<Vec<SocketAddr>, StartupError> {
    peers
        .api
        .send(StartServing { tls })
        .await?
        .map_err(StartupError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspection_urls_split_and_drop_mdns() {
        let mut config = AgentConfig::default();
        assert!(inspection_urls(&config).is_empty());
        config.inspection_callback_url =
            Some("http://a/v1/continue_inspection, mdns,http://b/v1/continue".into());
        assert_eq!(
            inspection_urls(&config),
            ["http://a/v1/continue_inspection", "http://b/v1/continue"]
        );
    }

    #[test]
    fn network_interface_gives_its_ipv4_address() {
        let inventory = Inventory {
            interfaces: vec![crate::inspector::inventory::NetworkInterface {
                name: "eth1".into(),
                ipv4_address: Some("192.0.2.7".into()),
                ..Default::default()
            }],
            ..Inventory::default()
        };
        let mut config = AgentConfig::default();
        assert_eq!(network_interface_ip(&config, Some(&inventory)), None);
        config.network_interface = Some("eth1".into());
        assert_eq!(
            network_interface_ip(&config, Some(&inventory)).as_deref(),
            Some("192.0.2.7")
        );
        config.network_interface = Some("eth9".into());
        assert_eq!(network_interface_ip(&config, Some(&inventory)), None);
        assert_eq!(network_interface_ip(&config, None), None);
    }

    #[test]
    fn auto_tls_needs_version_168_and_no_static_tls() {
        let config = AgentConfig::default();
        assert!(auto_tls_applies(&config, true, ApiVersion::new(1, 68)));
        assert!(!auto_tls_applies(&config, true, ApiVersion::new(1, 67)));
        assert!(!auto_tls_applies(&config, false, ApiVersion::new(1, 115)));
        let off = AgentConfig {
            enable_auto_tls: false,
            ..AgentConfig::default()
        };
        assert!(!auto_tls_applies(&off, true, ApiVersion::new(1, 115)));
        let fixed = AgentConfig {
            tls_cert_file: Some("/c".into()),
            tls_key_file: Some("/k".into()),
            ..AgentConfig::default()
        };
        assert!(!auto_tls_applies(&fixed, true, ApiVersion::new(1, 115)));
        assert!(matches!(static_tls(&fixed), Ok(Some(_))));
    }
}

#[cfg(test)]
mod lookup_config_tests {
    use super::*;
    use crate::api::ApiSettings;
    use crate::config::TlsVersion;

    #[test]
    fn lookup_config_reaches_the_coordinator_and_api_settings() {
        let lookup: crate::ironic::client::LookupConfig =
            serde_json::from_value(serde_json::json!({
                "heartbeat_timeout": 300,
                "agent_md5_checksum_enable": false,
                "permitted_image_formats": ["raw", "qcow2"],
                "disable_deep_image_inspection": true,
                "enable_bios_bootloader_install": true,
                "tls_min_version": "1.3",
                "tls_cipher_suites": "ECDHE-ECDSA-AES256-GCM-SHA384"
            }))
            .expect("lookup config");
        let (image, tls) = lookup_config_messages(&lookup);
        let mut config = AgentConfig::default();
        assert!(config.md5_enabled);
        image.apply_to(&mut config);
        assert!(!config.md5_enabled);
        assert_eq!(config.permitted_image_formats, ["raw", "qcow2"]);
        assert!(config.disable_deep_image_inspection);
        assert!(config.enable_bios_bootloader_install);
        let mut settings = ApiSettings::from_config(&AgentConfig::default());
        tls.apply_to(&mut settings);
        assert_eq!(settings.tls_min_version, TlsVersion::V1_3);
        assert_eq!(
            settings.tls_cipher_suites.as_deref(),
            Some("ECDHE-ECDSA-AES256-GCM-SHA384")
        );

        // Absent options keep the configuration.
        let (image, tls) = lookup_config_messages(
            &serde_json::from_value(serde_json::json!({"heartbeat_timeout": 300}))
                .expect("lookup config"),
        );
        let mut kept = AgentConfig::default();
        image.apply_to(&mut kept);
        assert_eq!(
            kept.permitted_image_formats,
            AgentConfig::default().permitted_image_formats
        );
        assert!(kept.md5_enabled);
        let mut settings = ApiSettings::from_config(&AgentConfig::default());
        tls.apply_to(&mut settings);
        assert_eq!(settings.tls_min_version, TlsVersion::V1_2);
    }

    #[actix_rt::test]
    async fn apply_lookup_config_changes_the_coordinators_configuration() {
        use actix::Actor;
        let config = AgentConfig::default();
        let peers = crate::coordinator::Peers {
            inspector: crate::inspector::HardwareInspector::new(config.clone()).start(),
            installer: crate::installer::InstallerRunner::new(
                config.clone(),
                std::sync::Arc::new(crate::host::ProcessRunner::default()),
            )
            .start(),
            systemd: crate::systemd::SystemdSupervisor::new(None).start(),
            ironic: IronicClient::new(config.clone()).start(),
        };
        let coordinator = Coordinator::new(config, peers).start();
        let applied = coordinator
            .send(ApplyLookupConfig {
                agent_md5_checksum_enable: Some(false),
                permitted_image_formats: Some(vec!["raw".into()]),
                ..ApplyLookupConfig::default()
            })
            .await
            .expect("mailbox");
        assert!(!applied.md5_enabled);
        assert_eq!(applied.permitted_image_formats, ["raw"]);
    }
}
