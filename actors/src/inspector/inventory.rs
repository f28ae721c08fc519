//! IPA's inventory format (`list_hardware_info`), field by field.
//!
//! These types serialize to exactly the JSON Ironic, Metal3 and inspection
//! rules consume: the key names, types and null/absent rules are IPA's.

use serde::{Deserialize, Serialize};

/// The whole inventory, as returned by `poll.get_hardware_info` and sent on inspection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Network interfaces (physical, bonds, VLANs).
    pub interfaces: Vec<NetworkInterface>,
    /// CPU summary.
    pub cpu: Cpu,
    /// Block devices that can be installed onto.
    pub disks: Vec<BlockDevice>,
    /// Memory totals.
    pub memory: Memory,
    /// The BMC's IPv4 address; `0.0.0.0` when unconfigured, null without IPMI.
    pub bmc_address: Option<String>,
    /// The BMC's IPv6 address; `::/0` when unconfigured, null without IPMI.
    pub bmc_v6address: Option<String>,
    /// The BMC's MAC; the key is absent unless found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_mac: Option<String>,
    /// DMI system identity.
    pub system_vendor: SystemVendor,
    /// Boot mode and PXE interface.
    pub boot: BootInfo,
    /// The host name.
    pub hostname: String,
}

/// One network interface (IPA's `NetworkInterface`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Interface name.
    pub name: String,
    /// Permanent MAC, lower case, colon separated.
    pub mac_address: Option<String>,
    /// First IPv4 address.
    pub ipv4_address: Option<String>,
    /// First IPv6 address (link-local ones carry `%iface`).
    pub ipv6_address: Option<String>,
    /// Whether the link has carrier.
    pub has_carrier: bool,
    /// LLDP TLVs as `[type, hexdata]` pairs, when collected.
    pub lldp: Option<Vec<(u8, String)>>,
    /// PCI vendor id, e.g. `0x8086`.
    pub vendor: Option<String>,
    /// PCI device id.
    pub product: Option<String>,
    /// DHCP client id (InfiniBand only).
    pub client_id: Option<String>,
    /// biosdevname's name for the NIC.
    pub biosdevname: Option<String>,
    /// Link speed in Mbit/s.
    pub speed_mbps: Option<u64>,
    /// PCI address, e.g. `0000:00:03.0`.
    pub pci_address: Option<String>,
    /// Kernel driver name.
    pub driver: Option<String>,
}

/// CPU summary (IPA's `CPU`); `frequency` is a string on purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// Model name.
    pub model_name: Option<String>,
    /// Max (else current) MHz as a string, or `""`.
    pub frequency: String,
    /// Logical CPU count.
    pub count: u64,
    /// Architecture, e.g. `x86_64`.
    pub architecture: String,
    /// CPU flags.
    pub flags: Vec<String>,
    /// Number of sockets.
    pub socket_count: Option<u64>,
}

/// One block device (IPA's `BlockDevice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// `/dev/<kname>`.
    pub name: String,
    /// Model string; null when lsblk has none (as IPA reports it).
    pub model: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Whether the device is rotational.
    pub rotational: bool,
    /// WWN.
    pub wwn: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Vendor string.
    pub vendor: Option<String>,
    /// WWN with vendor extension.
    pub wwn_with_extension: Option<String>,
    /// WWN vendor extension.
    pub wwn_vendor_extension: Option<String>,
    /// SCSI host:channel:target:lun.
    pub hctl: Option<String>,
    /// The `/dev/disk/by-path` link.
    pub by_path: Option<String>,
    /// Logical sector size.
    pub logical_sectors: Option<u64>,
    /// Physical sector size.
    pub physical_sectors: Option<u64>,
    /// Transport (`sata`, `nvme`, …), null when empty.
    pub tran: Option<String>,
}

/// Memory totals (IPA's `Memory`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Usable RAM in bytes.
    pub total: u64,
    /// Installed RAM in MiB, from DMI; null when unknown.
    pub physical_mb: Option<u64>,
}

/// Firmware identity inside [`SystemVendor`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Firmware {
    /// BIOS vendor.
    pub vendor: String,
    /// BIOS version.
    pub version: String,
    /// BIOS release date.
    pub build_date: String,
}

/// DMI system identity (IPA's `SystemVendorInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemVendor {
    /// Product name.
    pub product_name: String,
    /// Serial number.
    pub serial_number: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Firmware details.
    pub firmware: Firmware,
}

/// Boot information (IPA's `BootInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BootInfo {
    /// `uefi` or `bios`.
    pub current_boot_mode: String,
    /// The raw `BOOTIF` kernel parameter.
    pub pxe_interface: Option<String>,
}

impl Inventory {
    /// MAC addresses of all interfaces that have one, for lookup.
    pub fn mac_addresses(&self) -> Vec<String> {
        self.interfaces
            .iter()
            .filter_map(|iface| iface.mac_address.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmc_mac_is_absent_unless_found_and_frequency_is_a_string() {
        let inventory = Inventory {
            cpu: Cpu {
                frequency: "3500.0000".into(),
                ..Cpu::default()
            },
            ..Inventory::default()
        };
        let json = serde_json::to_value(&inventory).expect("json");
        assert!(json.get("bmc_mac").is_none());
        assert!(json["bmc_address"].is_null());
        assert!(json["cpu"]["frequency"].is_string());
    }
}
