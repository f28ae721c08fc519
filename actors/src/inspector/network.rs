//! Network interfaces (`inventory.interfaces`, ipa-protocol.md §5.2).
//!
//! Which interfaces: every entry of `<sys>/class/net` with a `device` link, a
//! `bonding` directory, or a VLAN name (`<x>.<digits>`). MACs: the permanent
//! address (ETHTOOL_GPERMADDR) when reading the live `/sys`, else the current
//! `address` file; `fa:` and unreadable MACs drop the interface. The CoreOS
//! manager's `filter_device` drops `cdc_ether`/`cdc_ncm` NICs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::inventory::NetworkInterface;
use super::sysfs::{link_basename, read_trimmed};

/// Drivers the CoreOS hardware manager's `filter_device` removes (USB NICs, BMC virtual NICs).
pub const FILTERED_DRIVERS: [&str; 2] = ["cdc_ether", "cdc_ncm"];

/// The first IPv4 and IPv6 address of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfAddrs {
    /// First IPv4 address.
    pub ipv4: Option<String>,
    /// First IPv6 address (link-local ones carry `%iface`).
    pub ipv6: Option<String>,
    /// The current MAC from the `AF_PACKET` entry (psutil's fallback).
    pub mac: Option<String>,
}

/// Where interface data that is not in sysfs comes from.
#[derive(Debug, Clone, Default)]
pub struct NetSources {
    /// Addresses per interface name (from getifaddrs, or a test's table).
    pub addresses: BTreeMap<String, IfAddrs>,
    /// Ask the kernel for permanent MACs (only when reading the live `/sys`).
    pub query_permanent_mac: bool,
    /// `enable_vlan_interfaces`.
    pub enable_vlan_interfaces: Vec<String>,
}

/// Whether the name has IPA's VLAN form `<x>.<digits>`.
pub fn is_vlan_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((_, vlan)) => !vlan.is_empty() && vlan.chars().all(|c| c.is_ascii_digit()),
        None => false,
    }
}

/// Whether `<sys>/class/net/<name>` is listed in the inventory.
pub fn is_listed(class_net: &Path, name: &str) -> bool {
    let dir = class_net.join(name);
    is_vlan_name(name) || dir.join("device").exists() || dir.join("bonding").exists()
}

/// Normalizes a MAC to lower case; `None` when it is not six colon-separated octets.
pub fn normalize_mac(raw: &str) -> Option<String> {
    let mac = raw.trim().to_ascii_lowercase();
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then_some(mac)
}

/// Whether IPA rejects the MAC: the locally administered `fa:` prefix (IPA's
/// `get_mac_addr`; an all-zero current address is kept, as in IPA).
pub fn mac_rejected(mac: &str) -> bool {
    mac.starts_with("fa:")
}

/// Lists the interfaces of `<sys_root>/class/net`, in name order.
///
/// `warnings` receives one line per interface that had to be dropped.
pub fn list_interfaces(
    sys_root: &Path,
    sources: &NetSources,
    warnings: &mut Vec<String>,
) -> Vec<NetworkInterface> {
    let class_net = sys_root.join("class/net");
    let mut names: Vec<String> = match std::fs::read_dir(&class_net) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(err) => {
            warnings.push(format!(
                "cannot list network interfaces in {}: {err}",
                class_net.display()
            ));
            return Vec::new();
        }
    };
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if !is_listed(&class_net, &name) {
            continue;
        }
        if let Some(iface) = interface_info(&class_net, &name, sources, warnings) {
            out.push(iface);
        }
    }
    let wanted = missing_vlans(&out, &sources.enable_vlan_interfaces);
    if !wanted.is_empty() {
        warnings.push(format!(
            "enable_vlan_interfaces asks for {}, which do not exist; this agent does not \
             create VLAN interfaces during inventory",
            wanted.join(", ")
        ));
    }
    out
}

/// Configured `iface.vlan` entries of `enable_vlan_interfaces` whose interface is not listed.
pub fn missing_vlans(listed: &[NetworkInterface], config: &[String]) -> Vec<String> {
    config
        .iter()
        .map(|s| s.trim())
        .filter(|s| is_vlan_name(s))
        .filter(|s| !listed.iter().any(|i| i.name == *s))
        .map(str::to_string)
        .collect()
}

fn interface_info(
    class_net: &Path,
    name: &str,
    sources: &NetSources,
    warnings: &mut Vec<String>,
) -> Option<NetworkInterface> {
    let dir = class_net.join(name);
    let driver = link_basename(&dir.join("device/driver"));
    if let Some(driver) = &driver {
        if FILTERED_DRIVERS.contains(&driver.as_str()) {
            tracing::debug!("interface {name} uses {driver}; filtered out like the CoreOS manager");
            return None;
        }
    }
    let addrs = sources.addresses.get(name).cloned().unwrap_or_default();
    let permanent = if sources.query_permanent_mac {
        permanent_mac(name)
            .and_then(|m| normalize_mac(&m))
            .filter(|m| m != "00:00:00:00:00:00")
    } else {
        None
    };
    let current = read_trimmed(&dir.join("address"))
        .and_then(|m| normalize_mac(&m))
        .or_else(|| addrs.mac.as_deref().and_then(normalize_mac));
    let Some(mac) = permanent.or(current) else {
        warnings.push(format!("interface {name}: MAC address unreadable, skipped"));
        return None;
    };
    if mac_rejected(&mac) {
        tracing::info!("interface {name}: MAC {mac} rejected, interface skipped");
        return None;
    }
    let speed_mbps = read_trimmed(&dir.join("speed"))
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map(|s| s as u64);
    Some(NetworkInterface {
        name: name.to_string(),
        mac_address: Some(mac),
        ipv4_address: addrs.ipv4,
        ipv6_address: addrs.ipv6,
        has_carrier: read_trimmed(&dir.join("carrier")).as_deref() == Some("1"),
        lldp: None,
        vendor: read_trimmed(&dir.join("device/vendor")),
        product: read_trimmed(&dir.join("device/device")),
        client_id: None,
        biosdevname: None,
        speed_mbps,
        pci_address: link_basename(&dir.join("device")),
        driver,
    })
}

/// The first IPv4/IPv6 address and the `AF_PACKET` MAC of every interface, in
/// getifaddrs order (psutil's order).
pub fn live_addresses() -> std::io::Result<BTreeMap<String, IfAddrs>> {
    let mut out: BTreeMap<String, IfAddrs> = BTreeMap::new();
    let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    for ifa in addrs {
        let entry = out.entry(ifa.interface_name.clone()).or_default();
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            if entry.ipv4.is_none() {
                entry.ipv4 = Some(v4.ip().to_string());
            }
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            if entry.ipv6.is_none() {
                entry.ipv6 = Some(format_ipv6(IpAddr::V6(v6.ip()), &ifa.interface_name));
            }
        } else if let Some(link) = addr.as_link_addr() {
            if entry.mac.is_none() {
                entry.mac = link.addr().map(|b| {
                    b.iter()
                        .map(|x| format!("{x:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                });
            }
        }
    }
    Ok(out)
}

/// Formats an IPv6 address as psutil does: link-local ones get `%iface`.
pub fn format_ipv6(addr: IpAddr, iface: &str) -> String {
    match addr {
        IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => format!("{v6}%{iface}"),
        other => other.to_string(),
    }
}

/// The permanent MAC of a live interface via the `ETHTOOL_GPERMADDR` ioctl.
pub fn permanent_mac(name: &str) -> Option<String> {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GPERMADDR: u32 = 0x20;
    const MAX_ADDR_LEN: usize = 32;

    #[repr(C)]
    struct PermAddr {
        cmd: u32,
        size: u32,
        data: [u8; MAX_ADDR_LEN],
    }
    #[repr(C)]
    struct IfReq {
        name: [libc::c_char; libc::IFNAMSIZ],
        data: *mut libc::c_void,
        _pad: [u8; 16],
    }

    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return None;
    }
    let mut perm = PermAddr {
        cmd: ETHTOOL_GPERMADDR,
        size: MAX_ADDR_LEN as u32,
        data: [0; MAX_ADDR_LEN],
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: std::ptr::addr_of_mut!(perm).cast(),
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: a plain datagram socket, closed below; the ioctl reads `req` and writes
    // at most `perm.size` bytes into `perm.data`, both alive for the call.
    let len = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let rc = libc::ioctl(fd, SIOCETHTOOL as _, std::ptr::addr_of_mut!(req));
        libc::close(fd);
        if rc < 0 {
            return None;
        }
        perm.size as usize
    };
    if len != 6 {
        return None;
    }
    Some(
        perm.data[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::testutil::Tree;

    fn nic(t: &Tree, name: &str, mac: &str, pci: &str, driver: &str) {
        t.file(
            &format!("sys/class/net/{name}/address"),
            &format!("{mac}\n"),
        );
        t.file(&format!("sys/devices/pci/{pci}/vendor"), "0x8086\n");
        t.file(&format!("sys/devices/pci/{pci}/device"), "0x1572\n");
        t.dir(&format!("sys/bus/pci/drivers/{driver}"));
        t.link(
            &format!("sys/devices/pci/{pci}/driver"),
            &format!("../../../bus/pci/drivers/{driver}"),
        );
        t.link(
            &format!("sys/class/net/{name}/device"),
            &format!("../../../devices/pci/{pci}"),
        );
    }

    fn fixture() -> Tree {
        let t = Tree::new();
        nic(&t, "eno1", "3C:FD:FE:00:00:01", "0000:3b:00.0", "i40e");
        t.file("sys/class/net/eno1/carrier", "1\n");
        t.file("sys/class/net/eno1/speed", "10000\n");
        nic(&t, "eno2", "3c:fd:fe:00:00:02", "0000:3b:00.1", "i40e");
        t.file("sys/class/net/eno2/carrier", "0\n");
        t.file("sys/class/net/eno2/speed", "-1\n");
        // Locally administered fa: MAC: dropped.
        nic(
            &t,
            "ens9",
            "fa:16:3e:00:00:09",
            "0000:00:09.0",
            "virtio_net",
        );
        // USB NIC of the BMC: dropped by the CoreOS filter.
        nic(&t, "usb0", "02:80:37:ec:02:00", "1-1:1.0", "cdc_ether");
        nic(&t, "usb1", "02:80:37:ec:02:01", "1-1:1.1", "cdc_ncm");
        // Unreadable MAC: dropped.
        t.link(
            "sys/class/net/eno3/device",
            "../../../devices/pci/0000:3b:00.0",
        );
        // A bond (no device link, bonding dir) and a VLAN (no device link).
        t.file("sys/class/net/bond0/address", "3c:fd:fe:00:00:01\n");
        t.dir("sys/class/net/bond0/bonding");
        t.file("sys/class/net/bond0/carrier", "1\n");
        t.file("sys/class/net/eno1.100/address", "3c:fd:fe:00:00:01\n");
        // Not listed: loopback, bridge, virtual devices.
        t.file("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        t.file("sys/class/net/br0/address", "52:54:00:00:00:10\n");
        t.dir("sys/class/net/br0/bridge");
        t
    }

    #[test]
    fn inspector_network_lists_physical_bond_and_vlan_and_drops_the_rest() {
        let t = fixture();
        let mut sources = NetSources::default();
        sources.addresses.insert(
            "eno1".into(),
            IfAddrs {
                ipv4: Some("192.0.2.10".into()),
                ipv6: Some("fe80::1%eno1".into()),
                mac: None,
            },
        );
        let mut warnings = Vec::new();
        let ifaces = list_interfaces(&t.path("sys"), &sources, &mut warnings);
        let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["bond0", "eno1", "eno1.100", "eno2"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("eno3"));

        let eno1 = &ifaces[1];
        assert_eq!(eno1.mac_address.as_deref(), Some("3c:fd:fe:00:00:01"));
        assert_eq!(eno1.ipv4_address.as_deref(), Some("192.0.2.10"));
        assert_eq!(eno1.ipv6_address.as_deref(), Some("fe80::1%eno1"));
        assert!(eno1.has_carrier);
        assert_eq!(eno1.vendor.as_deref(), Some("0x8086"));
        assert_eq!(eno1.product.as_deref(), Some("0x1572"));
        assert_eq!(eno1.pci_address.as_deref(), Some("0000:3b:00.0"));
        assert_eq!(eno1.driver.as_deref(), Some("i40e"));
        assert_eq!(eno1.speed_mbps, Some(10000));
        assert_eq!(eno1.lldp, None);

        let eno2 = &ifaces[3];
        assert!(!eno2.has_carrier);
        assert_eq!(eno2.speed_mbps, None);
        assert_eq!(eno2.ipv4_address, None);

        let bond = &ifaces[0];
        assert_eq!(bond.pci_address, None);
        assert_eq!(bond.driver, None);
        assert!(bond.has_carrier);
        let vlan = &ifaces[2];
        assert_eq!(vlan.vendor, None);
        assert!(!vlan.has_carrier);
    }

    #[test]
    fn inspector_network_vlan_config_reports_missing_vlans() {
        let t = fixture();
        let sources = NetSources {
            enable_vlan_interfaces: vec!["eno1.100".into(), "eno2.200".into()],
            ..NetSources::default()
        };
        let mut warnings = Vec::new();
        let ifaces = list_interfaces(&t.path("sys"), &sources, &mut warnings);
        assert_eq!(ifaces.iter().filter(|i| i.name == "eno1.100").count(), 1);
        assert!(warnings.iter().any(|w| w.contains("eno2.200")));
        assert!(!warnings.iter().any(|w| w.contains("eno1.100")));
    }

    #[test]
    fn inspector_network_helpers() {
        assert!(is_vlan_name("eth0.100"));
        assert!(!is_vlan_name("eth0"));
        assert!(!is_vlan_name("eth0."));
        assert!(!is_vlan_name("eth0.1a"));
        assert_eq!(
            normalize_mac(" AA:bb:CC:00:11:22\n").as_deref(),
            Some("aa:bb:cc:00:11:22")
        );
        assert_eq!(normalize_mac("aa:bb"), None);
        assert!(mac_rejected("fa:16:3e:00:00:01"));
        assert!(!mac_rejected("02:fc:00:00:00:01"));
        assert_eq!(
            format_ipv6("fe80::1".parse().expect("ip"), "eth0"),
            "fe80::1%eth0"
        );
        assert_eq!(
            format_ipv6("fd00::2".parse().expect("ip"), "eth0"),
            "fd00::2"
        );
    }

    #[test]
    fn inspector_network_missing_class_net_is_one_warning() {
        let t = Tree::new();
        let mut warnings = Vec::new();
        let ifaces = list_interfaces(&t.path("sys"), &NetSources::default(), &mut warnings);
        assert!(ifaces.is_empty());
        assert_eq!(warnings.len(), 1);
    }
}
