//! Block devices (`inventory.disks`, ipa-protocol.md §5.4).
//!
//! `lsblk` (through the [`CommandRunner`]) is the source of the list; udev's
//! database (`<run>/udev/data/b<maj>:<min>`) fills in WWN and serial; sysfs gives
//! vendor and HCTL; `<dev>/disk/by-path` gives `by_path`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::inventory::BlockDevice;
use super::sysfs::{list_dir, read_trimmed};
use crate::host::{lsblk, CommandRunner, CommandSpec, DeviceAllowlist};

/// The columns IPA asks lsblk for, in IPA's order.
pub const LSBLK_COLUMNS: [&str; 12] = [
    "KNAME", "MODEL", "SIZE", "ROTA", "TYPE", "UUID", "PARTUUID", "SERIAL", "WWN", "LOG-SEC",
    "PHY-SEC", "TRAN",
];

/// `lsblk -bia --json -oKNAME,MODEL,…` exactly as IPA runs it.
pub fn lsblk_command() -> CommandSpec {
    CommandSpec::new(
        "lsblk",
        [
            "-bia".to_string(),
            "--json".to_string(),
            format!("-o{}", LSBLK_COLUMNS.join(",")),
        ],
    )
}

/// A disk plus every serial/WWN known for it (IPA's all-values mode, used for hints).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskCandidate {
    /// The inventory record (lsblk value preferred, udev as fallback).
    pub device: BlockDevice,
    /// Every distinct serial: lsblk's, then udev's.
    pub all_serials: Vec<String>,
    /// Every distinct WWN: lsblk's, then udev's.
    pub all_wwns: Vec<String>,
    /// The lsblk `TYPE`.
    pub devtype: String,
}

/// Where disk data besides lsblk comes from.
#[derive(Debug, Clone)]
pub struct DiskSources {
    /// sysfs root.
    pub sys_root: PathBuf,
    /// `/dev` root (for `disk/by-path`).
    pub dev_root: PathBuf,
    /// `/run` root (for `udev/data`).
    pub run_root: PathBuf,
    /// `block_device_allowlist`; when restricted only listed devices are offered, and
    /// listed loop devices are offered too.
    pub allowlist: DeviceAllowlist,
}

/// One lsblk row with its values normalized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LsblkRow {
    /// KNAME.
    pub kname: String,
    /// MODEL.
    pub model: Option<String>,
    /// SIZE in bytes.
    pub size: u64,
    /// ROTA.
    pub rotational: bool,
    /// TYPE, lower case.
    pub devtype: String,
    /// SERIAL.
    pub serial: Option<String>,
    /// WWN.
    pub wwn: Option<String>,
    /// LOG-SEC.
    pub log_sec: Option<u64>,
    /// PHY-SEC.
    pub phy_sec: Option<u64>,
    /// TRAN (empty as `None`).
    pub tran: Option<String>,
}

/// Parses `lsblk --json` output. Every IPA column must be present in every row.
pub fn parse_lsblk(json: &str) -> Result<Vec<LsblkRow>, String> {
    let rows = lsblk::rows(json)?;
    let mut out = Vec::with_capacity(rows.len());
    for obj in rows {
        for column in LSBLK_COLUMNS {
            if !obj.contains_key(&column.to_ascii_lowercase()) {
                return Err(format!(
                    "lsblk output lacks column {column}: {}",
                    Value::Object(obj.clone())
                ));
            }
        }
        let get = |k: &str| obj.get(k);
        out.push(LsblkRow {
            kname: lsblk::text(get("kname")).unwrap_or_default(),
            model: lsblk::text(get("model")),
            size: lsblk::number(get("size")).unwrap_or(0),
            rotational: lsblk::flag(get("rota")),
            devtype: lsblk::text(get("type"))
                .unwrap_or_default()
                .to_ascii_lowercase(),
            serial: lsblk::non_empty(get("serial")),
            wwn: lsblk::non_empty(get("wwn")),
            log_sec: lsblk::number(get("log-sec")),
            phy_sec: lsblk::number(get("phy-sec")),
            tran: lsblk::non_empty(get("tran")),
        });
    }
    Ok(out)
}

/// Whether IPA keeps a row of this TYPE when listing disks (`disk`, `*raid*`, `mpath`).
fn type_kept(devtype: &str) -> bool {
    devtype == "disk" || devtype.contains("raid") || devtype == "mpath"
}

/// Whether `kname` is a member path of a multipath device (a `dm-*` holder whose
/// `dm/uuid` starts with `mpath-`).
pub fn is_multipath_member(sys_root: &Path, kname: &str) -> bool {
    let holders = sys_root.join("class/block").join(kname).join("holders");
    list_dir(&holders).iter().any(|holder| {
        holder.starts_with("dm-")
            && read_trimmed(&sys_root.join("class/block").join(holder).join("dm/uuid"))
                .is_some_and(|uuid| uuid.starts_with("mpath-"))
    })
}

/// The udev properties (`E:` lines) of a block device, empty when unknown.
pub fn udev_properties(sources: &DiskSources, kname: &str) -> BTreeMap<String, String> {
    let Some(majmin) = read_trimmed(&sources.sys_root.join("class/block").join(kname).join("dev"))
    else {
        return BTreeMap::new();
    };
    let path = sources.run_root.join(format!("udev/data/b{majmin}"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|line| line.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The `/dev/disk/by-path/*` link that points at the device, by name order.
pub fn by_path_link(dev_root: &Path, kname: &str) -> Option<String> {
    let dir = dev_root.join("disk/by-path");
    list_dir(&dir).into_iter().find_map(|entry| {
        let target = std::fs::read_link(dir.join(&entry)).ok()?;
        (target.file_name()?.to_str()? == kname).then(|| format!("/dev/disk/by-path/{entry}"))
    })
}

fn first_prop(props: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|k| props.get(*k))
        .find(|v| !v.is_empty())
        .cloned()
}

fn push_distinct(list: &mut Vec<String>, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

/// Applies IPA's keep/drop rules and fills every field, in lsblk order.
pub fn select_disks(rows: Vec<LsblkRow>, sources: &DiskSources) -> Vec<DiskCandidate> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for row in rows {
        let name = format!("/dev/{}", row.kname);
        let allowlisted =
            sources.allowlist.is_restricted() && sources.allowlist.permits(Path::new(&name));
        if sources.allowlist.is_restricted() && !allowlisted {
            continue;
        }
        let kept = type_kept(&row.devtype) || (allowlisted && row.devtype == "loop");
        if !kept || row.kname.is_empty() {
            continue;
        }
        let k = row.kname.as_str();
        if k.starts_with("fd") || k.starts_with("ram") || k.starts_with("zram") {
            continue;
        }
        if row.size == 0 || !seen.insert(row.kname.clone()) {
            continue;
        }
        if row.devtype == "disk" && is_multipath_member(&sources.sys_root, k) {
            tracing::debug!("{name} is a multipath member path; the dm device is listed instead");
            continue;
        }
        let props = udev_properties(sources, k);
        // IPA: `ID_<X> or DM_<X>`; the serial prefers SERIAL_SHORT, then SERIAL.
        let udev_wwn = first_prop(&props, &["ID_WWN", "DM_WWN"]);
        let udev_serial_short = first_prop(&props, &["ID_SERIAL_SHORT", "DM_SERIAL_SHORT"]);
        let udev_serial_long = first_prop(&props, &["ID_SERIAL", "DM_SERIAL"]);
        // All-values mode (root-device hints): lsblk's value and every udev value.
        let mut all_serials = Vec::new();
        push_distinct(&mut all_serials, row.serial.clone());
        push_distinct(&mut all_serials, udev_serial_short.clone());
        push_distinct(&mut all_serials, udev_serial_long.clone());
        let mut all_wwns = Vec::new();
        push_distinct(&mut all_wwns, row.wwn.clone());
        push_distinct(&mut all_wwns, udev_wwn.clone());
        let udev_serial = udev_serial_short.or(udev_serial_long);
        let block = sources.sys_root.join("class/block").join(k);
        let device = BlockDevice {
            name: name.clone(),
            model: row.model,
            size: row.size,
            rotational: row.rotational,
            wwn: row.wwn.or(udev_wwn),
            serial: row.serial.or(udev_serial),
            vendor: read_trimmed(&block.join("device/vendor")),
            wwn_with_extension: first_prop(
                &props,
                &["ID_WWN_WITH_EXTENSION", "DM_WWN_WITH_EXTENSION"],
            ),
            wwn_vendor_extension: first_prop(
                &props,
                &["ID_WWN_VENDOR_EXTENSION", "DM_WWN_VENDOR_EXTENSION"],
            ),
            hctl: list_dir(&block.join("device/scsi_device"))
                .into_iter()
                .next(),
            by_path: by_path_link(&sources.dev_root, k),
            logical_sectors: row.log_sec,
            physical_sectors: row.phy_sec,
            tran: row.tran,
        };
        out.push(DiskCandidate {
            device,
            all_serials,
            all_wwns,
            devtype: row.devtype,
        });
    }
    out
}

/// Runs lsblk and returns the disks; a failure is one warning and an empty list.
pub async fn list_disks(
    runner: &dyn CommandRunner,
    sources: &DiskSources,
    warnings: &mut Vec<String>,
) -> Vec<DiskCandidate> {
    let spec = lsblk_command();
    let output = match runner.run(spec.clone()).await {
        Ok(output) => output,
        Err(err) => {
            warnings.push(format!("cannot run {spec}: {err}; no disks listed"));
            return Vec::new();
        }
    };
    if !output.success() {
        warnings.push(format!(
            "{spec} failed with {}: {}; no disks listed",
            output.describe_exit(),
            output.stderr.trim()
        ));
        return Vec::new();
    }
    match parse_lsblk(&output.stdout) {
        Ok(rows) => select_disks(rows, sources),
        Err(err) => {
            warnings.push(format!("{err}; no disks listed"));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::testutil::{CannedRunner, Tree};

    const GIB: u64 = 1 << 30;

    fn row(kname: &str, devtype: &str, size: u64) -> Value {
        serde_json::json!({"kname": kname, "model": null, "size": size, "rota": false,
            "type": devtype, "uuid": null, "partuuid": null, "serial": null, "wwn": null,
            "log-sec": 512, "phy-sec": 512, "tran": null})
    }

    fn lsblk_fixture() -> String {
        let mut sda = row("sda", "disk", 480 * GIB);
        sda["model"] = "INTEL SSDSC2KB48".into();
        sda["serial"] = "PHYS12345".into();
        sda["wwn"] = "0x55cd2e414e2b1234".into();
        sda["tran"] = "sata".into();
        let mut nvme = row("nvme0n1", "disk", 960 * GIB);
        nvme["model"] = "Dell Ent NVMe".into();
        nvme["tran"] = "nvme".into();
        nvme["phy-sec"] = 4096.into();
        // Old lsblk prints strings.
        let vda = serde_json::json!({"kname": "vda", "model": null, "size": "21474836480",
            "rota": "1", "type": "disk", "uuid": null, "partuuid": null, "serial": "",
            "wwn": "", "log-sec": "512", "phy-sec": "512", "tran": ""});
        let rows = vec![
            sda,
            row("sda1", "part", GIB),
            nvme,
            vda,
            row("sdb", "disk", 100 * GIB),
            row("sdc", "disk", 100 * GIB),
            row("dm-0", "mpath", 100 * GIB),
            row("md127", "raid1", 200 * GIB),
            row("sdd", "disk", 0),
            row("ram0", "disk", 16 << 20),
            row("zram0", "disk", 8 * GIB),
            row("fd0", "disk", 1 << 20),
            row("loop0", "loop", 5 * GIB),
            row("sr0", "rom", GIB),
            row("sda", "disk", 480 * GIB),
        ];
        serde_json::json!({ "blockdevices": rows }).to_string()
    }

    fn tree() -> Tree {
        let t = Tree::new();
        t.file("sys/class/block/sda/dev", "8:0\n");
        t.file("sys/class/block/sda/device/vendor", "ATA     \n");
        t.dir("sys/class/block/sda/device/scsi_device/0:0:0:0");
        t.file("sys/class/block/vda/dev", "252:0\n");
        t.file("sys/class/block/vda/device/vendor", "0x1af4\n");
        t.file(
            "run/udev/data/b8:0",
            "S:disk/by-id/wwn-0x55cd2e414e2b1234\nE:ID_SERIAL=INTEL_SSDSC2KB48_PHYS12345\n\
             E:ID_SERIAL_SHORT=PHYS12345-U\nE:ID_WWN=0x55cd2e414e2b1234\n\
             E:ID_WWN_WITH_EXTENSION=0x55cd2e414e2b1234ext\nE:ID_WWN_VENDOR_EXTENSION=0xext\n",
        );
        t.file(
            "run/udev/data/b252:0",
            "E:ID_SERIAL=virtio-serial-1\nE:ID_WWN=0xvirt\n",
        );
        t.file("sys/class/block/dm-0/dm/uuid", "mpath-3600a098038304437\n");
        t.dir("sys/class/block/sdb/holders/dm-0");
        t.dir("sys/class/block/sdc/holders/dm-0");
        t.link("dev/disk/by-path/pci-0000:00:17.0-ata-1", "../../sda");
        t.link(
            "dev/disk/by-path/pci-0000:00:17.0-ata-1-part1",
            "../../sda1",
        );
        t
    }

    fn sources(t: &Tree, allow: &[&str]) -> DiskSources {
        DiskSources {
            sys_root: t.path("sys"),
            dev_root: t.path("dev"),
            run_root: t.path("run"),
            allowlist: DeviceAllowlist::new(allow.iter().copied()),
        }
    }

    #[test]
    fn inspector_disks_keep_drop_rules_and_fields() {
        let t = tree();
        let rows = parse_lsblk(&lsblk_fixture()).expect("parse");
        let disks = select_disks(rows, &sources(&t, &[]));
        let names: Vec<&str> = disks.iter().map(|d| d.device.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "/dev/sda",
                "/dev/nvme0n1",
                "/dev/vda",
                "/dev/dm-0",
                "/dev/md127"
            ]
        );
        let sda = &disks[0];
        assert_eq!(sda.device.model.as_deref(), Some("INTEL SSDSC2KB48"));
        assert_eq!(sda.device.serial.as_deref(), Some("PHYS12345"));
        assert_eq!(
            sda.all_serials,
            ["PHYS12345", "PHYS12345-U", "INTEL_SSDSC2KB48_PHYS12345"]
        );
        assert_eq!(sda.device.wwn.as_deref(), Some("0x55cd2e414e2b1234"));
        assert_eq!(sda.all_wwns, ["0x55cd2e414e2b1234"]);
        assert_eq!(
            sda.device.wwn_with_extension.as_deref(),
            Some("0x55cd2e414e2b1234ext")
        );
        assert_eq!(sda.device.wwn_vendor_extension.as_deref(), Some("0xext"));
        assert_eq!(sda.device.vendor.as_deref(), Some("ATA"));
        assert_eq!(sda.device.hctl.as_deref(), Some("0:0:0:0"));
        assert_eq!(
            sda.device.by_path.as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:17.0-ata-1")
        );
        assert_eq!(sda.device.tran.as_deref(), Some("sata"));
        assert_eq!(sda.device.size, 480 * GIB);

        let nvme = &disks[1];
        assert_eq!(nvme.device.physical_sectors, Some(4096));
        assert_eq!(nvme.device.tran.as_deref(), Some("nvme"));
        assert_eq!(nvme.device.serial, None);
        assert_eq!(nvme.device.hctl, None);

        let vda = &disks[2];
        assert!(vda.device.rotational);
        assert_eq!(vda.device.size, 20 * GIB);
        assert_eq!(vda.device.serial.as_deref(), Some("virtio-serial-1"));
        assert_eq!(vda.device.wwn.as_deref(), Some("0xvirt"));
        assert_eq!(vda.device.vendor.as_deref(), Some("0x1af4"));
        assert_eq!(vda.device.tran, None);
        assert_eq!(vda.device.logical_sectors, Some(512));
        assert_eq!(disks[3].devtype, "mpath");
    }

    #[test]
    fn inspector_disks_allowlist_restricts_and_admits_loop() {
        let t = tree();
        let rows = parse_lsblk(&lsblk_fixture()).expect("parse");
        let disks = select_disks(rows, &sources(&t, &["/dev/loop0", "/dev/nvme0n1"]));
        let names: Vec<&str> = disks.iter().map(|d| d.device.name.as_str()).collect();
        assert_eq!(names, ["/dev/nvme0n1", "/dev/loop0"]);
    }

    #[test]
    fn inspector_disks_missing_column_is_an_error() {
        let json = r#"{"blockdevices": [{"kname": "sda", "size": 1}]}"#;
        let err = parse_lsblk(json).expect_err("missing columns");
        assert!(err.contains("MODEL"), "{err}");
    }

    #[actix_rt::test]
    async fn inspector_disks_runs_lsblk_through_the_runner() {
        let t = tree();
        let runner = CannedRunner::default().with("lsblk", 0, &lsblk_fixture());
        let mut warnings = Vec::new();
        let disks = list_disks(&runner, &sources(&t, &[]), &mut warnings).await;
        assert_eq!(disks.len(), 5);
        assert!(warnings.is_empty());
        assert_eq!(
            runner.calls(),
            ["lsblk -bia --json -oKNAME,MODEL,SIZE,ROTA,TYPE,UUID,PARTUUID,SERIAL,WWN,LOG-SEC,PHY-SEC,TRAN"]
        );
    }

    #[actix_rt::test]
    async fn inspector_disks_missing_lsblk_is_one_warning() {
        let t = tree();
        let runner = CannedRunner::default();
        let mut warnings = Vec::new();
        let disks = list_disks(&runner, &sources(&t, &[]), &mut warnings).await;
        assert!(disks.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }
}
