//! System logs as IPA sends them (`logs` inspection collector, `log.collect_system_logs`):
//! a base64 string of a tar.gz holding the journal and some command outputs.
//!
//! The CoreOS manager's journal comes first (`journalctl --root <host_root>`); when it is
//! missing or suspiciously small (< 50 bytes) the container's journal is used, as the
//! generic manager would. Every other source is best effort.

use std::io::Write;
use std::path::Path;

use base64::Engine;

use super::disks::LSBLK_COLUMNS;
use crate::host::{CommandRunner, CommandSpec};

/// Lines of journal IPA sends.
pub const JOURNAL_LINES: u32 = 10000;

/// IPA's extra command outputs (`COLLECT_LOGS_COMMANDS`), without `lshw` and `parted`.
pub fn log_commands() -> Vec<(&'static str, CommandSpec)> {
    vec![
        ("ps", CommandSpec::new("ps", ["au"])),
        ("df", CommandSpec::new("df", ["-a"])),
        ("iptables", CommandSpec::new("iptables", ["-L"])),
        ("ip_addr", CommandSpec::new("ip", ["addr"])),
        (
            "lsblk",
            CommandSpec::new(
                "lsblk",
                [
                    "--all".to_string(),
                    format!("-o{}", LSBLK_COLUMNS.join(",")),
                ],
            ),
        ),
        ("mount", CommandSpec::new("mount", Vec::<String>::new())),
        ("multipath", CommandSpec::new("multipath", ["-ll"])),
        ("dmesg", CommandSpec::new("dmesg", Vec::<String>::new())),
    ]
}

async fn output_of(runner: &dyn CommandRunner, spec: CommandSpec) -> Option<String> {
    match runner.run(spec.clone()).await {
        Ok(out) if out.success() => Some(out.stdout),
        Ok(out) => {
            tracing::debug!("log source {spec} failed with {}", out.describe_exit());
            None
        }
        Err(err) => {
            tracing::debug!("log source {spec} unavailable: {err}");
            None
        }
    }
}

/// The journal: the host's through `--root <host_root>` when usable, else the
/// container's own.
pub async fn journal(runner: &dyn CommandRunner, host_root: &Path) -> Option<String> {
    let lines = JOURNAL_LINES.to_string();
    let common = ["--full", "--no-pager", "-b", "-n", lines.as_str()];
    if host_root.is_dir() {
        let mut args = vec!["--root".to_string(), host_root.display().to_string()];
        args.extend(common.iter().map(|s| s.to_string()));
        if let Some(out) = output_of(runner, CommandSpec::new("journalctl", args)).await {
            if out.len() >= 50 {
                return Some(out);
            }
        }
    }
    output_of(runner, CommandSpec::new("journalctl", common)).await
}

/// Writes a ustar archive of `(name, content)` entries.
pub fn tar(entries: &[(String, Vec<u8>)], mtime: u64) -> Vec<u8> {
    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{:0width$o}\0", value, width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    }
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        let name_bytes = name.as_bytes();
        let n = name_bytes.len().min(100);
        h[..n].copy_from_slice(&name_bytes[..n]);
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], mtime);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let chk = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(chk.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// IPA's `gzip_and_b64encode`: tar, gzip, base64.
pub fn gzip_and_b64encode(entries: &[(String, Vec<u8>)]) -> std::io::Result<String> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let archive = tar(entries, mtime);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&archive)?;
    let bytes = gz.finish()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Collects the logs: journal (or nothing), command outputs, `/proc/mdstat`.
pub async fn collect_system_logs(
    runner: &dyn CommandRunner,
    host_root: &Path,
    proc_root: &Path,
) -> std::io::Result<String> {
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(journal) = journal(runner, host_root).await {
        entries.push(("journal".to_string(), journal.into_bytes()));
    }
    let commands = log_commands();
    let outputs = futures_util::future::join_all(
        commands
            .iter()
            .map(|(_, spec)| output_of(runner, spec.clone())),
    )
    .await;
    for ((name, _), output) in commands.iter().zip(outputs) {
        if let Some(output) = output {
            entries.push((name.to_string(), output.into_bytes()));
        }
    }
    if let Ok(mdstat) = std::fs::read(proc_root.join("mdstat")) {
        entries.push(("mdstat".to_string(), mdstat));
    }
    gzip_and_b64encode(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspector::testutil::{CannedRunner, Tree};

    fn unpack(b64: &str) -> Tree {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let t = Tree::new();
        t.bytes("logs.tar.gz", &bytes);
        t.dir("out");
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(t.path("logs.tar.gz"))
            .arg("-C")
            .arg(t.path("out"))
            .status()
            .expect("run tar");
        assert!(status.success(), "GNU tar rejects the archive");
        t
    }

    #[actix_rt::test]
    async fn inspector_logs_host_journal_and_commands_in_a_real_tar_gz() {
        let t = Tree::new();
        t.dir("mnt/coreos");
        t.file("proc/mdstat", "Personalities : [raid1]\n");
        let host_journal = "Nov 26 host kernel: a line long enough to count as a journal\n";
        let runner = CannedRunner::default()
            .with(
                &format!(
                    "journalctl --root {} --full --no-pager -b -n 10000",
                    t.path("mnt/coreos").display()
                ),
                0,
                host_journal,
            )
            .with("journalctl", 0, "container journal\n")
            .with("ps", 0, "PID TTY\n")
            .with("ip", 0, "1: lo: <LOOPBACK>\n")
            .with("dmesg", 1, "");
        let b64 = collect_system_logs(&runner, &t.path("mnt/coreos"), &t.path("proc"))
            .await
            .expect("logs");
        let out = unpack(&b64);
        let read = |n: &str| std::fs::read_to_string(out.path(&format!("out/{n}"))).ok();
        assert_eq!(read("journal").as_deref(), Some(host_journal));
        assert_eq!(read("ps").as_deref(), Some("PID TTY\n"));
        assert_eq!(read("ip_addr").as_deref(), Some("1: lo: <LOOPBACK>\n"));
        assert_eq!(read("mdstat").as_deref(), Some("Personalities : [raid1]\n"));
        assert_eq!(read("dmesg"), None, "failed commands are left out");
        assert_eq!(read("df"), None, "missing tools are left out");
    }

    #[actix_rt::test]
    async fn inspector_logs_small_host_journal_falls_back_to_container() {
        let t = Tree::new();
        t.dir("mnt/coreos");
        let runner = CannedRunner::default()
            .with(
                &format!(
                    "journalctl --root {} --full --no-pager -b -n 10000",
                    t.path("mnt/coreos").display()
                ),
                0,
                "-- No entries --\n",
            )
            .with(
                "journalctl --full --no-pager -b -n 10000",
                0,
                "container journal\n",
            );
        let b64 = collect_system_logs(&runner, &t.path("mnt/coreos"), &t.path("proc"))
            .await
            .expect("logs");
        let out = unpack(&b64);
        assert_eq!(
            std::fs::read_to_string(out.path("out/journal")).expect("journal"),
            "container journal\n"
        );
    }

    #[test]
    fn inspector_logs_tar_layout() {
        let archive = tar(&[("a".into(), b"hello".to_vec())], 0);
        assert_eq!(archive.len(), 512 + 512 + 1024);
        assert_eq!(&archive[257..263], b"ustar\0");
        assert_eq!(&archive[512..517], b"hello");
    }
}
