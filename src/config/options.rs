//! The table of options: IPA's name, its kernel parameter, and how a raw string value
//! is applied to [`AgentConfig`].
//!
//! Value rules (oslo.config's): booleans are `true/false/yes/no/1/0/on/off` in any case;
//! integers are decimal; lists are comma separated, items trimmed, empty items dropped.
//! An empty value unsets the option: optional values become `None`, lists become empty,
//! and options that cannot be unset (numbers, booleans, enums) keep the built-in default.

use std::path::PathBuf;
use std::str::FromStr;

use ironic_agent_actors::config::{
    AdvertiseProtocol, AgentConfig, ImageServerAuthStrategy, Secret, TlsCurve, TlsVersion,
};

use crate::cli::parse_bool;

/// Applies a raw value to the configuration, or explains why the value is invalid.
pub type Apply = fn(&mut AgentConfig, &str) -> Result<(), String>;

/// One configuration option.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The option name, as in IPA's `[DEFAULT]` section.
    pub name: &'static str,
    /// The kernel command line parameter that sets it, if IPA reads one.
    pub kernel_param: Option<&'static str>,
    /// Applies a raw value.
    pub apply: Apply,
}

/// Builds an [`OptionSpec`] for field `$field` whose value conversion is `$conv`, an
/// expression of type `Result<Option<T>, String>` using the raw value `$v`: `Ok(None)`
/// leaves the field alone.
macro_rules! opt {
    ($field:ident, $kernel:expr, |$v:ident| $conv:expr) => {
        OptionSpec {
            name: stringify!($field),
            kernel_param: $kernel,
            apply: |config: &mut AgentConfig, $v: &str| -> Result<(), String> {
                if let Some(value) = $conv? {
                    config.$field = value;
                }
                Ok(())
            },
        }
    };
}

/// Every option this agent reads, IPA's first, then this agent's own.
pub static OPTIONS: &[OptionSpec] = &[
    // Ironic API client.
    opt!(api_url, Some("ipa-api-url"), |v| api_urls(v).map(Some)),
    opt!(
        inspection_callback_url,
        Some("ipa-inspection-callback-url"),
        |v| { Ok::<_, String>(Some(optional(v))) }
    ),
    opt!(insecure, Some("ipa-insecure"), |v| boolean(v)),
    opt!(cafile, None, |v| Ok::<_, String>(Some(path(v)))),
    opt!(certfile, None, |v| Ok::<_, String>(Some(path(v)))),
    opt!(keyfile, None, |v| Ok::<_, String>(Some(path(v)))),
    opt!(
        http_request_timeout,
        Some("ipa-http-request-timeout"),
        |v| { integer::<u64>(v, u64::MAX) }
    ),
    opt!(ironic_api_version, Some("ipa-ironic-api-version"), |v| {
        api_version(v).map(Some)
    }),
    opt!(global_request_id, Some("ipa-global-request-id"), |v| {
        Ok::<_, String>(Some(optional(v)))
    }),
    opt!(
        lookup_timeout,
        Some("ipa-lookup-timeout"),
        |v| integer::<u64>(v, u64::MAX)
    ),
    opt!(lookup_interval, Some("ipa-lookup-interval"), |v| integer::<
        u64,
    >(
        v,
        u64::MAX
    )),
    // The agent's API.
    opt!(listen_host, Some("ipa-listen-host"), |v| Ok::<_, String>(
        optional(v)
    )),
    opt!(listen_port, Some("ipa-listen-port"), |v| integer::<u16>(
        v,
        u16::MAX.into()
    )),
    opt!(advertise_host, Some("ipa-advertise-host"), |v| {
        Ok::<_, String>(Some(optional(v)))
    }),
    opt!(advertise_port, Some("ipa-advertise-port"), |v| {
        integer::<u16>(v, u16::MAX.into())
    }),
    opt!(advertise_protocol, Some("ipa-advertise-protocol"), |v| {
        enumeration::<AdvertiseProtocol>(v)
    }),
    opt!(listen_tls, None, |v| boolean(v)),
    opt!(tls_cert_file, None, |v| Ok::<_, String>(Some(path(v)))),
    opt!(tls_key_file, None, |v| Ok::<_, String>(Some(path(v)))),
    opt!(tls_min_version, Some("ipa-tls-min-version"), |v| {
        enumeration::<TlsVersion>(v)
    }),
    opt!(tls_cipher_suites, Some("ipa-tls-cipher-suites"), |v| {
        Ok::<_, String>(Some(optional(v)))
    }),
    opt!(
        tls_certificate_curve,
        Some("ipa-tls-certificate-curve"),
        |v| { enumeration::<TlsCurve>(v) }
    ),
    opt!(enable_auto_tls, None, |v| boolean(v)),
    opt!(auto_tls_allowed_clock_skew, None, |v| integer::<u64>(
        v,
        u64::MAX
    )),
    opt!(agent_token, Some("ipa-agent-token"), |v| {
        Ok::<_, String>(Some(optional(v).map(Secret::new)))
    }),
    // Network discovery and inspection.
    opt!(collect_lldp, Some("ipa-collect-lldp"), |v| boolean(v)),
    opt!(lldp_timeout, Some("ipa-lldp-timeout"), |v| seconds_f64(v)),
    opt!(
        inspection_collectors,
        Some("ipa-inspection-collectors"),
        |v| { Ok::<_, String>(Some(list(v))) }
    ),
    opt!(
        inspection_dhcp_wait_timeout,
        Some("ipa-inspection-dhcp-wait-timeout"),
        |v| { integer::<u64>(v, u64::MAX) }
    ),
    opt!(
        inspection_dhcp_all_interfaces,
        Some("ipa-inspection-dhcp-all-interfaces"),
        |v| { boolean(v) }
    ),
    opt!(
        enable_vlan_interfaces,
        Some("ipa-enable-vlan-interfaces"),
        |v| { Ok::<_, String>(Some(list(v))) }
    ),
    opt!(network_interface, Some("ipa-network-interface"), |v| {
        Ok::<_, String>(Some(optional(v)))
    }),
    opt!(ip_lookup_attempts, Some("ipa-ip-lookup-attempts"), |v| {
        integer::<u32>(v, u32::MAX.into())
    }),
    opt!(
        ip_lookup_sleep,
        Some("ipa-ip-lookup-timeout"),
        |v| integer::<u64>(v, u64::MAX)
    ),
    opt!(ntp_server, Some("ipa-ntp-server"), |v| Ok::<_, String>(
        Some(optional(v))
    )),
    opt!(fail_if_clock_not_set, None, |v| boolean(v)),
    // Hardware.
    opt!(
        hardware_initialization_delay,
        Some("ipa-hardware-initialization-delay"),
        |v| { integer::<u64>(v, u64::MAX) }
    ),
    opt!(disk_wait_attempts, Some("ipa-disk-wait-attempts"), |v| {
        integer::<u32>(v, u32::MAX.into())
    }),
    opt!(disk_wait_delay, Some("ipa-disk-wait-delay"), |v| integer::<
        u64,
    >(
        v,
        u64::MAX
    )),
    // Image download and writing.
    opt!(
        image_download_connection_timeout,
        Some("ipa-image-download-connection-timeout"),
        |v| { integer::<u64>(v, u64::MAX) }
    ),
    opt!(
        image_download_connection_retries,
        Some("ipa-image-download-connection-retries"),
        |v| { integer::<u32>(v, u32::MAX.into()) }
    ),
    opt!(
        image_download_connection_retry_interval,
        Some("ipa-image-download-connection-retry-interval"),
        |v| integer::<u64>(v, u64::MAX)
    ),
    opt!(
        image_download_max_duration,
        Some("ipa-image-download-max-duration"),
        |v| { integer::<u64>(v, u64::MAX) }
    ),
    opt!(image_server_auth_strategy, None, |v| {
        enumeration::<ImageServerAuthStrategy>(v)
    }),
    opt!(image_server_user, None, |v| Ok::<_, String>(Some(
        optional(v)
    ))),
    opt!(image_server_password, None, |v| {
        Ok::<_, String>(Some(optional(v).map(Secret::new)))
    }),
    opt!(md5_enabled, None, |v| boolean(v)),
    opt!(disable_deep_image_inspection, None, |v| boolean(v)),
    opt!(permitted_image_formats, None, |v| Ok::<_, String>(Some(
        list(v)
    ))),
    opt!(
        guard_special_filesystems,
        Some("ipa-guard-special-filesystems"),
        |v| { boolean(v) }
    ),
    opt!(disable_bootc_deploy, None, |v| boolean(v)),
    opt!(enable_bios_bootloader_install, None, |v| boolean(v)),
    opt!(
        ignore_bootloader_failure,
        Some("ipa-ignore-bootloader-failure"),
        |v| { optional_boolean(v).map(Some) }
    ),
    opt!(
        inject_files_priority,
        Some("ipa-inject-files-priority"),
        |v| { integer::<u8>(v, 99) }
    ),
    opt!(config_drive_rebuild, None, |v| boolean(v)),
    opt!(introspection_daemon, None, |v| boolean(v)),
    opt!(
        introspection_daemon_post_interval,
        None,
        |v| integer::<u64>(v, u64::MAX)
    ),
    // Logging (oslo.log's options).
    opt!(debug, Some("ipa-debug"), |v| boolean(v)),
    opt!(log_file, None, |v| Ok::<_, String>(Some(path(v)))),
    opt!(use_stderr, None, |v| boolean(v)),
    // This agent's own options.
    opt!(block_device_allowlist, None, |v| Ok::<_, String>(Some(
        list(v)
    ))),
    opt!(max_request_body_bytes, None, |v| integer::<u64>(
        v,
        u64::MAX
    )),
];

/// The option called `name`.
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The option set by kernel parameter `param`.
pub fn by_kernel_param(param: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.kernel_param == Some(param))
}

/// An empty value becomes `None`.
fn optional(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A path; empty becomes `None`.
fn path(v: &str) -> Option<PathBuf> {
    optional(v).map(PathBuf::from)
}

/// A comma-separated list, items trimmed, empty items dropped.
pub fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// A boolean; empty keeps the default.
fn boolean(v: &str) -> Result<Option<bool>, String> {
    if v.trim().is_empty() {
        return Ok(None);
    }
    parse_bool(v)
        .map(Some)
        .ok_or_else(|| format!("expected a boolean (true/false, yes/no, 1/0, on/off), got {v:?}"))
}

/// An optional boolean: empty means unset.
fn optional_boolean(v: &str) -> Result<Option<bool>, String> {
    boolean(v)
}

/// A decimal integer from 0 to `max`; empty keeps the default.
fn integer<T: TryFrom<u64>>(v: &str, max: u64) -> Result<Option<T>, String> {
    let trimmed = v.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let expected = || format!("expected an integer from 0 to {max}, got {v:?}");
    let n: u64 = trimmed.parse().map_err(|_| expected())?;
    if n > max {
        return Err(expected());
    }
    T::try_from(n).map(Some).map_err(|_| expected())
}

/// A non-negative, finite number of seconds; empty keeps the default.
fn seconds_f64(v: &str) -> Result<Option<f64>, String> {
    let trimmed = v.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    match trimmed.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(Some(n)),
        _ => Err(format!("expected a non-negative number, got {v:?}")),
    }
}

/// One of an enumeration's values; empty keeps the default.
fn enumeration<T>(v: &str) -> Result<Option<T>, String>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    if v.trim().is_empty() {
        return Ok(None);
    }
    v.parse::<T>().map(Some).map_err(|e| e.to_string())
}

/// `api_url`: a comma-separated list of `mdns` or `http(s)://` URLs, trailing `/`
/// removed. Each must match IPA's `^(mdns|https?://.+)`.
pub fn api_urls(v: &str) -> Result<Vec<String>, String> {
    list(v)
        .into_iter()
        .map(|url| {
            let url = url.trim_end_matches('/').to_string();
            let has_host = |scheme: &str| url.strip_prefix(scheme).is_some_and(|r| !r.is_empty());
            if url.starts_with("mdns") || has_host("http://") || has_host("https://") {
                Ok(url)
            } else {
                Err(format!(
                    "{url:?} is neither \"mdns\" nor an http:// or https:// URL"
                ))
            }
        })
        .collect()
}

/// `ironic_api_version`: `x.y`, or empty for automatic detection.
fn api_version(v: &str) -> Result<Option<String>, String> {
    let Some(version) = optional(v) else {
        return Ok(None);
    };
    let valid = version.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    });
    if valid {
        Ok(Some(version))
    } else {
        Err(format!(
            "expected a microversion like 1.68, got {version:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_options_names_are_unique() {
        let mut names: Vec<_> = OPTIONS.iter().map(|o| o.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        let mut params: Vec<_> = OPTIONS.iter().filter_map(|o| o.kernel_param).collect();
        params.sort_unstable();
        let before = params.len();
        params.dedup();
        assert_eq!(before, params.len());
    }

    #[test]
    fn config_options_cover_every_serialized_field() {
        // Every AgentConfig field that an option can set is in the table; the others
        // come from elsewhere (flags, kernel command line, environment).
        let json = serde_json::to_value(AgentConfig::default()).expect("serializable");
        let not_options = ["standalone", "boot_if", "kernel_params", "paths", "coreos"];
        for key in json.as_object().map(|o| o.keys()).into_iter().flatten() {
            if !not_options.contains(&key.as_str()) {
                assert!(find(key).is_some(), "field {key} has no option");
            }
        }
    }

    #[test]
    fn config_options_value_rules() {
        assert_eq!(list(" a, ,b ,,c "), vec!["a", "b", "c"]);
        assert!(list("").is_empty());
        assert_eq!(integer::<u16>(" 42 ", 65535), Ok(Some(42)));
        assert_eq!(integer::<u16>("", 65535), Ok(None));
        assert!(integer::<u16>("65536", 65535).is_err());
        assert!(integer::<u16>("-1", 65535).is_err());
        assert!(integer::<u8>("100", 99).is_err());
        assert_eq!(seconds_f64("2.5"), Ok(Some(2.5)));
        assert!(seconds_f64("NaN").is_err());
        assert_eq!(boolean("Off"), Ok(Some(false)));
        assert!(boolean("maybe").is_err());
        assert_eq!(api_version("1.68"), Ok(Some("1.68".to_string())));
        assert!(api_version("latest").is_err());
        assert!(api_version("1.").is_err());
    }

    #[test]
    fn config_options_api_urls() {
        assert_eq!(
            api_urls("http://192.0.2.1:6385/, https://[2001:db8::1]:6385//,mdns"),
            Ok(vec![
                "http://192.0.2.1:6385".to_string(),
                "https://[2001:db8::1]:6385".to_string(),
                "mdns".to_string(),
            ])
        );
        assert!(api_urls("ftp://x").is_err());
        assert!(api_urls("http://").is_err());
        assert!(api_urls("192.0.2.1:6385").is_err());
        assert_eq!(api_urls(""), Ok(vec![]));
    }
}
