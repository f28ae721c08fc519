//! Memory (`inventory.memory`) and DMI identity (`inventory.system_vendor`).
//!
//! `total` is `/proc/meminfo`'s MemTotal (psutil's value). `physical_mb` is what lshw
//! reports to IPA: the sum of the SMBIOS type 17 memory devices when the table
//! (`<sys>/firmware/dmi/tables/DMI`) is readable, else lshw's own fallback, the online
//! memory blocks of `<sys>/devices/system/memory`; null when neither is available.

use std::path::Path;

use super::inventory::{Firmware, Memory, SystemVendor};
use super::sysfs::{list_dir, read_trimmed};

/// MemTotal of a `/proc/meminfo` text, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("MemTotal:")?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// One SMBIOS structure: type, formatted area (header included) and strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmbiosStructure {
    /// The structure type (0 BIOS, 1 system, 17 memory device, …).
    pub kind: u8,
    /// The formatted area, header included (offsets as in the SMBIOS spec).
    pub data: Vec<u8>,
    /// The strings, 1-based in the spec (index 0 here is string 1).
    pub strings: Vec<String>,
}

impl SmbiosStructure {
    fn word(&self, offset: usize) -> Option<u16> {
        let b = self.data.get(offset..offset + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }

    fn dword(&self, offset: usize) -> Option<u32> {
        let b = self.data.get(offset..offset + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The string referenced by the byte at `offset`, if any.
    pub fn string_at(&self, offset: usize) -> Option<&str> {
        let idx = *self.data.get(offset)? as usize;
        if idx == 0 {
            return None;
        }
        self.strings.get(idx - 1).map(String::as_str)
    }
}

/// Splits a raw SMBIOS table (as in `/sys/firmware/dmi/tables/DMI`) into structures.
pub fn parse_smbios(table: &[u8]) -> Vec<SmbiosStructure> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= table.len() {
        let kind = table[pos];
        let len = table[pos + 1] as usize;
        if len < 4 || pos + len > table.len() {
            break;
        }
        let data = table[pos..pos + len].to_vec();
        let mut cursor = pos + len;
        let mut strings = Vec::new();
        // The string set ends with two NULs; an empty set is just "\0\0".
        loop {
            let Some(end) = table[cursor..].iter().position(|b| *b == 0) else {
                cursor = table.len();
                break;
            };
            if end == 0 {
                cursor += 1;
                if strings.is_empty() {
                    cursor += usize::from(table.get(cursor) == Some(&0));
                }
                break;
            }
            strings.push(String::from_utf8_lossy(&table[cursor..cursor + end]).into_owned());
            cursor += end + 1;
        }
        out.push(SmbiosStructure {
            kind,
            data,
            strings,
        });
        if kind == 127 {
            break;
        }
        pos = cursor;
    }
    out
}

/// The size in MiB of a type 17 structure; `None` when empty or unknown.
pub fn memory_device_mib(s: &SmbiosStructure) -> Option<u64> {
    let size = s.word(0x0C)?;
    match size {
        0 | 0xFFFF => None,
        0x7FFF => s
            .dword(0x1C)
            .map(|ext| u64::from(ext & 0x7FFF_FFFF))
            .filter(|v| *v > 0),
        v if v & 0x8000 != 0 => Some(u64::from(v & 0x7FFF) / 1024),
        v => Some(u64::from(v)),
    }
}

/// The sum of the SMBIOS memory devices in MiB, `None` when there are none.
pub fn smbios_physical_mb(table: &[u8]) -> Option<u64> {
    let sizes: Vec<u64> = parse_smbios(table)
        .iter()
        .filter(|s| s.kind == 17)
        .filter_map(memory_device_mib)
        .collect();
    (!sizes.is_empty()).then(|| sizes.iter().sum())
}

/// lshw's fallback: online memory blocks × `block_size_bytes`, in MiB.
pub fn sysfs_physical_mb(sys_root: &Path) -> Option<u64> {
    let dir = sys_root.join("devices/system/memory");
    let block = read_trimmed(&dir.join("block_size_bytes"))
        .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())?;
    let online = list_dir(&dir)
        .into_iter()
        .filter(|n| n.starts_with("memory"))
        .filter(|n| read_trimmed(&dir.join(n).join("online")).as_deref() == Some("1"))
        .count() as u64;
    (online > 0).then(|| online * block / (1024 * 1024))
}

/// Builds `inventory.memory`.
pub fn memory_info(sys_root: &Path, proc_root: &Path, warnings: &mut Vec<String>) -> Memory {
    let meminfo = proc_root.join("meminfo");
    let total = match std::fs::read_to_string(&meminfo) {
        Ok(text) => parse_meminfo_total(&text).unwrap_or(0),
        Err(err) => {
            warnings.push(format!("cannot read {}: {err}", meminfo.display()));
            0
        }
    };
    let physical_mb = std::fs::read(sys_root.join("firmware/dmi/tables/DMI"))
        .ok()
        .and_then(|table| smbios_physical_mb(&table))
        .or_else(|| sysfs_physical_mb(sys_root));
    if physical_mb.is_none() {
        warnings.push(
            "physical memory size unknown: no SMBIOS memory devices and no sysfs memory blocks"
                .to_string(),
        );
    }
    Memory { total, physical_mb }
}

/// Builds `inventory.system_vendor` from `<sys>/class/dmi/id`, else from the raw
/// SMBIOS table (types 1 and 0); missing values are `""`.
///
/// The product name carries the SKU in parentheses when there is one, as lshw
/// (and therefore IPA) reports it: `PowerEdge R640 (SKU=NotProvided;ModelName=…)`.
pub fn system_vendor(sys_root: &Path, warnings: &mut Vec<String>) -> SystemVendor {
    let dir = sys_root.join("class/dmi/id");
    if dir.is_dir() {
        let read = |name: &str| read_trimmed(&dir.join(name)).unwrap_or_default();
        return vendor_of(
            read("product_name"),
            read("product_sku"),
            read("product_serial"),
            read("sys_vendor"),
            Firmware {
                vendor: read("bios_vendor"),
                version: read("bios_version"),
                build_date: read("bios_date"),
            },
        );
    }
    let table_path = sys_root.join("firmware/dmi/tables/DMI");
    if let Ok(table) = std::fs::read(&table_path) {
        return smbios_system_vendor(&table);
    }
    warnings.push(format!(
        "neither {} nor {} exists: system vendor and firmware are empty",
        dir.display(),
        table_path.display()
    ));
    SystemVendor::default()
}

fn vendor_of(
    product: String,
    sku: String,
    serial_number: String,
    manufacturer: String,
    firmware: Firmware,
) -> SystemVendor {
    let product_name = if sku.is_empty() {
        product
    } else {
        format!("{product} ({sku})")
    };
    SystemVendor {
        product_name,
        serial_number,
        manufacturer,
        firmware,
    }
}

/// `system_vendor` from a raw SMBIOS table: type 1 (system) and type 0 (BIOS).
pub fn smbios_system_vendor(table: &[u8]) -> SystemVendor {
    let structs = parse_smbios(table);
    let text = |kind: u8, offset: usize| {
        structs
            .iter()
            .find(|s| s.kind == kind)
            .and_then(|s| s.string_at(offset))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    vendor_of(
        text(1, 0x05),
        text(1, 0x19),
        text(1, 0x07),
        text(1, 0x04),
        Firmware {
            vendor: text(0, 0x04),
            version: text(0, 0x05),
            build_date: text(0, 0x08),
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::inspector::testutil::Tree;

    fn structure(kind: u8, handle: u16, formatted: &[u8], strings: &[&str]) -> Vec<u8> {
        let mut out = vec![kind, (4 + formatted.len()) as u8];
        out.extend_from_slice(&handle.to_le_bytes());
        out.extend_from_slice(formatted);
        if strings.is_empty() {
            out.extend_from_slice(&[0, 0]);
        } else {
            for s in strings {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            out.push(0);
        }
        out
    }

    /// A type 17 structure (SMBIOS 3.x, 0x28 bytes) with the given size word/extended size.
    fn memory_device(handle: u16, size: u16, extended: u32) -> Vec<u8> {
        let mut f = vec![0u8; 0x28 - 4];
        f[0x0C - 4..0x0E - 4].copy_from_slice(&size.to_le_bytes());
        f[0x1C - 4..0x20 - 4].copy_from_slice(&extended.to_le_bytes());
        f[0x10 - 4] = 1; // device locator string
        structure(17, handle, &f, &["DIMM A1"])
    }

    /// A synthesized SMBIOS table: BIOS, system, three DIMMs (16 GiB, 64 GiB extended,
    /// 512 KiB), an empty slot, end of table.
    pub(crate) fn smbios_table() -> Vec<u8> {
        let mut t = Vec::new();
        // Type 0 (SMBIOS 2.4+, 0x18 bytes): vendor, version, segment, date, ROM size,
        // characteristics, extension bytes, release, EC release.
        let mut bios = vec![1u8, 2, 0x00, 0xF0, 3, 0xFF];
        bios.extend_from_slice(&0x0000_0000_0000_0080u64.to_le_bytes());
        bios.extend_from_slice(&[0x01, 0x00, 2, 10, 0xFF, 0xFF]);
        t.extend(structure(
            0,
            0,
            &bios,
            &["Dell Inc.", "2.10.2", "02/24/2021"],
        ));
        // Type 1 (0x1B bytes): manufacturer, product, version, serial, UUID, wake-up,
        // SKU, family.
        let mut sys = vec![1u8, 2, 3, 4];
        sys.extend_from_slice(&[0x44, 0x45, 0x4c, 0x4c, 0x42, 0x00, 0x10, 0x35]);
        sys.extend_from_slice(&[0x80, 0x52, 0xb4, 0xc0, 0x4f, 0x4e, 0x4d, 0x32]);
        sys.extend_from_slice(&[6, 5, 6]);
        t.extend(structure(
            1,
            1,
            &sys,
            &[
                "Dell Inc.",
                "PowerEdge R640",
                "Not Specified",
                "ABC1234",
                "SKU=0716",
                "PowerEdge",
            ],
        ));
        // Type 16 (0x0F bytes): location, use, ECC, max capacity, error handle, devices.
        let mut array = vec![3u8, 3, 3];
        array.extend_from_slice(&(256u32 * 1024 * 1024).to_le_bytes());
        array.extend_from_slice(&0xFFFEu16.to_le_bytes());
        array.extend_from_slice(&4u16.to_le_bytes());
        t.extend(structure(16, 0x1000, &array, &[]));
        t.extend(memory_device(0x1100, 16384, 0));
        t.extend(memory_device(0x1101, 0x7FFF, 65536));
        t.extend(memory_device(0x1102, 0x8000 | 512, 0));
        t.extend(memory_device(0x1103, 0, 0));
        t.extend(structure(127, 0xFEFF, &[], &[]));
        t
    }

    #[test]
    fn inspector_memory_smbios_type17_sum() {
        let table = smbios_table();
        let structs = parse_smbios(&table);
        assert_eq!(
            structs.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [0, 1, 16, 17, 17, 17, 17, 127]
        );
        assert_eq!(structs[1].string_at(5), Some("PowerEdge R640"));
        assert_eq!(structs[3].string_at(0x10), Some("DIMM A1"));
        // 16384 + 65536 + 0 (512 KiB rounds down) MiB.
        assert_eq!(smbios_physical_mb(&table), Some(81920));
    }

    #[test]
    fn inspector_memory_total_and_fallbacks() {
        let t = Tree::new();
        t.file(
            "proc/meminfo",
            "MemTotal:       24684160 kB\nMemFree:  1 kB\n",
        );
        t.file("sys/devices/system/memory/block_size_bytes", "8000000\n");
        for i in 0..3 {
            t.file(
                &format!("sys/devices/system/memory/memory{i}/online"),
                "1\n",
            );
        }
        t.file("sys/devices/system/memory/memory3/online", "0\n");
        let mut warnings = Vec::new();
        let mem = memory_info(&t.path("sys"), &t.path("proc"), &mut warnings);
        assert_eq!(mem.total, 24684160 * 1024);
        assert_eq!(mem.physical_mb, Some(3 * 128));
        assert!(warnings.is_empty());

        t.bytes("sys/firmware/dmi/tables/DMI", &smbios_table());
        let mem = memory_info(&t.path("sys"), &t.path("proc"), &mut warnings);
        assert_eq!(mem.physical_mb, Some(81920));

        let empty = Tree::new();
        let mem = memory_info(&empty.path("sys"), &empty.path("proc"), &mut warnings);
        assert_eq!(mem.physical_mb, None);
        assert_eq!(mem.total, 0);
        assert_eq!(warnings.len(), 2);
        let json = serde_json::to_value(&mem).expect("json");
        assert!(json["physical_mb"].is_null());
    }

    #[test]
    fn inspector_system_vendor_from_dmi_id() {
        let t = Tree::new();
        for (name, value) in [
            ("product_name", "PowerEdge R640"),
            ("product_sku", "SKU=NotProvided;ModelName=PowerEdge R640"),
            ("product_serial", "ABC1234"),
            ("sys_vendor", "Dell Inc."),
            ("bios_vendor", "Dell Inc."),
            ("bios_version", "2.10.2"),
            ("bios_date", "02/24/2021"),
        ] {
            t.file(&format!("sys/class/dmi/id/{name}"), &format!("{value}\n"));
        }
        let mut warnings = Vec::new();
        let v = system_vendor(&t.path("sys"), &mut warnings);
        assert_eq!(
            v.product_name,
            "PowerEdge R640 (SKU=NotProvided;ModelName=PowerEdge R640)"
        );
        assert_eq!(v.serial_number, "ABC1234");
        assert_eq!(v.manufacturer, "Dell Inc.");
        assert_eq!(v.firmware.vendor, "Dell Inc.");
        assert_eq!(v.firmware.version, "2.10.2");
        assert_eq!(v.firmware.build_date, "02/24/2021");
        assert!(warnings.is_empty());

        let smbios = Tree::new();
        smbios.bytes("sys/firmware/dmi/tables/DMI", &smbios_table());
        let v = system_vendor(&smbios.path("sys"), &mut warnings);
        assert_eq!(v.product_name, "PowerEdge R640 (SKU=0716)");
        assert_eq!(v.serial_number, "ABC1234");
        assert_eq!(v.manufacturer, "Dell Inc.");
        assert_eq!(v.firmware.vendor, "Dell Inc.");
        assert_eq!(v.firmware.version, "2.10.2");
        assert_eq!(v.firmware.build_date, "02/24/2021");
        assert!(warnings.is_empty());

        let vm = Tree::new();
        let v = system_vendor(&vm.path("sys"), &mut warnings);
        assert_eq!(v, SystemVendor::default());
        assert_eq!(warnings.len(), 1);
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["firmware"]["build_date"], "");
    }
}
