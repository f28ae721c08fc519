//! Loop devices over sparse files of ours (`losetup -f`), detached on drop, given a
//! GPT and a file system on request, and what a test reads back from them: the
//! primary and backup GPT headers, the file system's superblock, `wipefs` and
//! `blkid` signatures. Tests never touch any other device.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The first partition's start sector (`sgdisk` default alignment).
const PART_START_SECTOR: u64 = 2048;
/// The ext4 magic (`0xEF53`, little endian) at byte 0x438 of a file system.
const EXT4_MAGIC_OFFSET: u64 = 0x438;

/// A loop device over a sparse file in a temporary directory; partitions dropped
/// and the device detached on drop (also when the test panics).
pub struct LoopDisk {
    path: PathBuf,
    size: u64,
    _dir: tempfile::TempDir,
}

/// What a disk carries, read back without mounting anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskMarks {
    /// `EFI PART` at LBA 1.
    pub primary_gpt: bool,
    /// `EFI PART` at the last LBA.
    pub backup_gpt: bool,
    /// The ext4 magic in the first partition's superblock.
    pub ext4_in_partition: bool,
    /// `wipefs` signature types of the whole device (e.g. `gpt`, `PMBR`).
    pub wipefs: Vec<String>,
    /// `blkid -p` partition table type, if any.
    pub blkid_pttype: Option<String>,
}

impl DiskMarks {
    /// Nothing left: no GPT (either copy), no file system, no signature.
    pub fn is_blank(&self) -> bool {
        !self.primary_gpt
            && !self.backup_gpt
            && !self.ext4_in_partition
            && self.wipefs.is_empty()
            && self.blkid_pttype.is_none()
    }

    /// Everything [`LoopDisk::prepare`] wrote is still there.
    pub fn is_prepared(&self) -> bool {
        self.primary_gpt
            && self.backup_gpt
            && self.ext4_in_partition
            && self.wipefs.iter().any(|t| t == "gpt")
            && self.blkid_pttype.as_deref() == Some("gpt")
    }
}

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running {program}: {err}"));
    assert!(
        out.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl LoopDisk {
    /// Attaches a new sparse file of `size` bytes with partition scanning (`-P`).
    pub fn new(size: u64) -> LoopDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("disk.img");
        File::create(&image)
            .and_then(|f| f.set_len(size))
            .expect("sparse image");
        let path = run_ok(
            "losetup",
            &["-f", "--show", "-P", image.to_str().expect("utf-8")],
        );
        let path = PathBuf::from(path.trim());
        assert!(
            path.to_string_lossy().starts_with("/dev/loop"),
            "{}",
            path.display()
        );
        LoopDisk {
            path,
            size,
            _dir: dir,
        }
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `/dev/loopN` as text (for allow-lists).
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Writes a GPT with one 32 MiB Linux partition and an ext4 file system in it.
    pub fn prepare(&self) {
        let dev = self.name();
        run_ok("sgdisk", &["-n1:2048:+32M", "-t1:8300", "-c1:data", &dev]);
        let _ = Command::new("partx").args(["-u", &dev]).output();
        let part = format!("{dev}p1");
        super::fixture::wait_for("the partition node", Duration::from_secs(10), || {
            Path::new(&part).exists().then_some(())
        });
        run_ok("mkfs.ext4", &["-q", "-F", "-L", "e2e-data", &part]);
        let marks = self.marks();
        assert!(marks.is_prepared(), "{dev} not prepared: {marks:?}");
    }

    fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut file = File::open(&self.path).expect("open the loop device");
        file.seek(SeekFrom::Start(offset)).expect("seek");
        let mut buf = vec![0u8; len];
        file.read_exact(&mut buf).expect("read");
        buf
    }

    /// Reads back what the disk carries (the page cache is dropped first, so that
    /// writes through other handles, direct I/O included, are seen).
    pub fn marks(&self) -> DiskMarks {
        let dev = self.name();
        let _ = Command::new("blockdev")
            .args(["--flushbufs", &dev])
            .output();
        let wipefs = run_ok("wipefs", &["--noheadings", "--output", "TYPE", &dev])
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        // blkid exits 2 when it finds nothing.
        let blkid = Command::new("blkid")
            .args(["-p", "-o", "value", "-s", "PTTYPE", &dev])
            .output()
            .expect("blkid");
        let pttype = String::from_utf8_lossy(&blkid.stdout).trim().to_string();
        DiskMarks {
            primary_gpt: self.read_at(512, 8) == b"EFI PART",
            backup_gpt: self.read_at(self.size - 512, 8) == b"EFI PART",
            ext4_in_partition: self.read_at(PART_START_SECTOR * 512 + EXT4_MAGIC_OFFSET, 2)
                == [0x53, 0xEF],
            wipefs,
            blkid_pttype: (!pttype.is_empty()).then_some(pttype),
        }
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("partx").arg("-d").arg(&self.path).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.path).output();
    }
}
