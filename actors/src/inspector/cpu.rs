//! CPU summary (`inventory.cpu`, ipa-protocol.md §5.3) from `/proc/cpuinfo` and sysfs,
//! giving what `lscpu` would: model name, max (else current) MHz as a string,
//! logical CPU count, architecture, flags of the first CPU, socket count.

use std::collections::BTreeSet;
use std::path::Path;

use super::inventory::Cpu;
use super::sysfs::{list_dir, read_trimmed};

/// One `key: value` block of `/proc/cpuinfo`, keys lower-cased.
type Block = Vec<(String, String)>;

/// Splits `/proc/cpuinfo` into blocks separated by blank lines.
pub fn parse_cpuinfo(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Block = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

fn get<'a>(block: &'a Block, key: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `cpu<N>` directories of `<sys>/devices/system/cpu`.
fn cpu_dirs(sys_root: &Path) -> Vec<String> {
    list_dir(&sys_root.join("devices/system/cpu"))
        .into_iter()
        .filter(|n| {
            n.strip_prefix("cpu")
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
        })
        .collect()
}

/// The machine architecture: `<proc>/sys/kernel/arch`, else `uname -m`.
pub fn architecture(proc_root: &Path) -> String {
    read_trimmed(&proc_root.join("sys/kernel/arch")).unwrap_or_else(|| {
        nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

/// Builds the CPU summary; `warnings` gets one line when cpuinfo is unreadable.
pub fn cpu_info(sys_root: &Path, proc_root: &Path, warnings: &mut Vec<String>) -> Cpu {
    let cpuinfo_path = proc_root.join("cpuinfo");
    let blocks = match std::fs::read_to_string(&cpuinfo_path) {
        Ok(text) => parse_cpuinfo(&text),
        Err(err) => {
            warnings.push(format!("cannot read {}: {err}", cpuinfo_path.display()));
            Vec::new()
        }
    };
    let processors: Vec<&Block> = blocks
        .iter()
        .filter(|b| get(b, "processor").is_some_and(|v| v.parse::<u64>().is_ok()))
        .collect();
    let first = processors.first().copied().or(blocks.first());
    let find_any = |key: &str| {
        first
            .and_then(|b| get(b, key))
            .or_else(|| blocks.iter().find_map(|b| get(b, key)))
            .map(str::to_string)
    };
    // IPA: lscpu's "Model name", else "".
    let model_name = Some(
        find_any("model name")
            .or_else(|| find_any("cpu model"))
            .unwrap_or_default(),
    );
    let flags = find_any("flags")
        .or_else(|| find_any("features"))
        .map(|f| f.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();

    let dirs = cpu_dirs(sys_root);
    let count = if processors.is_empty() {
        dirs.len() as u64
    } else {
        processors.len() as u64
    };

    let max_khz = dirs
        .iter()
        .filter_map(|d| {
            read_trimmed(&sys_root.join(format!("devices/system/cpu/{d}/cpufreq/cpuinfo_max_freq")))
        })
        .filter_map(|v| v.parse::<u64>().ok())
        .max();
    let frequency = match max_khz {
        Some(khz) => format!("{:.4}", khz as f64 / 1000.0),
        None => find_any("cpu mhz").unwrap_or_default(),
    };

    let packages: BTreeSet<String> = dirs
        .iter()
        .filter_map(|d| {
            read_trimmed(&sys_root.join(format!(
                "devices/system/cpu/{d}/topology/physical_package_id"
            )))
        })
        .collect();
    let physical_ids: BTreeSet<&str> = processors
        .iter()
        .filter_map(|b| get(b, "physical id"))
        .collect();
    let socket_count = if !packages.is_empty() {
        Some(packages.len() as u64)
    } else if !physical_ids.is_empty() {
        Some(physical_ids.len() as u64)
    } else if count > 0 {
        Some(1)
    } else {
        None
    };

    Cpu {
        model_name,
        frequency,
        count,
        architecture: architecture(proc_root),
        flags,
        socket_count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::testutil::Tree;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\ncpu MHz\t\t: 1000.123\nphysical id\t: 0\nflags\t\t: fpu vme de pse\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\ncpu MHz\t\t: 2000.000\nphysical id\t: 1\nflags\t\t: fpu vme de pse sse\n\nprocessor\t: 2\nphysical id\t: 1\n\nprocessor\t: 3\nphysical id\t: 0\n";

    #[test]
    fn inspector_cpu_from_cpuinfo_and_sysfs() {
        let t = Tree::new();
        t.file("proc/cpuinfo", CPUINFO);
        t.file("proc/sys/kernel/arch", "x86_64\n");
        for (cpu, pkg, khz) in [(0, 0, 3_700_000), (1, 0, 3_700_000), (2, 1, 3_500_000)] {
            t.file(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                &format!("{pkg}\n"),
            );
            t.file(
                &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq"),
                &format!("{khz}\n"),
            );
        }
        t.file(
            "sys/devices/system/cpu/cpu3/topology/physical_package_id",
            "1\n",
        );
        t.dir("sys/devices/system/cpu/cpufreq");
        t.dir("sys/devices/system/cpu/cpuidle");
        let mut warnings = Vec::new();
        let cpu = cpu_info(&t.path("sys"), &t.path("proc"), &mut warnings);
        assert!(warnings.is_empty());
        assert_eq!(
            cpu.model_name.as_deref(),
            Some("Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz")
        );
        assert_eq!(cpu.frequency, "3700.0000");
        assert_eq!(cpu.count, 4);
        assert_eq!(cpu.architecture, "x86_64");
        assert_eq!(cpu.flags, ["fpu", "vme", "de", "pse"]);
        assert_eq!(cpu.socket_count, Some(2));
    }

    #[test]
    fn inspector_cpu_without_cpufreq_uses_cpuinfo_mhz_and_physical_ids() {
        let t = Tree::new();
        t.file("proc/cpuinfo", CPUINFO);
        let mut warnings = Vec::new();
        let cpu = cpu_info(&t.path("sys"), &t.path("proc"), &mut warnings);
        assert_eq!(cpu.frequency, "1000.123");
        assert_eq!(cpu.socket_count, Some(2));
        assert!(!cpu.architecture.is_empty(), "falls back to uname");
        let json = serde_json::to_value(&cpu).expect("json");
        assert!(json["frequency"].is_string());
        assert!(json["count"].is_u64());
    }

    #[test]
    fn inspector_cpu_arm_features_and_missing_cpuinfo() {
        let t = Tree::new();
        t.file(
            "proc/cpuinfo",
            "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm\nCPU implementer\t: 0x41\n\n",
        );
        let mut warnings = Vec::new();
        let cpu = cpu_info(&t.path("sys"), &t.path("proc"), &mut warnings);
        assert_eq!(cpu.flags, ["fp", "asimd", "evtstrm"]);
        assert_eq!(cpu.model_name.as_deref(), Some(""));
        assert_eq!(cpu.frequency, "");
        assert_eq!(cpu.count, 1);
        assert_eq!(cpu.socket_count, Some(1));

        let empty = Tree::new();
        let cpu = cpu_info(&empty.path("sys"), &empty.path("proc"), &mut warnings);
        assert_eq!(warnings.len(), 1);
        assert_eq!(cpu.count, 0);
    }
}
