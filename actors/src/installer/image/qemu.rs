//! Image format inspection (a small, safe header check) and `qemu-img convert`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::errors::AgentError;
use crate::host::{CommandRunner, CommandSpec};
use crate::installer::failures;

/// Detects the format of an image file from its headers.
pub fn detect_format(path: &Path) -> std::io::Result<&'static str> {
    let mut head = vec![0u8; 0x8010];
    let mut file = std::fs::File::open(path)?;
    let mut read = 0;
    while read < head.len() {
        let n = file.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    head.truncate(read);
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    Ok(if at(0, b"QFI\xfb") {
        "qcow2"
    } else if at(0, b"QED\0") {
        "qed"
    } else if at(0, b"KDMV") || at(0, b"# Disk DescriptorFile") {
        "vmdk"
    } else if at(0, b"vhdxfile") {
        "vhdx"
    } else if at(0, b"conectix") {
        "vpc"
    } else if at(0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        "vdi"
    } else if at(0, b"LUKS\xba\xbe") {
        "luks"
    } else if at(0x8001, b"CD001") {
        "iso"
    } else {
        "raw"
    })
}

/// Extra qcow2 safety checks: no backing file, no external data file.
pub fn check_qcow2_safety(path: &Path) -> Result<(), String> {
    let mut head = [0u8; 104];
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    file.read_exact(&mut head).map_err(|e| e.to_string())?;
    let be64 = |off: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[off..off + 8]);
        u64::from_be_bytes(b)
    };
    let version = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if be64(8) != 0 {
        return Err("qcow2 image has a backing file".into());
    }
    if version >= 3 && be64(72) & 0x4 != 0 {
        return Err("qcow2 image has an external data file".into());
    }
    Ok(())
}

/// Inspects a downloaded image (§10.5 "security inspection").
pub fn inspect(
    path: &Path,
    disk_format: Option<&str>,
    permitted: &[String],
) -> Result<&'static str, AgentError> {
    let detected = detect_format(path)
        .map_err(|err| failures::invalid_image(format!("cannot read the image: {err}")))?;
    if !permitted.iter().any(|f| f == detected) {
        return Err(failures::invalid_image(format!(
            "Image format {detected} is not in permitted_image_formats ({})",
            permitted.join(", ")
        )));
    }
    if let Some(wanted) = disk_format.filter(|f| !f.is_empty() && *f != "unknown") {
        let wanted = if wanted == "gpt" { "raw" } else { wanted };
        if wanted != detected {
            return Err(failures::invalid_image(format!(
                "Image format {detected} does not match the disk_format {wanted}"
            )));
        }
    }
    if detected == "qcow2" {
        check_qcow2_safety(path).map_err(failures::invalid_image)?;
    }
    Ok(detected)
}

/// How to run qemu-img: in the host root when it has one, else the agent's own.
#[derive(Debug, Clone)]
pub struct QemuImg {
    /// `chroot <root>` prefix, if the host's qemu-img is used.
    pub chroot: Option<PathBuf>,
}

impl QemuImg {
    /// Picks the host root's qemu-img when present.
    pub fn locate(host_root: &Path) -> Self {
        let in_host = ["usr/bin/qemu-img", "bin/qemu-img"]
            .iter()
            .any(|p| host_root.join(p).is_file());
        Self {
            chroot: in_host.then(|| host_root.to_path_buf()),
        }
    }

    fn spec(&self, args: Vec<String>) -> CommandSpec {
        let spec = CommandSpec::new("qemu-img", args);
        match &self.chroot {
            Some(root) => spec.in_chroot(root),
            None => spec,
        }
    }

    /// `qemu-img info --output=json`: the virtual size.
    pub async fn virtual_size(
        &self,
        runner: &dyn CommandRunner,
        file: &str,
        format: &str,
    ) -> Result<u64, String> {
        let out = runner
            .run(self.spec(vec![
                "info".into(),
                "--output=json".into(),
                "-f".into(),
                format.into(),
                file.into(),
            ]))
            .await
            .map_err(|e| format!("qemu-img info: {e}"))?;
        if !out.success() {
            return Err(format!("qemu-img info failed: {}", out.stderr.trim()));
        }
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.get("virtual-size").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| "qemu-img info gave no virtual-size".to_string())
    }

    /// IPA's conversion: `host_device`, `cache=directsync`, out of order, 3 attempts.
    pub async fn convert(
        &self,
        runner: &dyn CommandRunner,
        file: &str,
        format: &str,
        device: &str,
    ) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=3 {
            let out = runner
                .run(self.spec(vec![
                    "convert".into(),
                    "-f".into(),
                    format.into(),
                    "-O".into(),
                    "host_device".into(),
                    "-t".into(),
                    "directsync".into(),
                    "-S".into(),
                    "0".into(),
                    "-W".into(),
                    file.into(),
                    device.into(),
                ]))
                .await
                .map_err(|e| format!("qemu-img convert: {e}"))?;
            if out.success() {
                return Ok(());
            }
            last = format!(
                "qemu-img convert failed with {}: {}",
                out.describe_exit(),
                out.stderr.trim()
            );
            tracing::warn!(attempt, error = %last, "image conversion failed");
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_magic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("i");
        let mut q = b"QFI\xfb\0\0\0\x03".to_vec();
        q.resize(200, 0);
        std::fs::write(&p, &q).expect("write");
        assert_eq!(detect_format(&p).expect("detect"), "qcow2");
        assert!(check_qcow2_safety(&p).is_ok());
        q[15] = 1; // backing file offset
        std::fs::write(&p, &q).expect("write");
        assert!(check_qcow2_safety(&p).is_err());
        std::fs::write(&p, vec![0u8; 4096]).expect("write");
        assert_eq!(detect_format(&p).expect("detect"), "raw");
        let permitted = vec!["raw".to_string()];
        assert!(inspect(&p, Some("qcow2"), &permitted).is_err());
        assert!(inspect(&p, Some("raw"), &permitted).is_ok());
        std::fs::write(&p, b"vhdxfile........").expect("write");
        assert!(inspect(&p, None, &permitted).is_err());
    }
}
