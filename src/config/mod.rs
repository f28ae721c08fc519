//! Loading the agent configuration the way IPA does, so the same inputs configure us.
//!
//! Sources, lowest precedence first:
//! 1. built-in defaults ([`AgentConfig::default`], IPA's);
//! 2. the kernel command line (`--cmdline-file`, default `/proc/cmdline`): `ipa-*`
//!    parameters per `ipa-protocol.md` §9.2, `BOOTIF`; the rest lands in `kernel_params`;
//! 3. every `--config-file`, in the order given;
//! 4. every `*.conf` in `--config-dir`, in name order;
//! 5. command-line flags;
//! 6. the environment, for the CoreOS fields only (`IPA_COREOS_*`, `IPA_DEFAULT_HOSTNAME`).
//!
//! Within one file the last assignment wins. Only the winning value of each option is
//! converted (as oslo.config does), so a bad value that is overridden is harmless; a bad
//! winning value is an error naming its file and line (or kernel parameter, or flag).
//! Unknown options give one warning each. Only `[DEFAULT]` is read; options in other
//! sections give a warning.
//!
//! Differences from IPA, on purpose: no default config file search (the container
//! always passes `--config-dir`), `ipa-debug` is an ordinary kernel default rather than
//! an override, and vmedia `parameters.txt` is not read.

pub mod cmdline;
pub mod ini;
pub mod options;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ironic_agent_actors::config::{AgentConfig, CoreosEnv};

use crate::cli::Cli;

/// The loaded configuration and the warnings found on the way. Logging is set up after
/// loading (it depends on `debug`), so the caller logs the warnings once.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The effective configuration.
    pub config: AgentConfig,
    /// Non-fatal problems: unknown options, unreadable kernel command line, …
    pub warnings: Vec<String>,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of an INI file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line of the option.
        line: usize,
    },
    /// A kernel command line parameter.
    KernelCmdline {
        /// The file the command line was read from.
        path: PathBuf,
        /// The parameter name (`ipa-api-url`, …).
        param: String,
    },
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::KernelCmdline { path, param } => write!(
                f,
                "kernel command line ({}), parameter {param}",
                path.display()
            ),
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

/// A configuration error. Every variant names the file (and line) or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or directory could not be read.
    #[error("cannot read {what} {}", path.display())]
    Io {
        /// What was being read ("config file", "config directory").
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `--config-dir` is not a directory.
    #[error("config directory {} is not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Malformed INI.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value that does not fit its option.
    #[error("{origin}: invalid value for option {option}: {reason}")]
    InvalidValue {
        /// Where the value came from.
        origin: Origin,
        /// The option name.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A raw value and where it came from.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    origin: Origin,
}

/// Everything gathered before conversion: the last raw value of each option, plus the
/// fields that do not go through the option table.
#[derive(Debug, Default)]
struct Gathered {
    values: BTreeMap<&'static str, Raw>,
    boot_if: Option<String>,
    kernel_params: BTreeMap<String, String>,
    warnings: Vec<String>,
}

impl Gathered {
    fn set(&mut self, option: &'static str, value: impl Into<String>, origin: Origin) {
        self.values.insert(
            option,
            Raw {
                value: value.into(),
                origin,
            },
        );
    }
}

/// Loads the configuration from every source (see the module documentation), reading
/// the CoreOS variables from the process environment.
pub fn load(cli: &Cli) -> anyhow::Result<LoadedConfig> {
    load_with_env(cli, |name| {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    })
}

/// Like [`load`], with the environment supplied by `env` (for tests).
pub fn load_with_env(
    cli: &Cli,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<LoadedConfig> {
    build(cli, &env).context("failed to load the agent configuration")
}

/// The effective configuration as pretty JSON; secrets are shown as `***`.
pub fn dump_config_json(cfg: &AgentConfig) -> String {
    serde_json::to_string_pretty(cfg)
        .unwrap_or_else(|err| format!("{{\"error\": {:?}}}", err.to_string()))
}

fn build(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<LoadedConfig, ConfigError> {
    let mut gathered = Gathered::default();

    read_kernel_cmdline(&cli.cmdline_file, &mut gathered);
    for file in &cli.config_file {
        read_ini_file(file, &mut gathered)?;
    }
    if let Some(dir) = &cli.config_dir {
        for file in conf_files_in(dir)? {
            read_ini_file(&file, &mut gathered)?;
        }
    }
    apply_flags(cli, &mut gathered);

    let mut config = AgentConfig {
        boot_if: gathered.boot_if,
        kernel_params: gathered.kernel_params,
        ..AgentConfig::default()
    };
    for (name, raw) in gathered.values {
        let spec = options::find(name).ok_or_else(|| ConfigError::InvalidValue {
            origin: raw.origin.clone(),
            option: name,
            reason: "internal error: option missing from the table".to_string(),
        })?;
        (spec.apply)(&mut config, &raw.value).map_err(|reason| ConfigError::InvalidValue {
            origin: raw.origin,
            option: spec.name,
            reason,
        })?;
    }

    config.standalone = cli.standalone;
    let paths = &mut config.paths;
    let path_flags = [
        (&cli.host_root, &mut paths.host_root),
        (&cli.state_dir, &mut paths.state_dir),
        (&cli.sys_root, &mut paths.sys_root),
        (&cli.dev_root, &mut paths.dev_root),
        (&cli.proc_root, &mut paths.proc_root),
    ];
    for (flag, field) in path_flags {
        if let Some(path) = flag {
            field.clone_from(path);
        }
    }
    config.coreos = coreos_env(env);

    Ok(LoadedConfig {
        config,
        warnings: gathered.warnings,
    })
}

/// Reads the kernel command line; a missing or unreadable file is only a warning (as in
/// IPA, which then has no kernel parameters).
fn read_kernel_cmdline(path: &Path, gathered: &mut Gathered) {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => {
            gathered.warnings.push(format!(
                "cannot read the kernel command line from {}: {err}; ignoring it",
                path.display()
            ));
            return;
        }
    };
    let parsed = cmdline::parse(&text);
    if parsed.unterminated_quote {
        gathered.warnings.push(format!(
            "kernel command line ({}) has an unterminated double quote; it runs to the end",
            path.display()
        ));
    }
    for (param, value) in parsed.params {
        if param == "BOOTIF" {
            gathered.boot_if = (!value.is_empty()).then_some(value);
        } else if let Some(spec) = options::by_kernel_param(&param) {
            let origin = Origin::KernelCmdline {
                path: path.to_path_buf(),
                param,
            };
            gathered.set(spec.name, value, origin);
        } else {
            gathered.kernel_params.insert(param, value);
        }
    }
}

/// Reads one INI file into `gathered`: `[DEFAULT]` options are recorded, anything else
/// becomes a warning.
fn read_ini_file(path: &Path, gathered: &mut Gathered) -> Result<(), ConfigError> {
    for entry in ini::read(path)? {
        let place = format!("{}:{}", path.display(), entry.line);
        if entry.section != "DEFAULT" {
            gathered.warnings.push(format!(
                "{place}: option {:?} in section [{}] is not supported (only [DEFAULT] is read); ignored",
                entry.key, entry.section
            ));
            continue;
        }
        match options::find(&entry.key) {
            Some(spec) => {
                let origin = Origin::File {
                    path: path.to_path_buf(),
                    line: entry.line,
                };
                gathered.set(spec.name, entry.value, origin);
            }
            None => gathered.warnings.push(format!(
                "{place}: unknown option {:?} in [DEFAULT]; ignored",
                entry.key
            )),
        }
    }
    Ok(())
}

/// The `*.conf` files of `dir` (not hidden ones, not directories), in name order.
fn conf_files_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_err = |source| ConfigError::Io {
        what: "config directory",
        path: dir.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(io_err)?;
    if !meta.is_dir() {
        return Err(ConfigError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        let wanted = name
            .to_str()
            .is_some_and(|n| n.ends_with(".conf") && !n.starts_with('.'));
        // Follows symlinks: a link to a file counts, a directory never does.
        if wanted && !entry.path().is_dir() {
            files.push((name, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// Records the flags that mirror options.
fn apply_flags(cli: &Cli, gathered: &mut Gathered) {
    let bool_str = |b: bool| if b { "true" } else { "false" }.to_string();
    let path_str = |p: &PathBuf| p.to_string_lossy().into_owned();
    let flags: [(&'static str, &'static str, Option<String>); 14] = [
        ("api_url", "--api-url", cli.api_url.clone()),
        (
            "inspection_callback_url",
            "--inspection-callback-url",
            cli.inspection_callback_url.clone(),
        ),
        ("listen_host", "--listen-host", cli.listen_host.clone()),
        (
            "listen_port",
            "--listen-port",
            cli.listen_port.map(|p| p.to_string()),
        ),
        (
            "advertise_host",
            "--advertise-host",
            cli.advertise_host.clone(),
        ),
        (
            "advertise_port",
            "--advertise-port",
            cli.advertise_port.map(|p| p.to_string()),
        ),
        (
            "agent_token",
            "--agent-token",
            cli.agent_token.as_ref().map(|t| t.expose().to_string()),
        ),
        ("listen_tls", "--listen-tls", cli.listen_tls.map(bool_str)),
        (
            "tls_cert_file",
            "--tls-cert-file",
            cli.tls_cert_file.as_ref().map(path_str),
        ),
        (
            "tls_key_file",
            "--tls-key-file",
            cli.tls_key_file.as_ref().map(path_str),
        ),
        (
            "tls_min_version",
            "--tls-min-version",
            cli.tls_min_version.clone(),
        ),
        ("insecure", "--insecure", cli.insecure.map(bool_str)),
        ("debug", "--debug", cli.debug.map(bool_str)),
        (
            "block_device_allowlist",
            "--block-device-allowlist",
            cli.block_device_allowlist.clone(),
        ),
    ];
    for (option, flag, value) in flags {
        if let Some(value) = value {
            gathered.set(option, value, Origin::Flag(flag));
        }
    }
}

/// The CoreOS variables; empty ones count as unset.
fn coreos_env(env: &dyn Fn(&str) -> Option<String>) -> CoreosEnv {
    let get = |name: &str| env(name).filter(|v| !v.is_empty());
    CoreosEnv {
        ip_options: get("IPA_COREOS_IP_OPTIONS"),
        copy_network: get("IPA_COREOS_COPY_NETWORK"),
        default_hostname: get("IPA_DEFAULT_HOSTNAME"),
    }
}

#[cfg(test)]
mod tests;
