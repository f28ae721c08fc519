//! `ironic-agent ignition`: renders the Ignition config that starts the agent
//! on a CoreOS ramdisk — the conf file, the podman unit, an optional pull
//! secret and SSH key — as image-customization-controller does today.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Where the host's agent configuration lives (mounted into the container).
pub const CONF_PATH: &str = "/etc/ironic-python-agent.conf";
/// Where the registry pull secret lives on the host.
pub const AUTHFILE_PATH: &str = "/etc/authfile.json";
/// The unit's name.
pub const UNIT_NAME: &str = "ironic-agent.service";
/// The image reference used when none is given.
pub const DEFAULT_IMAGE: &str = "localhost/ironic-agent:latest";

/// Everything the generated Ignition depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnitionParams {
    /// Ironic API URLs (already validated), written as `api_url`.
    pub api_urls: Vec<String>,
    /// `inspection_callback_url`; written empty when unset, as ICC does.
    pub inspection_callback_url: Option<String>,
    /// Write `insecure = True`.
    pub insecure: bool,
    /// Extra `key = value` agent options, in order.
    pub extra_options: Vec<(String, String)>,
    /// The agent image reference.
    pub image: String,
    /// Pull without TLS verification.
    pub insecure_registry: bool,
    /// Registry pull secret (JSON), written to [`AUTHFILE_PATH`].
    pub pull_secret: Option<String>,
    /// SSH public key for the `core` user.
    pub ssh_key: Option<String>,
    /// `IPA_COREOS_IP_OPTIONS` (kernel `ip=` arguments).
    pub ip_options: String,
    /// `IPA_COREOS_COPY_NETWORK`.
    pub copy_network: bool,
    /// `IPA_DEFAULT_HOSTNAME` (the BareMetalHost name).
    pub default_hostname: String,
    /// `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` for the unit.
    pub proxies: Proxies,
}

/// Proxy settings passed to podman and the agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// `HTTP_PROXY`.
    pub http: String,
    /// `HTTPS_PROXY`.
    pub https: String,
    /// `NO_PROXY`.
    pub no_proxy: String,
}

/// The Ignition config subset we emit (spec 3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnitionConfig {
    /// Spec metadata.
    pub ignition: IgnitionMeta,
    /// Users (the `core` SSH key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwd: Option<Passwd>,
    /// Files.
    pub storage: Storage,
    /// Units.
    pub systemd: Systemd,
}

/// `ignition` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnitionMeta {
    /// Spec version, `3.2.0`.
    pub version: String,
}

/// `passwd` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passwd {
    /// Users to configure.
    pub users: Vec<User>,
}

/// One user entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User name.
    pub name: String,
    /// Authorized SSH keys.
    #[serde(rename = "sshAuthorizedKeys")]
    pub ssh_authorized_keys: Vec<String>,
}

/// `storage` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// Files to write.
    pub files: Vec<File>,
}

/// One file entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// Absolute path.
    pub path: String,
    /// Mode (decimal in JSON).
    pub mode: u32,
    /// Replace an existing file.
    pub overwrite: bool,
    /// Contents as a data URL.
    pub contents: FileContents,
}

/// File contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContents {
    /// A `data:` URL.
    pub source: String,
}

/// `systemd` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Systemd {
    /// Units to install.
    pub units: Vec<Unit>,
}

/// One unit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Unit name.
    pub name: String,
    /// Enable the unit.
    pub enabled: bool,
    /// Unit file contents.
    pub contents: String,
}

/// Errors of the generator's inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IgnitionError {
    /// No Ironic API URL was given.
    #[error("--api-url is required to render an Ignition config")]
    MissingApiUrl,
    /// An extra option is not `key=value` or would break the INI file.
    #[error("invalid --conf-option {0:?}: expected KEY=VALUE on one line")]
    BadOption(String),
    /// The pull secret is not JSON.
    #[error("the pull secret is not valid JSON: {0}")]
    BadPullSecret(String),
    /// A value would break the unit file.
    #[error("{0} must be a single line")]
    Multiline(&'static str),
}

/// Encodes file contents as a base64 `data:` URL.
pub fn data_url(contents: &str) -> String {
    format!(
        "data:text/plain;charset=utf-8;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(contents)
    )
}

/// Decodes a `data:` URL written by [`data_url`] (or a plain `data:,` URL).
pub fn decode_data_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    if meta.ends_with(";base64") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .ok()?;
        String::from_utf8(bytes).ok()
    } else {
        percent_decode(payload)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses `KEY=VALUE` extra options.
pub fn parse_extra_option(text: &str) -> Result<(String, String), IgnitionError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| IgnitionError::BadOption(text.to_string()))?;
    let key = key.trim();
    let valid_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_key || value.contains('\n') {
        return Err(IgnitionError::BadOption(text.to_string()));
    }
    Ok((key.to_string(), value.trim().to_string()))
}

/// Renders `/etc/ironic-python-agent.conf` in the shape ICC writes.
pub fn render_conf(params: &IgnitionParams) -> String {
    let mut conf = String::from("[DEFAULT]\n");
    let _ = writeln!(conf, "api_url = {}", params.api_urls.join(","));
    let _ = writeln!(
        conf,
        "inspection_callback_url = {}",
        params.inspection_callback_url.as_deref().unwrap_or("")
    );
    if params.insecure {
        conf.push_str("insecure = True\n");
    }
    for (key, value) in &params.extra_options {
        let _ = writeln!(conf, "{key} = {value}");
    }
    conf
}

/// Quotes a value for a systemd `Environment=` assignment.
fn env_assignment(name: &str, value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{name}={escaped}\"")
}

/// The agent's state directory, bound from the host's `/run` (restart recovery).
const STATE_DIR: &str = "/run/ironic-agent";

/// Renders the podman unit that runs the agent container.
pub fn render_unit(params: &IgnitionParams) -> String {
    let image = if params.image.is_empty() {
        DEFAULT_IMAGE
    } else {
        params.image.as_str()
    };
    let mut pull = format!("/bin/podman pull {image}");
    if params.insecure_registry {
        pull.push_str(" --tls-verify=false");
    }
    if params.pull_secret.is_some() {
        let _ = write!(pull, " --authfile={AUTHFILE_PATH}");
    }
    let copy_network = if params.copy_network { "true" } else { "false" };
    let mounts = [
        (CONF_PATH, "/etc/ironic-python-agent/ignition.conf"),
        ("/dev", "/dev"),
        ("/sys", "/sys"),
        ("/run/dbus/system_bus_socket", "/run/dbus/system_bus_socket"),
        ("/", "/mnt/coreos"),
        ("/run/udev", "/run/udev"),
        // Restart recovery: the agent's state survives a container restart, not a reboot.
        (STATE_DIR, STATE_DIR),
    ];
    let mut unit = String::new();
    unit.push_str("[Unit]\n");
    unit.push_str("Description=Ironic Agent (ironic-agent container)\n");
    unit.push_str("After=network-online.target\nWants=network-online.target\n");
    unit.push_str("StartLimitIntervalSec=0\n\n");
    unit.push_str("[Service]\n");
    let _ = writeln!(
        unit,
        "Environment={} {} {}",
        env_assignment("HTTP_PROXY", &params.proxies.http),
        env_assignment("HTTPS_PROXY", &params.proxies.https),
        env_assignment("NO_PROXY", &params.proxies.no_proxy)
    );
    unit.push_str("TimeoutStartSec=0\nRestart=on-failure\nRestartSec=5\n");
    let _ = writeln!(unit, "ExecStartPre={pull}");
    let _ = writeln!(unit, "ExecStartPre=/bin/mkdir -p -m 0700 {STATE_DIR}");
    unit.push_str(
        "ExecStart=/bin/podman run --rm --privileged --network host --ipc host --uts host \\\n",
    );
    for (source, target) in mounts {
        let _ = writeln!(unit, "    --volume {source}:{target} \\");
    }
    let _ = writeln!(
        unit,
        "    --env {} \\",
        env_assignment("IPA_COREOS_IP_OPTIONS", &params.ip_options)
    );
    let _ = writeln!(unit, "    --env IPA_COREOS_COPY_NETWORK={copy_network} \\");
    let _ = writeln!(
        unit,
        "    --env {} \\",
        env_assignment("IPA_DEFAULT_HOSTNAME", &params.default_hostname)
    );
    let _ = writeln!(unit, "    --name ironic-agent {image}");
    unit.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    unit
}

/// Checks the values that end up on single unit-file lines.
fn validate(params: &IgnitionParams) -> Result<(), IgnitionError> {
    if params.api_urls.is_empty() {
        return Err(IgnitionError::MissingApiUrl);
    }
    let single_line = [
        ("--image", &params.image),
        ("--ip-options", &params.ip_options),
        ("--default-hostname", &params.default_hostname),
        ("--http-proxy", &params.proxies.http),
        ("--https-proxy", &params.proxies.https),
        ("--no-proxy", &params.proxies.no_proxy),
    ];
    for (name, value) in single_line {
        if value.contains('\n') {
            return Err(IgnitionError::Multiline(name));
        }
    }
    if let Some(secret) = &params.pull_secret {
        serde_json::from_str::<serde_json::Value>(secret)
            .map_err(|err| IgnitionError::BadPullSecret(err.to_string()))?;
    }
    Ok(())
}

/// Builds the whole Ignition config.
pub fn render(params: &IgnitionParams) -> Result<IgnitionConfig, IgnitionError> {
    validate(params)?;
    let mut files = vec![File {
        path: CONF_PATH.to_string(),
        mode: 0o644,
        overwrite: true,
        contents: FileContents {
            source: data_url(&render_conf(params)),
        },
    }];
    if let Some(secret) = &params.pull_secret {
        files.push(File {
            path: AUTHFILE_PATH.to_string(),
            mode: 0o600,
            overwrite: true,
            contents: FileContents {
                source: data_url(secret),
            },
        });
    }
    let passwd = params.ssh_key.as_ref().map(|key| Passwd {
        users: vec![User {
            name: "core".to_string(),
            ssh_authorized_keys: vec![key.trim().to_string()],
        }],
    });
    Ok(IgnitionConfig {
        ignition: IgnitionMeta {
            version: "3.2.0".to_string(),
        },
        passwd,
        storage: Storage { files },
        systemd: Systemd {
            units: vec![Unit {
                name: UNIT_NAME.to_string(),
                enabled: true,
                contents: render_unit(params),
            }],
        },
    })
}

/// Builds the generator's parameters from the command line.
pub fn params_from_cli(
    cli: &crate::cli::Cli,
    args: &crate::cli::IgnitionArgs,
) -> anyhow::Result<IgnitionParams> {
    use anyhow::Context as _;
    let api_urls = match &cli.api_url {
        Some(text) => crate::config::options::api_urls(text)
            .map_err(anyhow::Error::msg)
            .context("--api-url")?,
        None => Vec::new(),
    };
    let read = |path: &std::path::PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let extra_options = args
        .conf_options
        .iter()
        .map(|text| parse_extra_option(text))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IgnitionParams {
        api_urls,
        inspection_callback_url: cli
            .inspection_callback_url
            .clone()
            .filter(|url| !url.trim().is_empty()),
        insecure: cli.insecure.unwrap_or(false),
        extra_options,
        image: args.image.clone(),
        insecure_registry: args.insecure_registry,
        pull_secret: args.pull_secret.as_ref().map(read).transpose()?,
        ssh_key: args.ssh_key.as_ref().map(read).transpose()?,
        ip_options: args.ip_options.clone(),
        copy_network: args.copy_network,
        default_hostname: args.default_hostname.clone(),
        proxies: Proxies {
            http: args.http_proxy.clone(),
            https: args.https_proxy.clone(),
            no_proxy: args.no_proxy.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> IgnitionParams {
        IgnitionParams {
            api_urls: vec![
                "http://192.0.2.1:6385".into(),
                "https://[2001:db8::1]:6385".into(),
            ],
            inspection_callback_url: None,
            insecure: true,
            extra_options: vec![("enable_vlan_interfaces".into(), "all".into())],
            image: "quay.example/metal3/ironic-agent:v1".into(),
            pull_secret: Some(r#"{"auths": {}}"#.into()),
            ssh_key: Some("ssh-ed25519 AAAA test@example\n".into()),
            ip_options: "ip=eth0:dhcp".into(),
            copy_network: true,
            default_hostname: "worker-0".into(),
            ..IgnitionParams::default()
        }
    }

    #[test]
    fn round_trips_through_json() {
        let config = render(&params()).expect("render");
        let json = serde_json::to_string(&config).expect("serialize");
        let back: IgnitionConfig = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, config);
        let value: serde_json::Value = serde_json::from_str(&json).expect("value");
        assert_eq!(value["ignition"]["version"], "3.2.0");
        assert_eq!(value["storage"]["files"][0]["mode"], 420);
        assert_eq!(value["storage"]["files"][1]["mode"], 384);
        assert_eq!(
            value["passwd"]["users"][0]["sshAuthorizedKeys"][0],
            "ssh-ed25519 AAAA test@example"
        );
        assert_eq!(value["systemd"]["units"][0]["enabled"], true);
    }

    #[test]
    fn conf_is_embedded_as_data_url() {
        let config = render(&params()).expect("render");
        let conf = decode_data_url(&config.storage.files[0].contents.source).expect("decode");
        assert_eq!(conf, render_conf(&params()));
        assert!(conf.contains("inspection_callback_url = \n"));
        assert!(conf.contains("api_url = http://192.0.2.1:6385,https://[2001:db8::1]:6385\n"));
    }

    #[test]
    fn unit_carries_mounts_env_and_pull_options() {
        let unit = render_unit(&params());
        for needle in [
            "--volume /:/mnt/coreos",
            "--volume /run/dbus/system_bus_socket:/run/dbus/system_bus_socket",
            "--volume /etc/ironic-python-agent.conf:/etc/ironic-python-agent/ignition.conf",
            "--env \"IPA_COREOS_IP_OPTIONS=ip=eth0:dhcp\"",
            "--env IPA_COREOS_COPY_NETWORK=true",
            "--env \"IPA_DEFAULT_HOSTNAME=worker-0\"",
            "--authfile=/etc/authfile.json",
            "Restart=on-failure",
            "--name ironic-agent quay.example/metal3/ironic-agent:v1",
        ] {
            assert!(unit.contains(needle), "missing {needle:?} in\n{unit}");
        }
        assert!(!unit.contains("--tls-verify=false"));
    }

    #[test]
    fn bad_inputs_are_rejected() {
        let mut missing = params();
        missing.api_urls.clear();
        assert_eq!(render(&missing), Err(IgnitionError::MissingApiUrl));
        let mut secret = params();
        secret.pull_secret = Some("not json".into());
        assert!(matches!(
            render(&secret),
            Err(IgnitionError::BadPullSecret(_))
        ));
        let mut hostname = params();
        hostname.default_hostname = "a\nb".into();
        assert!(matches!(
            render(&hostname),
            Err(IgnitionError::Multiline(_))
        ));
        assert!(parse_extra_option("no-equals").is_err());
        assert!(parse_extra_option("bad key=1").is_err());
        assert_eq!(
            parse_extra_option("collect_lldp = True").expect("valid"),
            ("collect_lldp".to_string(), "True".to_string())
        );
    }

    #[test]
    fn plain_data_urls_decode() {
        assert_eq!(decode_data_url("data:,a%20b").as_deref(), Some("a b"));
        assert_eq!(decode_data_url("http://x"), None);
    }
}
