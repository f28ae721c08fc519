//! Tests of configuration loading as a whole.

use std::path::{Path, PathBuf};

use clap::Parser;
use ironic_agent_actors::config::{Secret, TlsVersion};
use tempfile::TempDir;

use super::*;

/// A scratch directory holding a kernel command line and config files.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Writes `name` (may contain `/`) and returns its path.
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command line whose kernel command line is `cmdline` (empty file when `None`).
    fn cli(&self, cmdline: Option<&str>, args: &[&str]) -> Cli {
        let cmdline_file = self.write("cmdline", cmdline.unwrap_or(""));
        let mut argv = vec![
            "ironic-agent".to_string(),
            "--cmdline-file".to_string(),
            cmdline_file.display().to_string(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        Cli::try_parse_from(argv).expect("valid command line")
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_ok(cli: &Cli) -> LoadedConfig {
    match load_with_env(cli, no_env) {
        Ok(loaded) => loaded,
        Err(err) => panic!("load failed: {err:#}"),
    }
}

fn load_err(cli: &Cli) -> String {
    match load_with_env(cli, no_env) {
        Ok(loaded) => panic!("expected an error, got {:?}", loaded.config),
        Err(err) => format!("{err:#}"),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn config_defaults_without_any_input() {
    let scratch = Scratch::new();
    let loaded = load_ok(&scratch.cli(None, &[]));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert!(c.api_url.is_empty());
    assert_eq!(c.listen_port, 9999);
    assert_eq!(c.listen_host, "::");
    assert!(!c.debug && !c.insecure && !c.standalone);
    assert!(c.agent_token.is_none());
    assert_eq!(c.paths.host_root, PathBuf::from("/mnt/coreos"));
    assert_eq!(c.paths.state_dir, PathBuf::from("/run/ironic-agent"));
    assert_eq!(c.paths.sys_root, PathBuf::from("/sys"));
    assert_eq!(c.coreos, CoreosEnv::default());
}

/// The same option at every level; peel the levels off from the top.
#[test]
fn config_precedence_defaults_cmdline_files_dir_flags() {
    let scratch = Scratch::new();
    let cmdline = "ro ipa-listen-port=1001 ipa-debug=0 ipa-api-url=http://kernel:6385";
    let file_a = scratch.write("a.conf", "[DEFAULT]\nlisten_port = 1002\ndebug = yes\n");
    let file_b = scratch.write("b.conf", "[DEFAULT]\nlisten_port = 1003\n");
    scratch.write("d/20-late.conf", "[DEFAULT]\nlisten_port = 1005\n");
    scratch.write(
        "d/10-early.conf",
        "[DEFAULT]\nlisten_port = 1004\ndebug = off\n",
    );
    let dir = scratch.path("d");
    let (a, b, d) = (s(&file_a), s(&file_b), s(&dir));

    let port = |cmdline: Option<&str>, args: &[&str]| {
        let c = load_ok(&scratch.cli(cmdline, args)).config;
        (c.listen_port, c.debug)
    };
    let all: [&str; 9] = [
        "--config-file",
        a.as_str(),
        "--config-file",
        b.as_str(),
        "--config-dir",
        d.as_str(),
        "--listen-port",
        "1006",
        "--debug",
    ];
    assert_eq!(port(Some(cmdline), &all), (1006, true));
    // Without flags: the dir wins, its files in name order (20-late after 10-early).
    assert_eq!(port(Some(cmdline), &all[..6]), (1005, false));
    // Without the dir: the last --config-file wins.
    assert_eq!(port(Some(cmdline), &all[..4]), (1003, true));
    assert_eq!(port(Some(cmdline), &all[..2]), (1002, true));
    // Without files: the kernel command line.
    assert_eq!(port(Some(cmdline), &[]), (1001, false));
    // Nothing: the default.
    assert_eq!(port(None, &[]), (9999, false));

    // Options set at one level only survive the levels above.
    let c = load_ok(&scratch.cli(Some(cmdline), &all)).config;
    assert_eq!(c.api_url, vec!["http://kernel:6385"]);
}

#[test]
fn config_flags_override_booleans_both_ways() {
    let scratch = Scratch::new();
    let f = scratch.write("f.conf", "[DEFAULT]\ninsecure = True\nlisten_tls = false\n");
    let f = s(&f);
    let c = load_ok(&scratch.cli(
        None,
        &["--config-file", &f, "--insecure=false", "--listen-tls"],
    ))
    .config;
    assert!(!c.insecure);
    assert!(c.listen_tls);
}

/// The file image-customization-controller writes, byte for byte in shape: leading
/// newline, `[DEFAULT]`, several URLs with IPv6 in brackets, an empty callback URL with
/// a trailing space, `insecure = True`, `enable_vlan_interfaces = all`.
const ICC_CONF: &str = "
[DEFAULT]
api_url = http://192.0.2.1:6385,https://[2001:db8::1]:6385
inspection_callback_url = 
insecure = True
enable_vlan_interfaces = all
";

/// The container image's shipped defaults.
const IMAGE_DEFAULTS_CONF: &str = "[DEFAULT]
debug = True
log_file = /var/log/ironic-python-agent.log
use_stderr = True
collect_lldp = True
inspection_collectors = default,logs
inspection_dhcp_all_interfaces = True
";

#[test]
fn config_icc_conf_verbatim() {
    let scratch = Scratch::new();
    let f = scratch.write("ironic-python-agent.conf", ICC_CONF);
    let f = s(&f);
    // The kernel's callback URL is overridden by the file's empty one.
    let cmdline = "ipa-inspection-callback-url=http://192.0.2.1:5050/v1/continue";
    let loaded = load_ok(&scratch.cli(Some(cmdline), &["--config-file", &f]));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert_eq!(
        c.api_url,
        vec!["http://192.0.2.1:6385", "https://[2001:db8::1]:6385"]
    );
    assert_eq!(c.inspection_callback_url, None);
    assert!(c.insecure);
    assert_eq!(c.enable_vlan_interfaces, vec!["all"]);
}

#[test]
fn config_icc_conf_old_style_callback_and_vlan_list() {
    let scratch = Scratch::new();
    let conf = ICC_CONF
        .replace(
            "inspection_callback_url = \n",
            "inspection_callback_url = http://192.0.2.1:5050/v1/continue\n",
        )
        .replace("= all", "= eth0.100,eth1");
    let f = scratch.write("icc.conf", &conf);
    let c = load_ok(&scratch.cli(None, &["--config-file", &s(&f)])).config;
    assert_eq!(
        c.inspection_callback_url.as_deref(),
        Some("http://192.0.2.1:5050/v1/continue")
    );
    assert_eq!(c.enable_vlan_interfaces, vec!["eth0.100", "eth1"]);
}

/// The container's shape: `--config-dir /etc/ironic-python-agent` holding the image's
/// `00-defaults.conf` and the host's file as `ignition.conf`.
#[test]
fn config_container_config_dir_with_image_defaults() {
    let scratch = Scratch::new();
    scratch.write("etc/00-defaults.conf", IMAGE_DEFAULTS_CONF);
    scratch.write("etc/ignition.conf", ICC_CONF);
    scratch.write("etc/README", "not a conf file\n");
    scratch.write("etc/.hidden.conf", "[DEFAULT]\nlisten_port = 1\n");
    let dir = s(&scratch.path("etc"));
    let loaded = load_ok(&scratch.cli(None, &["--config-dir", &dir]));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert!(c.debug);
    assert_eq!(
        c.log_file,
        Some(PathBuf::from("/var/log/ironic-python-agent.log"))
    );
    assert!(c.use_stderr);
    assert!(c.collect_lldp);
    assert_eq!(c.inspection_collectors, vec!["default", "logs"]);
    assert!(c.inspection_dhcp_all_interfaces);
    assert_eq!(c.api_url.len(), 2);
    assert!(c.insecure);
    assert_eq!(c.listen_port, 9999);
}

#[test]
fn config_kernel_cmdline_mapping_and_quoting() {
    let scratch = Scratch::new();
    let cmdline = concat!(
        "BOOT_IMAGE=/images/vmlinuz ro quiet nomodeset ",
        "ipa-api-url=\"http://192.0.2.1:6385,https://[2001:db8::1]:6385/\" ",
        "ipa-inspection-callback-url=http://192.0.2.1:5050/v1/continue ",
        "ipa-insecure=1 ipa-debug=TRUE ipa-agent-token=678123 ",
        "ipa-advertise-host=192.0.2.9 ipa-listen-port=9998 ",
        "ipa-global-request-id=req-0b6f0c3e-3b1a-4f4e-9d44-7d0b0f5a1c2d ",
        "ipa-ip-lookup-timeout=7 ipa-inspection-collectors=default,extra-hardware ",
        "BOOTIF=01-52-54-00-12-34-56 boot_method=vmedia ipa-use-mdns=0 ",
        "ip=dhcp \"console=ttyS0,115200n8\" dyndbg=\"file x.c +p\" bare-token\n",
    );
    let c = load_ok(&scratch.cli(Some(cmdline), &[])).config;
    assert_eq!(
        c.api_url,
        vec!["http://192.0.2.1:6385", "https://[2001:db8::1]:6385"]
    );
    assert_eq!(
        c.inspection_callback_url.as_deref(),
        Some("http://192.0.2.1:5050/v1/continue")
    );
    assert!(c.insecure && c.debug);
    assert_eq!(c.agent_token.as_ref().map(Secret::expose), Some("678123"));
    assert_eq!(c.advertise_host.as_deref(), Some("192.0.2.9"));
    assert_eq!(c.listen_port, 9998);
    assert_eq!(
        c.global_request_id.as_deref(),
        Some("req-0b6f0c3e-3b1a-4f4e-9d44-7d0b0f5a1c2d")
    );
    assert_eq!(c.ip_lookup_sleep, 7);
    assert_eq!(c.inspection_collectors, vec!["default", "extra-hardware"]);
    assert_eq!(c.boot_if.as_deref(), Some("01-52-54-00-12-34-56"));
    let expected: BTreeMap<String, String> = [
        ("BOOT_IMAGE", "/images/vmlinuz"),
        ("boot_method", "vmedia"),
        ("ipa-use-mdns", "0"),
        ("ip", "dhcp"),
        ("console", "ttyS0,115200n8"),
        ("dyndbg", "file x.c +p"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(c.kernel_params, expected);
}

#[test]
fn config_missing_kernel_cmdline_is_a_warning() {
    let scratch = Scratch::new();
    let missing = s(&scratch.path("no-such-cmdline"));
    let cli = Cli::try_parse_from(["ironic-agent", "--cmdline-file", &missing]).expect("cli");
    let loaded = load_ok(&cli);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains(&missing),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn config_bad_kernel_value_names_the_parameter() {
    let scratch = Scratch::new();
    let err = load_err(&scratch.cli(Some("ipa-listen-port=abc"), &[]));
    assert!(err.contains("parameter ipa-listen-port"), "{err}");
    assert!(err.contains("option listen_port"), "{err}");
    // Overridden by a flag, the bad kernel value is never converted (oslo's rule).
    let c = load_ok(&scratch.cli(Some("ipa-listen-port=abc"), &["--listen-port", "1"])).config;
    assert_eq!(c.listen_port, 1);
}

#[test]
fn config_bad_values_name_file_line_and_option() {
    let scratch = Scratch::new();
    let f = scratch.write("bad.conf", "[DEFAULT]\n# ok\nlisten_port = abc\n");
    let err = load_err(&scratch.cli(None, &["--config-file", &s(&f)]));
    assert_eq!(
        err,
        format!(
            "failed to load the agent configuration: {}:3: invalid value for option listen_port: \
             expected an integer from 0 to 65535, got \"abc\"",
            f.display()
        )
    );

    let f = scratch.write("bad2.conf", "[DEFAULT]\n\ninsecure = maybe\n");
    let err = load_err(&scratch.cli(None, &["--config-file", &s(&f)]));
    assert!(err.contains(&format!("{}:3:", f.display())), "{err}");
    assert!(err.contains("option insecure"), "{err}");

    let f = scratch.write("bad3.conf", "[DEFAULT]\napi_url = 192.0.2.1:6385\n");
    let err = load_err(&scratch.cli(None, &["--config-file", &s(&f)]));
    assert!(err.contains(&format!("{}:2:", f.display())), "{err}");
    assert!(err.contains("option api_url"), "{err}");

    let f = scratch.write("bad4.conf", "[DEFAULT]\ntls_min_version = 1.1\n");
    let err = load_err(&scratch.cli(None, &["--config-file", &s(&f)]));
    assert!(err.contains("option tls_min_version"), "{err}");

    let err = load_err(&scratch.cli(None, &["--api-url", "ftp://x"]));
    assert!(err.contains("command-line flag --api-url"), "{err}");
}

#[test]
fn config_bad_value_in_an_overridden_file_is_harmless() {
    let scratch = Scratch::new();
    let a = scratch.write("a.conf", "[DEFAULT]\nlisten_port = abc\n");
    let b = scratch.write("b.conf", "[DEFAULT]\nlisten_port = 1234\n");
    let c = load_ok(&scratch.cli(None, &["--config-file", &s(&a), "--config-file", &s(&b)])).config;
    assert_eq!(c.listen_port, 1234);
}

#[test]
fn config_malformed_ini_names_file_and_line() {
    let scratch = Scratch::new();
    scratch.write("d/00-good.conf", "[DEFAULT]\ndebug = True\n");
    let bad = scratch.write("d/10-bad.conf", "[DEFAULT]\ndebug = True\n[mdns\n");
    let err = load_err(&scratch.cli(None, &["--config-dir", &s(&scratch.path("d"))]));
    assert_eq!(
        err,
        format!(
            "failed to load the agent configuration: {}:3: section header is missing its closing ']'",
            bad.display()
        )
    );
}

#[test]
fn config_missing_inputs_are_errors() {
    let scratch = Scratch::new();
    let missing = s(&scratch.path("nope.conf"));
    let err = load_err(&scratch.cli(None, &["--config-file", &missing]));
    assert!(
        err.contains(&format!("cannot read config file {missing}")),
        "{err}"
    );

    let missing_dir = s(&scratch.path("nodir"));
    let err = load_err(&scratch.cli(None, &["--config-dir", &missing_dir]));
    assert!(
        err.contains(&format!("cannot read config directory {missing_dir}")),
        "{err}"
    );

    let file = s(&scratch.write("file.conf", "[DEFAULT]\n"));
    let err = load_err(&scratch.cli(None, &["--config-dir", &file]));
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn config_empty_config_dir_is_fine() {
    let scratch = Scratch::new();
    std::fs::create_dir(scratch.path("empty")).expect("mkdir");
    let loaded = load_ok(&scratch.cli(None, &["--config-dir", &s(&scratch.path("empty"))]));
    assert!(loaded.warnings.is_empty());
}

#[test]
fn config_unknown_options_are_warnings() {
    let scratch = Scratch::new();
    let f = scratch.write(
        "u.conf",
        "[DEFAULT]\nno_such_option = 1\napi_url = http://a:6385\nlog_dir = /var/log\n\
         [mdns]\nuse_mdns = true\n[DEFAULT]\nno_such_option = 2\n",
    );
    let loaded = load_ok(&scratch.cli(None, &["--config-file", &s(&f)]));
    assert_eq!(loaded.config.api_url, vec!["http://a:6385"]);
    let p = f.display();
    assert_eq!(
        loaded.warnings,
        vec![
            format!("{p}:2: unknown option \"no_such_option\" in [DEFAULT]; ignored"),
            format!("{p}:4: unknown option \"log_dir\" in [DEFAULT]; ignored"),
            format!(
                "{p}:6: option \"use_mdns\" in section [mdns] is not supported \
                 (only [DEFAULT] is read); ignored"
            ),
            format!("{p}:8: unknown option \"no_such_option\" in [DEFAULT]; ignored"),
        ]
    );
}

#[test]
fn config_ini_value_forms() {
    let scratch = Scratch::new();
    let f = scratch.write(
        "forms.conf",
        "[DEFAULT]\n\
         insecure: YES\n\
         collect_lldp = on\n\
         md5_enabled = 0\n\
         enable_auto_tls = Off\n\
         permitted_image_formats = raw , qcow2,,\n\
         inspection_collectors = default,\n    logs,\n    pci-devices\n\
         lldp_timeout = 2.5\n\
         tls_certificate_curve = p256\n\
         advertise_protocol = https\n\
         listen_host = \"127.0.0.1\"\n\
         lookup_timeout = 300\n\
         lookup_timeout = \n\
         block_device_allowlist = /dev/loop0, /dev/loop1\n\
         agent_token = 'abc def'\n\
         ignore_bootloader_failure = true\n",
    );
    let c = load_ok(&scratch.cli(None, &["--config-file", &s(&f)])).config;
    assert!(c.insecure && c.collect_lldp && !c.md5_enabled && !c.enable_auto_tls);
    assert_eq!(c.permitted_image_formats, vec!["raw", "qcow2"]);
    assert_eq!(
        c.inspection_collectors,
        vec!["default", "logs", "pci-devices"]
    );
    assert_eq!(c.lldp_timeout, 2.5);
    assert_eq!(c.tls_certificate_curve.as_str(), "p256");
    assert_eq!(c.advertise_protocol.as_str(), "https");
    assert_eq!(c.listen_host, "127.0.0.1");
    // The last assignment wins, and an empty number keeps the default.
    assert_eq!(c.lookup_timeout, 600);
    assert_eq!(c.block_device_allowlist, vec!["/dev/loop0", "/dev/loop1"]);
    assert_eq!(c.agent_token.as_ref().map(Secret::expose), Some("abc def"));
    assert_eq!(c.ignore_bootloader_failure, Some(true));
}

#[test]
fn config_every_flag_reaches_the_config() {
    let scratch = Scratch::new();
    let c = load_ok(&scratch.cli(
        None,
        &[
            "--api-url",
            "http://192.0.2.1:6385/,https://[2001:db8::1]:6385",
            "--inspection-callback-url",
            "http://192.0.2.1:5050/v1/continue",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "19999",
            "--advertise-host",
            "192.0.2.7",
            "--advertise-port",
            "19998",
            "--agent-token",
            "tok-from-flag",
            "--listen-tls",
            "--tls-cert-file",
            "/c.pem",
            "--tls-key-file",
            "/k.pem",
            "--tls-min-version",
            "1.3",
            "--insecure",
            "--debug",
            "--standalone",
            "--host-root",
            "/h",
            "--state-dir",
            "/s",
            "--sys-root",
            "/fake/sys",
            "--dev-root",
            "/fake/dev",
            "--proc-root",
            "/fake/proc",
            "--block-device-allowlist",
            "/dev/loop7",
        ],
    ))
    .config;
    assert_eq!(
        c.api_url,
        vec!["http://192.0.2.1:6385", "https://[2001:db8::1]:6385"]
    );
    assert_eq!(
        c.inspection_callback_url.as_deref(),
        Some("http://192.0.2.1:5050/v1/continue")
    );
    assert_eq!(c.listen_host, "127.0.0.1");
    assert_eq!((c.listen_port, c.advertise_port), (19999, 19998));
    assert_eq!(c.advertise_host.as_deref(), Some("192.0.2.7"));
    assert_eq!(
        c.agent_token.as_ref().map(Secret::expose),
        Some("tok-from-flag")
    );
    assert!(c.listen_tls && c.insecure && c.debug && c.standalone);
    assert_eq!(c.tls_cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.tls_key_file, Some(PathBuf::from("/k.pem")));
    assert_eq!(c.tls_min_version, TlsVersion::V1_3);
    assert_eq!(c.paths.host_root, PathBuf::from("/h"));
    assert_eq!(c.paths.state_dir, PathBuf::from("/s"));
    assert_eq!(c.paths.sys_root, PathBuf::from("/fake/sys"));
    assert_eq!(c.paths.dev_root, PathBuf::from("/fake/dev"));
    assert_eq!(c.paths.proc_root, PathBuf::from("/fake/proc"));
    assert_eq!(c.paths.etc_root, PathBuf::from("/"));
    assert_eq!(c.block_device_allowlist, vec!["/dev/loop7"]);
}

#[test]
fn config_empty_flag_unsets_the_callback_url() {
    let scratch = Scratch::new();
    let f = scratch.write(
        "f.conf",
        "[DEFAULT]\ninspection_callback_url = http://x:5050/v1/continue\n",
    );
    let c = load_ok(&scratch.cli(
        None,
        &["--config-file", &s(&f), "--inspection-callback-url", ""],
    ))
    .config;
    assert_eq!(c.inspection_callback_url, None);
}

#[test]
fn config_coreos_environment() {
    let scratch = Scratch::new();
    let cli = scratch.cli(None, &[]);
    let env = |name: &str| match name {
        "IPA_COREOS_IP_OPTIONS" => Some("ip=dhcp6".to_string()),
        "IPA_COREOS_COPY_NETWORK" => Some("True".to_string()),
        "IPA_DEFAULT_HOSTNAME" => Some("worker-0".to_string()),
        _ => None,
    };
    let c = load_with_env(&cli, env).expect("loads").config;
    assert_eq!(c.coreos.ip_options.as_deref(), Some("ip=dhcp6"));
    assert!(c.coreos.copy_network_enabled());
    assert_eq!(c.coreos.default_hostname.as_deref(), Some("worker-0"));

    // Empty variables count as unset.
    let env = |_: &str| Some(String::new());
    let c = load_with_env(&cli, env).expect("loads").config;
    assert_eq!(c.coreos, CoreosEnv::default());
    assert!(!c.coreos.copy_network_enabled());
}

#[test]
fn config_token_never_in_dump_or_debug() {
    let scratch = Scratch::new();
    let f = scratch.write(
        "t.conf",
        "[DEFAULT]\nagent_token = file-token-4d2c\nimage_server_password = pw-9f1e\n",
    );
    for args in [
        vec!["--config-file".to_string(), s(&f)],
        vec!["--agent-token".to_string(), "flag-token-7a3b".to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let loaded = load_ok(&scratch.cli(Some("ipa-agent-token=kernel-token-1c5e"), &args));
        let dump = dump_config_json(&loaded.config);
        let debug = format!("{loaded:?}");
        for text in [&dump, &debug] {
            for secret in [
                "file-token-4d2c",
                "pw-9f1e",
                "flag-token-7a3b",
                "kernel-token-1c5e",
            ] {
                assert!(!text.contains(secret), "{secret} leaked: {text}");
            }
        }
        let json: serde_json::Value = serde_json::from_str(&dump).expect("dump is JSON");
        assert_eq!(json["agent_token"], "***");
        assert!(loaded.config.agent_token.is_some());
    }
}

#[test]
fn config_dump_is_pretty_json_of_everything() {
    let scratch = Scratch::new();
    let c = load_ok(&scratch.cli(None, &["--api-url", "http://a:6385"])).config;
    let dump = dump_config_json(&c);
    assert!(dump.contains("\n  \"api_url\": [\n"), "{dump}");
    let json: serde_json::Value = serde_json::from_str(&dump).expect("dump is JSON");
    assert_eq!(json["api_url"][0], "http://a:6385");
    assert_eq!(json["agent_token"], serde_json::Value::Null);
    assert_eq!(json["tls_min_version"], "1.2");
    assert_eq!(json["paths"]["host_root"], "/mnt/coreos");
    assert_eq!(json["max_request_body_bytes"], 16 * 1024 * 1024);
}
