//! Block-device enumeration for the generic steps (lsblk with the columns they need:
//! partitions, read-only flags, signatures; rows read by [`crate::host::lsblk`] as the
//! inspector's are), and direct-I/O helpers shared by the erase and image-write paths.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::host::{lsblk, CommandRunner, CommandSpec, DeviceAllowlist};

/// The label of the virtual-media device IPA never touches.
pub const VIRTUAL_MEDIA_LABEL: &str = "ir-vfd-dev";

/// One block device as `lsblk` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDev {
    /// `/dev/<kname>`.
    pub path: PathBuf,
    /// `disk`, `part`, `loop`, `raid1`, `rom`…
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Read-only flag.
    pub read_only: bool,
    /// File system / signature type (`ext4`, `linux_raid_member`, `gfs2`…).
    pub fstype: Option<String>,
    /// Partition type GUID or MBR code.
    pub parttype: Option<String>,
    /// File system label.
    pub label: Option<String>,
    /// The parent disk's kernel name, for partitions.
    pub parent: Option<String>,
    /// Logical sector size.
    pub logical_sector: u64,
}

impl BlockDev {
    /// Whether this is a whole disk (not a partition).
    pub fn is_disk(&self) -> bool {
        matches!(self.kind.as_str(), "disk" | "loop")
    }

    /// Whether this is a partition.
    pub fn is_partition(&self) -> bool {
        self.kind == "part"
    }

    /// Whether this is a Linux software-RAID member or array.
    pub fn is_raid(&self) -> bool {
        self.kind.starts_with("raid") || self.fstype.as_deref() == Some("linux_raid_member")
    }

    /// Whether this is the virtual-media device (label `ir-vfd-dev`).
    pub fn is_virtual_media(&self) -> bool {
        self.label.as_deref() == Some(VIRTUAL_MEDIA_LABEL)
            || std::fs::canonicalize(format!("/dev/disk/by-label/{VIRTUAL_MEDIA_LABEL}"))
                .is_ok_and(|vm| vm == self.path)
    }

    /// The kernel name (`sda`, `loop3`).
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The lsblk columns read here.
const COLUMNS: &str = "KNAME,TYPE,SIZE,RO,FSTYPE,PARTTYPE,LABEL,PKNAME,LOG-SEC";

/// Parses `lsblk -J -l -b -o <COLUMNS>` output.
pub fn parse_lsblk(json: &str) -> io::Result<Vec<BlockDev>> {
    let rows = lsblk::rows(json).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    Ok(rows
        .iter()
        .filter_map(|d| {
            let kname = lsblk::non_empty(d.get("kname"))?;
            let sector = lsblk::number(d.get("log-sec")).unwrap_or(0);
            Some(BlockDev {
                path: PathBuf::from(format!("/dev/{kname}")),
                kind: lsblk::text(d.get("type")).unwrap_or_default(),
                size: lsblk::number(d.get("size")).unwrap_or(0),
                read_only: lsblk::flag(d.get("ro")),
                fstype: lsblk::non_empty(d.get("fstype")),
                parttype: lsblk::non_empty(d.get("parttype")),
                label: lsblk::non_empty(d.get("label")),
                parent: lsblk::non_empty(d.get("pkname")),
                logical_sector: if sector == 0 { 512 } else { sector },
            })
        })
        .collect())
}

/// Lists disks (and partitions when asked) that the allow-list permits.
///
/// With an allow-list configured only the listed devices (and their
/// partitions) are queried at all; without one every block device is.
pub async fn list_devices(
    runner: &dyn CommandRunner,
    allowlist: &DeviceAllowlist,
    partitions: bool,
) -> io::Result<Vec<BlockDev>> {
    let mut args = vec![
        "-J".to_string(),
        "-l".into(),
        "-b".into(),
        "-o".into(),
        COLUMNS.into(),
    ];
    args.extend(allowlist.devices().iter().map(|d| d.display().to_string()));
    let out = runner.run(CommandSpec::new("lsblk", args)).await?;
    if !out.success() {
        return Err(io::Error::other(format!(
            "lsblk failed ({}): {}",
            out.describe_exit(),
            out.stderr.trim()
        )));
    }
    let mut devices: Vec<BlockDev> = parse_lsblk(&out.stdout)?
        .into_iter()
        // Loop devices count as disks only when an allow-list names them (tests);
        // otherwise they are the live image's own file systems, as in IPA (type disk).
        .filter(|d| {
            (d.kind == "disk" || (d.kind == "loop" && allowlist.is_restricted()))
                || d.is_raid()
                || (partitions && d.is_partition())
        })
        // md arrays are listed only as holders of the queried (allowed) disks;
        // their member partitions are checked before anything touches them.
        .filter(|d| d.kind.starts_with("raid") || allowlist.permits(&d.path))
        .collect();
    devices.sort_by(|a, b| a.path.cmp(&b.path));
    devices.dedup_by(|a, b| a.path == b.path);
    Ok(devices)
}

/// Refuses any device the allow-list does not permit.
pub fn check_allowed(allowlist: &DeviceAllowlist, device: &Path) -> io::Result<()> {
    if allowlist.permits(device) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not in the block device allow-list; refusing to touch it",
                device.display()
            ),
        ))
    }
}

/// A heap buffer aligned for `O_DIRECT` (4 KiB).
pub struct AlignedBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .finish()
    }
}

/// Alignment of direct-I/O buffers.
pub const DIRECT_ALIGN: usize = 4096;

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        let storage = vec![0u8; len + DIRECT_ALIGN];
        let offset = storage.as_ptr().align_offset(DIRECT_ALIGN);
        Self {
            storage,
            offset,
            len,
        }
    }

    /// The aligned bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    /// The aligned bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }

    /// Capacity in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no capacity.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Opens a block device for writing with `O_DIRECT`.
pub fn open_direct(device: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(device)
}

/// The size of a block device (or file) in bytes.
pub fn device_size(device: &Path) -> io::Result<u64> {
    let mut file = File::open(device)?;
    file.seek(SeekFrom::End(0))
}

/// Zeroes the first and last `sectors` sectors of `device` with direct I/O
/// (IPA's `dd if=/dev/zero … oflag=direct` for the primary and backup GPT).
pub fn zero_ends(device: &Path, sector_size: u64, sectors: u64) -> io::Result<()> {
    let size = device_size(device)?;
    let span = (sector_size * sectors).min(size);
    if span == 0 {
        return Ok(());
    }
    let buf = AlignedBuf::zeroed(span as usize);
    let file = open_direct(device)?;
    file.write_all_at(buf.as_slice(), 0)?;
    let tail = size - span;
    let tail = tail - tail % sector_size;
    file.write_all_at(buf.as_slice(), tail)?;
    file.sync_all()?;
    Ok(())
}

/// Writes `bytes` at offset 0 of `path` and syncs (used for small fix-ups).
pub fn write_head(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lsblk_list_output() {
        let json = r#"{"blockdevices": [
            {"kname":"sda","type":"disk","size":1000,"ro":false,"fstype":null,"parttype":null,"label":null,"pkname":null,"log-sec":512},
            {"kname":"sda1","type":"part","size":"500","ro":"1","fstype":"linux_raid_member","parttype":"0xfb","label":"x","pkname":"sda","log-sec":4096}
        ]}"#;
        let devs = parse_lsblk(json).expect("parse");
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].path, PathBuf::from("/dev/sda"));
        assert!(devs[0].is_disk() && !devs[0].read_only);
        assert!(devs[1].is_partition() && devs[1].read_only && devs[1].is_raid());
        assert_eq!(devs[1].size, 500);
        assert_eq!(devs[1].logical_sector, 4096);
        assert_eq!(devs[1].parent.as_deref(), Some("sda"));
    }

    #[test]
    fn aligned_buffer_is_aligned() {
        let buf = AlignedBuf::zeroed(10_000);
        assert_eq!(buf.as_slice().as_ptr() as usize % DIRECT_ALIGN, 0);
        assert_eq!(buf.len(), 10_000);
    }
}
