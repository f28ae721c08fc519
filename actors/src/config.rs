//! The typed agent configuration consumed by every actor.
//!
//! [`AgentConfig`] holds the options of ironic-python-agent (IPA) under IPA's own names
//! (see `ipa-protocol.md` §9.2), plus the few things this agent adds: the paths it
//! touches ([`HostPaths`]), the CoreOS environment variables ([`CoreosEnv`]),
//! `standalone`, `block_device_allowlist` and `max_request_body_bytes`.
//!
//! `Default` gives IPA's built-in defaults. Loading (kernel command line, INI files,
//! flags, environment) lives in the binary crate; this module only defines the types and
//! the parsers of the small enumerations.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string (the agent token, the image server password).
///
/// `Debug` and `Serialize` print `***`, so a secret never reaches a log line or
/// `--dump-config`; read the real value with [`Secret::expose`]. Deserializing reads the
/// plain string. There is deliberately no `PartialEq`: compare tokens in constant time
/// with the exposed bytes.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// The text shown instead of a secret.
    pub const REDACTED: &'static str = "***";

    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// An error from parsing one of the small enumerations of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnumError {
    /// The option's expected values, for the message.
    pub expected: &'static str,
    /// The value that was given.
    pub got: String,
}

impl fmt::Display for ParseEnumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected one of {}, got {:?}", self.expected, self.got)
    }
}

impl std::error::Error for ParseEnumError {}

/// The lowest TLS version accepted, by the API server and by the Ironic client
/// (`tls_min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (IPA's default).
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    V1_3,
}

impl TlsVersion {
    /// The version as IPA writes it: `1.2` or `1.3`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsVersion {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "1.2" => Ok(TlsVersion::V1_2),
            "1.3" => Ok(TlsVersion::V1_3),
            other => Err(ParseEnumError {
                expected: "1.2, 1.3",
                got: other.to_string(),
            }),
        }
    }
}

/// The scheme of the callback URL sent to Ironic (`advertise_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvertiseProtocol {
    /// `http` (IPA's default).
    #[default]
    Http,
    /// `https`.
    Https,
}

impl AdvertiseProtocol {
    /// The scheme: `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdvertiseProtocol::Http => "http",
            AdvertiseProtocol::Https => "https",
        }
    }
}

impl fmt::Display for AdvertiseProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdvertiseProtocol {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "http" => Ok(AdvertiseProtocol::Http),
            "https" => Ok(AdvertiseProtocol::Https),
            other => Err(ParseEnumError {
                expected: "http, https",
                got: other.to_string(),
            }),
        }
    }
}

/// The elliptic curve of the automatically generated TLS certificate
/// (`tls_certificate_curve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsCurve {
    /// NIST P-256.
    P256,
    /// NIST P-384 (IPA's default).
    #[default]
    P384,
    /// NIST P-521.
    P521,
}

impl TlsCurve {
    /// The curve as IPA names it: `p256`, `p384` or `p521`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsCurve::P256 => "p256",
            TlsCurve::P384 => "p384",
            TlsCurve::P521 => "p521",
        }
    }
}

impl fmt::Display for TlsCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsCurve {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "p256" => Ok(TlsCurve::P256),
            "p384" => Ok(TlsCurve::P384),
            "p521" => Ok(TlsCurve::P521),
            _ => Err(ParseEnumError {
                expected: "p256, p384, p521",
                got: s.trim().to_string(),
            }),
        }
    }
}

/// How the agent authenticates to the image server when `image_info` says nothing
/// (`image_server_auth_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageServerAuthStrategy {
    /// No authentication (IPA's default).
    #[default]
    Noauth,
    /// HTTP basic authentication with `image_server_user` / `image_server_password`.
    HttpBasic,
}

impl ImageServerAuthStrategy {
    /// The strategy as IPA names it: `noauth` or `http_basic`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageServerAuthStrategy::Noauth => "noauth",
            ImageServerAuthStrategy::HttpBasic => "http_basic",
        }
    }
}

impl fmt::Display for ImageServerAuthStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageServerAuthStrategy {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "noauth" => Ok(ImageServerAuthStrategy::Noauth),
            "http_basic" => Ok(ImageServerAuthStrategy::HttpBasic),
            other => Err(ParseEnumError {
                expected: "noauth, http_basic",
                got: other.to_string(),
            }),
        }
    }
}

/// The file-system locations the agent touches. Production values by default; tests
/// point them into a temporary directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostPaths {
    /// The host's root file system, bind-mounted into the container (`/mnt/coreos`);
    /// host tools run through `chroot <host_root>`.
    pub host_root: PathBuf,
    /// sysfs (`/sys`).
    pub sys_root: PathBuf,
    /// The device directory (`/dev`).
    pub dev_root: PathBuf,
    /// procfs (`/proc`).
    pub proc_root: PathBuf,
    /// The agent's own run-time state (`/run/ironic-agent`).
    pub state_dir: PathBuf,
    /// The root under which the container's own `/etc` lives (`/`): marker files such as
    /// `etc/.rescued` and the container's `etc/hostname` are found below it.
    pub etc_root: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            host_root: PathBuf::from("/mnt/coreos"),
            sys_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
            proc_root: PathBuf::from("/proc"),
            state_dir: PathBuf::from("/run/ironic-agent"),
            etc_root: PathBuf::from("/"),
        }
    }
}

impl HostPaths {
    /// All paths below `root` (`<root>/mnt/coreos`, `<root>/sys`, `<root>/dev`,
    /// `<root>/proc`, `<root>/run/ironic-agent`, and `<root>` itself as `etc_root`);
    /// convenient for tests.
    pub fn rooted_at(root: &Path) -> Self {
        HostPaths {
            host_root: root.join("mnt/coreos"),
            sys_root: root.join("sys"),
            dev_root: root.join("dev"),
            proc_root: root.join("proc"),
            state_dir: root.join("run/ironic-agent"),
            etc_root: root.to_path_buf(),
        }
    }
}

/// The CoreOS-specific environment that image-customization-controller passes to the
/// container (`IPA_COREOS_IP_OPTIONS`, `IPA_COREOS_COPY_NETWORK`, `IPA_DEFAULT_HOSTNAME`).
/// Empty variables count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CoreosEnv {
    /// `IPA_COREOS_IP_OPTIONS`: kernel `ip=` arguments, appended to the installed system
    /// with `--append-karg`.
    pub ip_options: Option<String>,
    /// `IPA_COREOS_COPY_NETWORK`, verbatim; see [`CoreosEnv::copy_network_enabled`].
    pub copy_network: Option<String>,
    /// `IPA_DEFAULT_HOSTNAME`: the hostname to set when the host's is `localhost`.
    pub default_hostname: Option<String>,
}

impl CoreosEnv {
    /// Whether `IPA_COREOS_COPY_NETWORK` asks for `--copy-network`: it equals `true`,
    /// case-insensitively, as in the original hardware manager.
    pub fn copy_network_enabled(&self) -> bool {
        self.copy_network
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }
}

/// The effective agent configuration. Field names are IPA's option names; `Default` is
/// IPA's built-in defaults (`ipa-protocol.md` §9.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentConfig {
    // --- Ironic API client -------------------------------------------------------------
    /// Ironic API URLs (`api_url`, kernel `ipa-api-url`), without trailing `/`; each is
    /// `mdns` or an `http(s)://` URL. Empty when not configured.
    pub api_url: Vec<String>,
    /// Inspection endpoint(s) or `mdns` (`inspection_callback_url`); `None` when unset or
    /// empty, which disables inspection.
    pub inspection_callback_url: Option<String>,
    /// Do not verify Ironic's TLS certificate (`insecure`, kernel `ipa-insecure`).
    pub insecure: bool,
    /// CA bundle used to verify Ironic (`cafile`).
    pub cafile: Option<PathBuf>,
    /// Client certificate presented to Ironic (`certfile`).
    pub certfile: Option<PathBuf>,
    /// Key of the client certificate (`keyfile`).
    pub keyfile: Option<PathBuf>,
    /// Seconds before an HTTP request to Ironic times out (`http_request_timeout`).
    pub http_request_timeout: u64,
    /// Ironic API microversion to use, `x.y`; `None` detects it (`ironic_api_version`).
    pub ironic_api_version: Option<String>,
    /// Sent as `X-OpenStack-Request-ID` (`global_request_id`), normally `req-<uuid>`.
    pub global_request_id: Option<String>,
    /// Seconds to keep retrying the lookup (`lookup_timeout`).
    pub lookup_timeout: u64,
    /// Seconds between lookup attempts (`lookup_interval`), the initial back-off.
    pub lookup_interval: u64,

    // --- The agent's own API ---------------------------------------------------------
    /// Address the API binds to (`listen_host`). IPA's default is `::` when IPv6 is
    /// available, else `0.0.0.0`; the API actor falls back when `::` cannot be bound.
    pub listen_host: String,
    /// Port the API binds to (`listen_port`).
    pub listen_port: u16,
    /// Host put in the callback URL (`advertise_host`); `None` discovers it.
    pub advertise_host: Option<String>,
    /// Port put in the callback URL (`advertise_port`).
    pub advertise_port: u16,
    /// Scheme of the callback URL (`advertise_protocol`).
    pub advertise_protocol: AdvertiseProtocol,
    /// Serve the API over TLS with a static certificate (`listen_tls`).
    pub listen_tls: bool,
    /// Certificate for `listen_tls` (`tls_cert_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// Key for `listen_tls` (`tls_key_file`).
    pub tls_key_file: Option<PathBuf>,
    /// Lowest TLS version, for the server and the client (`tls_min_version`).
    pub tls_min_version: TlsVersion,
    /// TLS 1.2 cipher string (`tls_cipher_suites`); `None` keeps the library's choice.
    pub tls_cipher_suites: Option<String>,
    /// Curve of the generated certificate (`tls_certificate_curve`).
    pub tls_certificate_curve: TlsCurve,
    /// Generate a certificate and serve TLS when Ironic supports it (`enable_auto_tls`).
    pub enable_auto_tls: bool,
    /// Seconds of clock skew the generated certificate tolerates
    /// (`auto_tls_allowed_clock_skew`).
    pub auto_tls_allowed_clock_skew: u64,
    /// Pre-shared agent token (`agent_token`, kernel `ipa-agent-token`); `None` until
    /// configured or received from the lookup.
    pub agent_token: Option<Secret>,
    /// Largest request body the API accepts, in bytes (this agent's own option).
    pub max_request_body_bytes: u64,

    // --- Network discovery and inspection ----------------------------------------------
    /// Collect LLDP during inspection (`collect_lldp`, deprecated in IPA).
    pub collect_lldp: bool,
    /// Seconds to wait for LLDP packets (`lldp_timeout`).
    pub lldp_timeout: f64,
    /// Inspection collectors, in order (`inspection_collectors`).
    pub inspection_collectors: Vec<String>,
    /// Seconds to wait for DHCP before inspecting (`inspection_dhcp_wait_timeout`).
    pub inspection_dhcp_wait_timeout: u64,
    /// Wait for DHCP on every interface, not only the PXE one
    /// (`inspection_dhcp_all_interfaces`).
    pub inspection_dhcp_all_interfaces: bool,
    /// VLAN interfaces to bring up (`enable_vlan_interfaces`): `iface.vlan`, `iface`, a MAC,
    /// or `all`.
    pub enable_vlan_interfaces: Vec<String>,
    /// Interface to take the advertise address from (`network_interface`).
    pub network_interface: Option<String>,
    /// Attempts to find an advertise address (`ip_lookup_attempts`).
    pub ip_lookup_attempts: u32,
    /// Seconds between those attempts (`ip_lookup_sleep`, kernel `ipa-ip-lookup-timeout`).
    pub ip_lookup_sleep: u64,
    /// NTP server to sync the clock from before lookup (`ntp_server`).
    pub ntp_server: Option<String>,
    /// Fail start-up when the clock cannot be synced (`fail_if_clock_not_set`).
    pub fail_if_clock_not_set: bool,

    // --- Hardware --------------------------------------------------------------------
    /// Seconds to wait for hardware to initialize at start (`hardware_initialization_delay`).
    pub hardware_initialization_delay: u64,
    /// Attempts to wait for a disk to appear (`disk_wait_attempts`).
    pub disk_wait_attempts: u32,
    /// Seconds between those attempts (`disk_wait_delay`).
    pub disk_wait_delay: u64,
    /// Block devices steps may touch and inventory may offer (`block_device_allowlist`,
    /// this agent's own option). Empty means no restriction.
    pub block_device_allowlist: Vec<String>,

    // --- Image download and writing ---------------------------------------------------
    /// Connect timeout, and the longest gap between chunks, in seconds
    /// (`image_download_connection_timeout`).
    pub image_download_connection_timeout: u64,
    /// Retries per download (`image_download_connection_retries`).
    pub image_download_connection_retries: u32,
    /// Seconds between retries (`image_download_connection_retry_interval`).
    pub image_download_connection_retry_interval: u64,
    /// Longest a whole download may take in seconds, 0 for no limit
    /// (`image_download_max_duration`).
    pub image_download_max_duration: u64,
    /// Default image server authentication (`image_server_auth_strategy`).
    pub image_server_auth_strategy: ImageServerAuthStrategy,
    /// User for `http_basic` (`image_server_user`).
    pub image_server_user: Option<String>,
    /// Password for `http_basic` (`image_server_password`).
    pub image_server_password: Option<Secret>,
    /// Accept MD5 image checksums (`md5_enabled`; IPA's code defaults to true).
    pub md5_enabled: bool,
    /// Skip deep inspection of image formats (`disable_deep_image_inspection`).
    pub disable_deep_image_inspection: bool,
    /// Image formats accepted (`permitted_image_formats`).
    pub permitted_image_formats: Vec<String>,
    /// Refuse to write over special file systems (`guard_special_filesystems`).
    pub guard_special_filesystems: bool,
    /// Do not deploy bootc images (`disable_bootc_deploy`).
    pub disable_bootc_deploy: bool,
    /// Install a BIOS boot loader too (`enable_bios_bootloader_install`).
    pub enable_bios_bootloader_install: bool,
    /// Ignore boot loader installation failures (`ignore_bootloader_failure`); `None`
    /// leaves the decision to the step.
    pub ignore_bootloader_failure: Option<bool>,
    /// Priority of the `inject_files` deploy step, 0 to 99 (`inject_files_priority`).
    pub inject_files_priority: u8,
    /// Rebuild the config drive (`config_drive_rebuild`).
    pub config_drive_rebuild: bool,
    /// Run as an introspection daemon (`introspection_daemon`).
    pub introspection_daemon: bool,
    /// Seconds between the daemon's posts (`introspection_daemon_post_interval`).
    pub introspection_daemon_post_interval: u64,

    // --- Logging and modes -------------------------------------------------------------
    /// Log at debug level (`debug`, kernel `ipa-debug`, flag `--debug`).
    pub debug: bool,
    /// Also log to this file (`log_file`).
    pub log_file: Option<PathBuf>,
    /// Log to stderr (`use_stderr`; oslo.log's default is false, the image sets true).
    pub use_stderr: bool,
    /// Serve the API at once: no lookup, heartbeat or inspection (flag `--standalone`
    /// only, as in IPA where it is not an option).
    pub standalone: bool,

    // --- Kernel command line -----------------------------------------------------------
    /// The raw `BOOTIF` kernel parameter (the PXE MAC, `01-aa-bb-…`).
    pub boot_if: Option<String>,
    /// Kernel parameters with a value that no option above takes (e.g. `boot_method`,
    /// `ipa-use-mdns`, `ip`).
    pub kernel_params: BTreeMap<String, String>,

    // --- This agent's environment -------------------------------------------------------
    /// Paths the agent touches.
    pub paths: HostPaths,
    /// The CoreOS environment variables.
    pub coreos: CoreosEnv,
}

impl AgentConfig {
    /// IPA's default inspection collectors.
    pub const DEFAULT_INSPECTION_COLLECTORS: [&'static str; 2] = ["default", "logs"];
    /// IPA's default permitted image formats.
    pub const DEFAULT_PERMITTED_IMAGE_FORMATS: [&'static str; 3] = ["raw", "gpt", "qcow2"];
    /// Default largest request body: 16 MiB.
    pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 16 * 1024 * 1024;
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            api_url: Vec::new(),
            inspection_callback_url: None,
            insecure: false,
            cafile: None,
            certfile: None,
            keyfile: None,
            http_request_timeout: 30,
            ironic_api_version: None,
            global_request_id: None,
            lookup_timeout: 600,
            lookup_interval: 1,

            listen_host: "::".to_string(),
            listen_port: 9999,
            advertise_host: None,
            advertise_port: 9999,
            advertise_protocol: AdvertiseProtocol::Http,
            listen_tls: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_min_version: TlsVersion::V1_2,
            tls_cipher_suites: None,
            tls_certificate_curve: TlsCurve::P384,
            enable_auto_tls: true,
            auto_tls_allowed_clock_skew: 3600,
            agent_token: None,
            max_request_body_bytes: Self::DEFAULT_MAX_REQUEST_BODY_BYTES,

            collect_lldp: false,
            lldp_timeout: 30.0,
            inspection_collectors: Self::DEFAULT_INSPECTION_COLLECTORS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            inspection_dhcp_wait_timeout: 60,
            inspection_dhcp_all_interfaces: false,
            enable_vlan_interfaces: Vec::new(),
            network_interface: None,
            ip_lookup_attempts: 6,
            ip_lookup_sleep: 10,
            ntp_server: None,
            fail_if_clock_not_set: false,

            hardware_initialization_delay: 0,
            disk_wait_attempts: 10,
            disk_wait_delay: 3,
            block_device_allowlist: Vec::new(),

            image_download_connection_timeout: 60,
            image_download_connection_retries: 9,
            image_download_connection_retry_interval: 10,
            image_download_max_duration: 0,
            image_server_auth_strategy: ImageServerAuthStrategy::Noauth,
            image_server_user: None,
            image_server_password: None,
            md5_enabled: true,
            disable_deep_image_inspection: false,
            permitted_image_formats: Self::DEFAULT_PERMITTED_IMAGE_FORMATS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            guard_special_filesystems: true,
            disable_bootc_deploy: false,
            enable_bios_bootloader_install: false,
            ignore_bootloader_failure: None,
            inject_files_priority: 0,
            config_drive_rebuild: false,
            introspection_daemon: false,
            introspection_daemon_post_interval: 300,

            debug: false,
            log_file: None,
            use_stderr: false,
            standalone: false,

            boot_if: None,
            kernel_params: BTreeMap::new(),

            paths: HostPaths::default(),
            coreos: CoreosEnv::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_are_ipas() {
        let c = AgentConfig::default();
        assert!(c.api_url.is_empty());
        assert_eq!(c.listen_port, 9999);
        assert_eq!(c.advertise_port, 9999);
        assert_eq!(c.lookup_timeout, 600);
        assert_eq!(c.lookup_interval, 1);
        assert_eq!(c.inspection_collectors, vec!["default", "logs"]);
        assert_eq!(c.permitted_image_formats, vec!["raw", "gpt", "qcow2"]);
        assert_eq!(c.tls_min_version, TlsVersion::V1_2);
        assert_eq!(c.tls_certificate_curve, TlsCurve::P384);
        assert!(c.enable_auto_tls);
        assert!(c.md5_enabled);
        assert!(c.guard_special_filesystems);
        assert_eq!(c.max_request_body_bytes, 16 * 1024 * 1024);
        assert_eq!(c.paths.host_root, PathBuf::from("/mnt/coreos"));
        assert_eq!(c.paths.state_dir, PathBuf::from("/run/ironic-agent"));
        assert_eq!(c.paths.etc_root, PathBuf::from("/"));
    }

    #[test]
    fn config_secret_is_redacted_in_debug_and_json() {
        let c = AgentConfig {
            agent_token: Some(Secret::new("s3cr3t-token")),
            image_server_password: Some(Secret::new("hunter2")),
            ..AgentConfig::default()
        };
        let debug = format!("{c:?}");
        let json = serde_json::to_string(&c).expect("serializable");
        for text in [&debug, &json] {
            assert!(!text.contains("s3cr3t-token"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("***"));
        }
        assert_eq!(
            c.agent_token.as_ref().map(Secret::expose),
            Some("s3cr3t-token")
        );
    }

    #[test]
    fn config_json_round_trip_keeps_enums_and_defaults() {
        let json = r#"{"tls_min_version": "1.3", "advertise_protocol": "https",
                       "agent_token": "abc", "paths": {"host_root": "/x"}}"#;
        let c: AgentConfig = serde_json::from_str(json).expect("valid config JSON");
        assert_eq!(c.tls_min_version, TlsVersion::V1_3);
        assert_eq!(c.advertise_protocol, AdvertiseProtocol::Https);
        assert_eq!(c.agent_token.as_ref().map(Secret::expose), Some("abc"));
        assert_eq!(c.paths.host_root, PathBuf::from("/x"));
        assert_eq!(c.paths.sys_root, PathBuf::from("/sys"));
        assert_eq!(c.listen_port, 9999);
        let out = serde_json::to_value(&c).expect("serializable");
        assert_eq!(out["tls_min_version"], "1.3");
        assert_eq!(out["tls_certificate_curve"], "p384");
        assert_eq!(out["image_server_auth_strategy"], "noauth");
    }

    #[test]
    fn config_enums_parse() {
        assert_eq!("1.3".parse::<TlsVersion>(), Ok(TlsVersion::V1_3));
        assert!("1.1".parse::<TlsVersion>().is_err());
        assert_eq!("P521".parse::<TlsCurve>(), Ok(TlsCurve::P521));
        assert_eq!(
            "https".parse::<AdvertiseProtocol>(),
            Ok(AdvertiseProtocol::Https)
        );
        assert_eq!(
            "http_basic".parse::<ImageServerAuthStrategy>(),
            Ok(ImageServerAuthStrategy::HttpBasic)
        );
        let err = "ftp"
            .parse::<AdvertiseProtocol>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("expected one of http, https, got \"ftp\"")
        );
    }

    #[test]
    fn config_coreos_copy_network() {
        let mut env = CoreosEnv::default();
        assert!(!env.copy_network_enabled());
        env.copy_network = Some("TRUE".into());
        assert!(env.copy_network_enabled());
        env.copy_network = Some("yes".into());
        assert!(!env.copy_network_enabled());
    }
}
