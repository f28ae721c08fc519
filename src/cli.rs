//! The command line: exactly the flags of the CLI contract (issue 2).
//!
//! Flags that mirror configuration options are `Option`s so that "not given" is visible
//! and the precedence rules of [`crate::config::load`] can apply: a flag only wins when
//! it is present. Boolean option flags take an optional value: `--insecure` means true,
//! `--insecure=false` (any oslo boolean spelling) means false.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ironic_agent_actors::config::Secret;

/// `ironic-agent`: an IPA-compatible provisioning agent for Ironic on CoreOS.
///
/// Configuration comes from, lowest precedence first: built-in defaults, the kernel
/// command line, `--config-file` files in order, every `*.conf` in `--config-dir` in name
/// order, and these flags.
#[derive(Debug, Clone, Parser)]
#[command(name = "ironic-agent", disable_version_flag = true)]
pub struct Cli {
    /// INI configuration file (oslo.config style); may be repeated, later files win.
    #[arg(long = "config-file", value_name = "FILE", global = true)]
    pub config_file: Vec<PathBuf>,

    /// Directory whose `*.conf` files are read in name order, after every --config-file.
    #[arg(long, value_name = "DIR", global = true)]
    pub config_dir: Option<PathBuf>,

    /// Ironic API URL(s), comma separated (`api_url`).
    #[arg(long, value_name = "URL[,URL...]", global = true)]
    pub api_url: Option<String>,

    /// Inspection callback URL; empty disables inspection (`inspection_callback_url`).
    #[arg(long, value_name = "URL", global = true)]
    pub inspection_callback_url: Option<String>,

    /// Address the API binds to (`listen_host`).
    #[arg(long, value_name = "HOST", global = true)]
    pub listen_host: Option<String>,

    /// Port the API binds to (`listen_port`).
    #[arg(long, value_name = "PORT", global = true)]
    pub listen_port: Option<u16>,

    /// Host advertised to Ironic in the callback URL (`advertise_host`).
    #[arg(long, value_name = "HOST", global = true)]
    pub advertise_host: Option<String>,

    /// Port advertised to Ironic in the callback URL (`advertise_port`).
    #[arg(long, value_name = "PORT", global = true)]
    pub advertise_port: Option<u16>,

    /// Pre-shared agent token (`agent_token`). Prefer a config file: flags are visible
    /// in the process list.
    #[arg(long, value_name = "TOKEN", value_parser = parse_secret, global = true)]
    pub agent_token: Option<Secret>,

    /// Serve the API over TLS with --tls-cert-file/--tls-key-file (`listen_tls`).
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse_flag_bool,
        global = true
    )]
    pub listen_tls: Option<bool>,

    /// Certificate for --listen-tls (`tls_cert_file`).
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_cert_file: Option<PathBuf>,

    /// Private key for --listen-tls (`tls_key_file`).
    #[arg(long, value_name = "FILE", global = true)]
    pub tls_key_file: Option<PathBuf>,

    /// Lowest TLS version, server and client (`tls_min_version`).
    #[arg(long, value_name = "VERSION", value_parser = ["1.2", "1.3"], global = true)]
    pub tls_min_version: Option<String>,

    /// Do not verify Ironic's TLS certificate (`insecure`).
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse_flag_bool,
        global = true
    )]
    pub insecure: Option<bool>,

    /// Log at debug level (`debug`).
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = parse_flag_bool,
        global = true
    )]
    pub debug: Option<bool>,

    /// Serve the API at once: no lookup, no heartbeat, no inspection.
    #[arg(long, global = true)]
    pub standalone: bool,

    /// The host's root file system, used with chroot [default: /mnt/coreos].
    #[arg(long, value_name = "DIR", global = true)]
    pub host_root: Option<PathBuf>,

    /// The agent's run-time state directory [default: /run/ironic-agent].
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// sysfs mount point, for tests [default: /sys].
    #[arg(long, value_name = "DIR", hide = true, global = true)]
    pub sys_root: Option<PathBuf>,

    /// Device directory, for tests [default: /dev].
    #[arg(long, value_name = "DIR", hide = true, global = true)]
    pub dev_root: Option<PathBuf>,

    /// procfs mount point, for tests [default: /proc].
    #[arg(long, value_name = "DIR", hide = true, global = true)]
    pub proc_root: Option<PathBuf>,

    /// File holding the kernel command line, for tests.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/proc/cmdline",
        hide = true,
        global = true
    )]
    pub cmdline_file: PathBuf,

    /// Only these block devices may be touched by steps or offered by the inventory
    /// (`block_device_allowlist`), comma separated.
    #[arg(long, value_name = "DEV[,DEV...]", global = true)]
    pub block_device_allowlist: Option<String>,

    /// Print the effective configuration as JSON (the token as `***`) and exit.
    #[arg(long, global = true)]
    pub dump_config: bool,

    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,

    /// What to do instead of running the agent.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands. Without one, the agent runs.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the hardware inventory as JSON and exit.
    Inventory {
        /// Root device hints as JSON, to also print the chosen install device.
        #[arg(long, value_name = "JSON")]
        root_device_hints: Option<String>,
    },
    /// Print the Ignition config that starts the agent container on a CoreOS
    /// ramdisk (conf file from `--api-url`, `--inspection-callback-url`,
    /// `--insecure`; the podman unit; pull secret; SSH key).
    Ignition(IgnitionArgs),
}

/// Arguments of the `ignition` subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct IgnitionArgs {
    /// Agent container image reference.
    #[arg(long, value_name = "IMAGE", default_value = crate::ignition::DEFAULT_IMAGE)]
    pub image: String,
    /// Pull the image without TLS verification.
    #[arg(long)]
    pub insecure_registry: bool,
    /// Registry pull secret (JSON file), installed as /etc/authfile.json.
    #[arg(long, value_name = "FILE")]
    pub pull_secret: Option<PathBuf>,
    /// SSH public key file for the `core` user.
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// Extra agent option written to the conf file (repeatable).
    #[arg(long = "conf-option", value_name = "KEY=VALUE")]
    pub conf_options: Vec<String>,
    /// Kernel `ip=` arguments for the installed system (IPA_COREOS_IP_OPTIONS).
    #[arg(long, value_name = "ARGS", default_value = "")]
    pub ip_options: String,
    /// Copy the ramdisk's network configuration (IPA_COREOS_COPY_NETWORK).
    #[arg(long)]
    pub copy_network: bool,
    /// Host name used when the ramdisk has none (IPA_DEFAULT_HOSTNAME).
    #[arg(long, value_name = "NAME", default_value = "")]
    pub default_hostname: String,
    /// HTTP_PROXY for podman and the agent.
    #[arg(long, value_name = "URL", default_value = "")]
    pub http_proxy: String,
    /// HTTPS_PROXY for podman and the agent.
    #[arg(long, value_name = "URL", default_value = "")]
    pub https_proxy: String,
    /// NO_PROXY for podman and the agent.
    #[arg(long, value_name = "HOSTS", default_value = "")]
    pub no_proxy: String,
    /// Print only the systemd unit, not the whole Ignition config.
    #[arg(long)]
    pub print_unit: bool,
}

/// Parses an oslo.config boolean (`true/false/yes/no/1/0/on/off`, any case).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// clap value parser for boolean option flags.
fn parse_flag_bool(value: &str) -> Result<bool, String> {
    parse_bool(value).ok_or_else(|| {
        format!("expected a boolean (true/false, yes/no, 1/0, on/off), got {value:?}")
    })
}

/// clap value parser for the token: wrapped at once so `Debug` of [`Cli`] hides it.
fn parse_secret(value: &str) -> Result<Secret, std::convert::Infallible> {
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ironic-agent").chain(args.iter().copied()))
    }

    #[test]
    fn config_cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_cli_no_flags_means_nothing_given() {
        let cli = parse(&[]).expect("empty command line parses");
        assert!(cli.config_file.is_empty());
        assert_eq!(cli.config_dir, None);
        assert_eq!(cli.insecure, None);
        assert_eq!(cli.debug, None);
        assert_eq!(cli.listen_tls, None);
        assert_eq!(cli.listen_port, None);
        assert!(!cli.standalone && !cli.dump_config && !cli.version);
        assert_eq!(cli.cmdline_file, PathBuf::from("/proc/cmdline"));
        assert!(cli.command.is_none());
    }

    #[test]
    fn config_cli_all_flags() {
        let cli = parse(&[
            "--config-file",
            "/a.conf",
            "--config-file=/b.conf",
            "--config-dir",
            "/etc/ironic-python-agent",
            "--api-url",
            "http://192.0.2.1:6385,https://[2001:db8::1]:6385",
            "--inspection-callback-url",
            "",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "9998",
            "--advertise-host",
            "192.0.2.9",
            "--advertise-port",
            "9997",
            "--agent-token",
            "tok-cli-5e1d",
            "--listen-tls",
            "--tls-cert-file",
            "/c.pem",
            "--tls-key-file",
            "/k.pem",
            "--tls-min-version",
            "1.3",
            "--insecure=False",
            "--debug",
            "--standalone",
            "--host-root",
            "/tmp/h",
            "--state-dir",
            "/tmp/s",
            "--sys-root",
            "/tmp/sys",
            "--dev-root",
            "/tmp/dev",
            "--proc-root",
            "/tmp/proc",
            "--cmdline-file",
            "/tmp/cmdline",
            "--block-device-allowlist",
            "/dev/loop0,/dev/loop1",
            "--dump-config",
        ])
        .expect("all flags parse");
        assert_eq!(
            cli.config_file,
            vec![PathBuf::from("/a.conf"), PathBuf::from("/b.conf")]
        );
        assert_eq!(cli.inspection_callback_url.as_deref(), Some(""));
        assert_eq!(cli.listen_port, Some(9998));
        assert_eq!(cli.listen_tls, Some(true));
        assert_eq!(cli.insecure, Some(false));
        assert_eq!(cli.debug, Some(true));
        assert_eq!(cli.tls_min_version.as_deref(), Some("1.3"));
        assert!(cli.standalone && cli.dump_config);
        assert_eq!(
            cli.agent_token.as_ref().map(Secret::expose),
            Some("tok-cli-5e1d")
        );
        assert!(
            !format!("{cli:?}").contains("tok-cli-5e1d"),
            "token leaked in Debug"
        );
        assert_eq!(
            cli.block_device_allowlist.as_deref(),
            Some("/dev/loop0,/dev/loop1")
        );
    }

    #[test]
    fn config_cli_rejects_bad_values() {
        assert!(parse(&["--listen-port", "abc"]).is_err());
        assert!(parse(&["--listen-port", "70000"]).is_err());
        assert!(parse(&["--tls-min-version", "1.1"]).is_err());
        assert!(parse(&["--insecure=maybe"]).is_err());
        assert!(parse(&["--config-dir", "a", "--config-dir", "b"]).is_err());
        assert!(parse(&["--no-such-flag"]).is_err());
    }

    #[test]
    fn config_cli_subcommands() {
        let cli = parse(&[
            "--debug",
            "inventory",
            "--root-device-hints",
            r#"{"size": 10}"#,
        ])
        .expect("inventory parses");
        assert_eq!(cli.debug, Some(true));
        match cli.command {
            Some(Command::Inventory { root_device_hints }) => {
                assert_eq!(root_device_hints.as_deref(), Some(r#"{"size": 10}"#));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Options are global, so they may follow the subcommand too.
        let cli = parse(&["inventory", "--block-device-allowlist", "/dev/vda"])
            .expect("global flag after subcommand");
        assert_eq!(cli.block_device_allowlist.as_deref(), Some("/dev/vda"));
        // A bare boolean flag does not swallow the subcommand.
        let cli = parse(&["--insecure", "ignition"]).expect("ignition parses");
        assert_eq!(cli.insecure, Some(true));
        assert!(matches!(cli.command, Some(Command::Ignition(_))));
    }

    #[test]
    fn config_cli_version_flag() {
        let cli = parse(&["--version"]).expect("--version parses");
        assert!(cli.version);
    }

    #[test]
    fn config_cli_parse_bool_accepts_oslo_spellings() {
        for t in ["True", "yes", "1", "ON", "true"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["False", "NO", "0", "off", "false"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_bool(""), None);
    }
}
