//! BMC addresses (`bmc_address`, `bmc_v6address`, `bmc_mac`, ipa-protocol.md §5.5).
//!
//! Only when a `/dev/ipmi*`, `/dev/ipmi/*` or `/dev/ipmidev/*` character device exists;
//! then `ipmitool lan print <ch>` for channels 1–11 (one run per channel gives both the
//! IPv4 address and the MAC) and `ipmitool lan6 print <ch> …` for IPv6.

use std::net::IpAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use crate::host::{CommandRunner, CommandSpec};

/// The BMC fields of the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BmcInfo {
    /// IPv4: an address, `0.0.0.0` when IPMI exists but none is set, null without IPMI.
    pub address: Option<String>,
    /// IPv6: an address, `::/0` when none, null without IPMI.
    pub v6address: Option<String>,
    /// MAC of the first channel with an address; absent otherwise.
    pub mac: Option<String>,
}

/// IPMI channels IPA scans.
pub const CHANNELS: std::ops::RangeInclusive<u8> = 1..=11;

/// Whether a character device matching `/dev/ipmi*`, `/dev/ipmi/*` or `/dev/ipmidev/*`
/// exists under `dev_root`.
pub fn has_ipmi_device(dev_root: &Path) -> bool {
    let is_char = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.file_type().is_char_device())
            .unwrap_or(false)
    };
    let entries = |dir: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|it| it.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let top = entries(dev_root).into_iter().any(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ipmi"))
            && is_char(&p)
    });
    top || ["ipmi", "ipmidev"]
        .iter()
        .any(|sub| entries(&dev_root.join(sub)).iter().any(|p| is_char(p)))
}

/// The value after `<label>  :` in ipmitool's `key : value` output.
fn field(output: &str, label: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == label).then(|| value.trim().to_string())
    })
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// One address block of `ipmitool lan6 print <ch> …` output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lan6Address {
    /// `IPv6 Dynamic Address N` (true) or `IPv6 Static Address N` (false).
    pub dynamic: bool,
    /// `Address` (with its prefix length).
    pub address: String,
    /// `Source/Type` (dynamic addresses).
    pub source: String,
    /// `Enabled` (static addresses).
    pub enabled: String,
    /// `Status`.
    pub status: String,
}

/// Parses the address blocks of `ipmitool lan6 print <ch> [dynamic_addr|static_addr]`.
pub fn parse_lan6_blocks(output: &str) -> Vec<Lan6Address> {
    let mut out: Vec<Lan6Address> = Vec::new();
    let mut in_block = false;
    for line in output.lines() {
        let header = line.trim_end();
        if !line.starts_with(char::is_whitespace) {
            in_block = false;
            if let Some(rest) = header.strip_prefix("IPv6 ") {
                let dynamic = rest.starts_with("Dynamic Address");
                if (dynamic || rest.starts_with("Static Address")) && header.ends_with(':') {
                    out.push(Lan6Address {
                        dynamic,
                        ..Lan6Address::default()
                    });
                    in_block = true;
                }
            }
            continue;
        }
        let (Some(block), true) = (out.last_mut(), in_block) else {
            continue;
        };
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            match key.trim() {
                "Address" => block.address = value,
                "Source/Type" => block.source = value,
                "Enabled" => block.enabled = value,
                "Status" => block.status = value,
                _ => {}
            }
        }
    }
    out
}

/// IPA's `get_addr`: the first active, enabled (dynamic: DHCPv6 or SLAAC; static:
/// `Enabled: yes`), non-null (`::`, `::/N`) address.
pub fn pick_lan6_address(blocks: &[Lan6Address]) -> Option<String> {
    blocks
        .iter()
        .find(|b| {
            let enabled = if b.dynamic {
                b.source == "DHCPv6" || b.source == "SLAAC"
            } else {
                matches!(
                    b.enabled.to_ascii_lowercase().as_str(),
                    "yes" | "true" | "on" | "y"
                )
            };
            let null = b
                .address
                .strip_prefix("::")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
            b.status == "active" && enabled && !null
        })
        .map(|b| b.address.clone())
}

enum Run {
    Out(String),
    InvalidChannel,
    Failed(String),
}

/// Runs ipmitool. Like IPA (which pipes ipmitool into awk and so never sees its exit
/// status), a failing call only means "nothing on this channel"; only a tool that
/// cannot be run at all is a failure.
async fn ipmitool(runner: &dyn CommandRunner, prefix: &[String], args: &[&str]) -> Run {
    let spec = CommandSpec::new(
        "ipmitool",
        prefix
            .iter()
            .cloned()
            .chain(args.iter().map(|a| a.to_string())),
    );
    match runner.run(spec.clone()).await {
        Ok(out) if out.success() => Run::Out(out.stdout),
        Ok(out) if out.stderr.contains("Invalid channel") => Run::InvalidChannel,
        Ok(out) => {
            tracing::debug!(
                "{spec} failed with {}: {}",
                out.describe_exit(),
                out.stderr.trim()
            );
            Run::Out(String::new())
        }
        Err(err) => Run::Failed(format!("cannot run {spec}: {err}")),
    }
}

/// Detects the BMC fields following IPA's rules (`get_bmc_address`,
/// `get_bmc_v6address`, `get_bmc_mac`); one warning when ipmitool cannot run.
/// `prefix` goes before every ipmitool command (empty in production; interface and
/// host options to reach a simulator in tests).
pub async fn detect(
    runner: &dyn CommandRunner,
    dev_root: &Path,
    prefix: &[String],
    warnings: &mut Vec<String>,
) -> BmcInfo {
    if !has_ipmi_device(dev_root) {
        return BmcInfo::default();
    }
    // IPv4 and MAC: one `lan print` per channel.
    let mut channels: Vec<(u8, String, String)> = Vec::new();
    for ch in CHANNELS {
        let ch_s = ch.to_string();
        match ipmitool(runner, prefix, &["lan", "print", &ch_s]).await {
            Run::InvalidChannel => continue,
            Run::Failed(msg) => {
                warnings.push(format!("cannot get BMC address: {msg}"));
                return BmcInfo::default();
            }
            Run::Out(out) => channels.push((
                ch,
                field(&out, "IP Address").unwrap_or_default(),
                field(&out, "MAC Address").unwrap_or_default(),
            )),
        }
    }
    let address = channels
        .iter()
        .map(|(_, ip, _)| ip)
        .filter(|ip| match ip.parse::<IpAddr>() {
            Ok(_) => true,
            Err(_) => {
                tracing::debug!("BMC: invalid IP address {ip:?}");
                false
            }
        })
        .find(|ip| *ip != "0.0.0.0")
        .cloned()
        .unwrap_or_else(|| "0.0.0.0".to_string());

    // IPv6.
    let mut v6address = None;
    for ch in CHANNELS {
        let ch_s = ch.to_string();
        let enables = match ipmitool(runner, prefix, &["lan6", "print", &ch_s, "enables"]).await {
            Run::Out(out) => out,
            Run::InvalidChannel => continue,
            Run::Failed(msg) => {
                tracing::debug!("BMC IPv6 channel {ch}: {msg}");
                break;
            }
        };
        let mode = field(&enables, "IPv6/IPv4 Addressing Enables")
            .and_then(|v| v.split_whitespace().last().map(str::to_string))
            .unwrap_or_default();
        if mode != "ipv6" && mode != "both" {
            continue;
        }
        let mut found = None;
        for kind in ["dynamic_addr", "static_addr"] {
            if let Run::Out(out) = ipmitool(runner, prefix, &["lan6", "print", &ch_s, kind]).await {
                found = pick_lan6_address(&parse_lan6_blocks(&out));
                if found.is_some() {
                    break;
                }
            }
        }
        let Some(found) = found else { continue };
        let ip = found.split('/').next().unwrap_or("").trim().to_string();
        match ip.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => {
                v6address = Some(v6.to_string());
                break;
            }
            Err(_) => tracing::warn!("BMC channel {ch}: invalid IPv6 address {found:?}"),
        }
    }
    let v6address = Some(v6address.unwrap_or_else(|| "::/0".to_string()));

    // MAC: the first channel with an IPv4 address, or a usable IPv6 one.
    let mut mac = None;
    for (ch, ip, ch_mac) in &channels {
        if ip.is_empty() || ch_mac.is_empty() {
            continue;
        }
        if ip == "0.0.0.0" {
            let ch_s = ch.to_string();
            let Run::Out(out) = ipmitool(runner, prefix, &["lan6", "print", &ch_s]).await else {
                continue;
            };
            let usable = parse_lan6_blocks(&out)
                .iter()
                .any(|b| !b.address.starts_with("::") && !b.address.starts_with("fe80"));
            if !usable {
                continue;
            }
        }
        if !valid_mac(ch_mac) {
            tracing::warn!("BMC channel {ch}: invalid MAC address {ch_mac:?}");
            continue;
        }
        if ch_mac != "00:00:00:00:00:00" {
            mac = Some(ch_mac.to_ascii_lowercase());
            break;
        }
    }
    BmcInfo {
        address: Some(address),
        v6address,
        mac,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::testutil::{CannedRunner, Tree};

    fn mknod_char(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("cstr");
        // SAFETY: plain mknod of a character device node at a test-owned path.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3)) };
        assert_eq!(
            rc,
            0,
            "mknod {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }

    const LAN1: &str = "Set in Progress         : Set Complete\nIP Address Source       : Static Address\nIP Address              : 192.0.2.200\nSubnet Mask             : 255.255.255.0\nMAC Address             : AA:BB:CC:DD:EE:FF\n";
    const LAN_ZERO: &str = "IP Address Source       : DHCP Address\nIP Address              : 0.0.0.0\nMAC Address             : 11:22:33:44:55:66\n";
    const LAN6_ENABLES: &str =
        "IPv6/IPv4 Support       : both\nIPv6/IPv4 Addressing Enables : both\n";
    const LAN6_DYNAMIC: &str = "IPv6 Dynamic Address 0:\n    Source/Type:    SLAAC\n    Address:        fe80::1/64\n    Status:         failed\nIPv6 Dynamic Address 1:\n    Source/Type:    DHCPv6\n    Address:        2001:db8::5/64\n    Status:         active\n";

    #[actix_rt::test]
    async fn inspector_bmc_without_ipmi_device_runs_nothing() {
        let t = Tree::new();
        t.file("dev/ipmi0", "a regular file is not a device");
        let runner = CannedRunner::default().with("ipmitool", 0, LAN1);
        let mut warnings = Vec::new();
        let info = detect(&runner, &t.path("dev"), &[], &mut warnings).await;
        assert_eq!(info, BmcInfo::default());
        assert!(runner.calls().is_empty());
    }

    #[actix_rt::test]
    async fn inspector_bmc_channels_addresses_and_mac() {
        let t = Tree::new();
        t.dir("dev");
        mknod_char(&t.path("dev/ipmi0"));
        assert!(has_ipmi_device(&t.path("dev")));
        let mut runner = CannedRunner::default()
            .with("ipmitool lan print 1", 0, LAN_ZERO)
            .with("ipmitool lan print 2", 0, LAN1)
            .with(
                "ipmitool lan6 print 1 enables",
                0,
                "IPv6/IPv4 Addressing Enables : ipv4\n",
            )
            .with("ipmitool lan6 print 2 enables", 0, LAN6_ENABLES)
            .with("ipmitool lan6 print 2 dynamic_addr", 0, LAN6_DYNAMIC);
        for ch in 3..=11 {
            runner = runner
                .with_stderr(
                    &format!("ipmitool lan print {ch}"),
                    1,
                    "Invalid channel 3\n",
                )
                .with_stderr(
                    &format!("ipmitool lan6 print {ch} enables"),
                    1,
                    "Invalid channel\n",
                );
        }
        let mut warnings = Vec::new();
        let info = detect(&runner, &t.path("dev"), &[], &mut warnings).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(info.address.as_deref(), Some("192.0.2.200"));
        assert_eq!(info.v6address.as_deref(), Some("2001:db8::5"));
        assert_eq!(info.mac.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
    }

    #[test]
    fn inspector_bmc_lan6_blocks() {
        let out = "IPv6 Static Address 0:\n    Enabled:        yes\n    Address:        2001:db8::7/64\n    Status:         active\nIPv6 Static Address 1:\n    Enabled:        no\n    Address:        ::/0\n    Status:         disabled\nIPv6 Dynamic Address 0:\n    Source/Type:    DHCPv6\n    Address:        ::/255\n    Status:         active\n";
        let blocks = parse_lan6_blocks(out);
        assert_eq!(blocks.len(), 3);
        assert!(!blocks[0].dynamic && blocks[2].dynamic);
        assert_eq!(
            pick_lan6_address(&blocks).as_deref(),
            Some("2001:db8::7/64")
        );
        assert_eq!(
            pick_lan6_address(&blocks[1..]),
            None,
            "null addresses are skipped"
        );
        let link_local = parse_lan6_blocks(LAN6_DYNAMIC.replace("failed", "active").as_str());
        // IPA does not skip link-local addresses here.
        assert_eq!(
            pick_lan6_address(&link_local).as_deref(),
            Some("fe80::1/64")
        );
    }

    #[actix_rt::test]
    async fn inspector_bmc_mac_of_an_ipv6_only_channel() {
        let t = Tree::new();
        t.dir("dev/ipmidev");
        mknod_char(&t.path("dev/ipmidev/0"));
        let runner = CannedRunner::default()
            .with("ipmitool lan print 1", 0, LAN_ZERO)
            .with("ipmitool lan6 print 1", 0, LAN6_DYNAMIC)
            .with("ipmitool", 0, "");
        let mut warnings = Vec::new();
        let info = detect(&runner, &t.path("dev"), &[], &mut warnings).await;
        assert_eq!(info.address.as_deref(), Some("0.0.0.0"));
        assert_eq!(info.mac.as_deref(), Some("11:22:33:44:55:66"));
    }

    #[actix_rt::test]
    async fn inspector_bmc_unconfigured_and_failing() {
        let t = Tree::new();
        t.dir("dev/ipmi");
        mknod_char(&t.path("dev/ipmi/0"));
        let runner = CannedRunner::default()
            .with("ipmitool lan print 1", 0, LAN_ZERO)
            .with("ipmitool", 0, "");
        let mut warnings = Vec::new();
        let info = detect(&runner, &t.path("dev"), &[], &mut warnings).await;
        assert_eq!(info.address.as_deref(), Some("0.0.0.0"));
        assert_eq!(info.v6address.as_deref(), Some("::/0"));
        assert_eq!(info.mac, None);

        let missing = CannedRunner::default();
        let info = detect(&missing, &t.path("dev"), &[], &mut warnings).await;
        assert_eq!(info, BmcInfo::default());
        assert_eq!(warnings.len(), 1);
    }

    /// `ipmi_sim` (openipmi) serving IPMI-over-LAN on 127.0.0.1, killed on drop.
    struct IpmiSim {
        child: std::process::Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for IpmiSim {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl IpmiSim {
        fn start() -> Option<Self> {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = 20000 + (std::process::id() % 20000) as u16;
            let lan = format!(
                "name \"iabmc\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {port}\n    \
                 priv_limit admin\n    allowed_auths_callback none md2 md5 straight\n    \
                 allowed_auths_user none md2 md5 straight\n    \
                 allowed_auths_operator none md2 md5 straight\n    \
                 allowed_auths_admin none md2 md5 straight\n    \
                 guid a123456789abcdefa123456789abcdef\n  endlan\n  \
                 user 2 true  \"admin\" \"secret\" admin 10 none md2 md5 straight\n"
            );
            std::fs::write(dir.path().join("lan.conf"), lan).expect("lan.conf");
            std::fs::write(
                dir.path().join("bmc.emu"),
                "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 \
                 persist_sdr\nmc_enable 0x20\n",
            )
            .expect("bmc.emu");
            std::fs::create_dir_all(dir.path().join("state")).expect("state");
            let child = std::process::Command::new("ipmi_sim")
                .current_dir(dir.path())
                .args(["-c", "lan.conf", "-f", "bmc.emu", "-s", "state", "-n"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()?;
            Some(IpmiSim {
                child,
                port,
                _dir: dir,
            })
        }

        fn args(&self) -> Vec<String> {
            [
                "-I",
                "lanplus",
                "-C",
                "3",
                "-H",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(
                ["-U", "admin", "-P", "secret"]
                    .iter()
                    .map(|s| s.to_string()),
            )
            .collect()
        }

        fn ipmitool(&self, args: &[&str]) -> std::process::Output {
            std::process::Command::new("ipmitool")
                .args(self.args())
                .args(args)
                .output()
                .expect("run ipmitool")
        }
    }

    #[actix_rt::test]
    async fn inspector_bmc_against_ipmi_sim() {
        let tools = ["ipmi_sim", "ipmitool"].iter().all(|tool| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if !tools {
            eprintln!(
                "SKIPPED: ipmi_sim/ipmitool not installed (apt-get install ipmitool openipmi)"
            );
            return;
        }
        let sim = IpmiSim::start().expect("start ipmi_sim");
        let mut up = false;
        for _ in 0..50 {
            if sim.ipmitool(&["mc", "info"]).status.success() {
                up = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(up, "ipmi_sim answers");
        let t = Tree::new();
        t.dir("dev");
        mknod_char(&t.path("dev/ipmi0"));
        let runner = crate::host::ProcessRunner::default();
        let mut warnings = Vec::new();

        // A fresh simulator: IPMI present but unconfigured.
        let info = detect(&runner, &t.path("dev"), &sim.args(), &mut warnings).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(info.address.as_deref(), Some("0.0.0.0"));
        assert_eq!(info.v6address.as_deref(), Some("::/0"));
        assert_eq!(info.mac, None);

        for set in [
            &["lan", "set", "1", "ipsrc", "static"][..],
            &["lan", "set", "1", "ipaddr", "192.0.2.200"][..],
            &["lan", "set", "1", "macaddr", "aa:bb:cc:dd:ee:ff"][..],
        ] {
            assert!(sim.ipmitool(set).status.success(), "ipmitool {set:?}");
        }
        let info = detect(&runner, &t.path("dev"), &sim.args(), &mut warnings).await;
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(info.address.as_deref(), Some("192.0.2.200"));
        assert_eq!(
            info.v6address.as_deref(),
            Some("::/0"),
            "lan6 is not supported"
        );
        assert_eq!(info.mac.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
    }
}
