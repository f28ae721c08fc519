//! `log.collect_system_logs`: a base64 tar.gz of diagnostic command outputs.
//!
//! The host journal first (`journalctl --root <host_root>`, as the CoreOS
//! manager does; the container's own journal when that is missing or
//! suspiciously small), then `dmesg`, `ps`, `df`, `lsblk`, `ip addr`, `mount`.
//! A tool that is missing or fails is skipped; the archive is never empty
//! because it also carries an index of what was collected.

use std::io::Write;

use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::config::HostPaths;
use crate::errors::AgentError;
use crate::host::{CommandRunner, CommandSpec};

/// A journal shorter than this is treated as "not available" (as the CoreOS manager does).
pub const MIN_JOURNAL_BYTES: usize = 50;

/// The commands collected, as `(file name in the archive, program, args)`.
pub fn diagnostic_commands() -> Vec<(&'static str, CommandSpec)> {
    vec![
        ("dmesg", CommandSpec::new("dmesg", Vec::<String>::new())),
        ("ps", CommandSpec::new("ps", ["au"])),
        ("df", CommandSpec::new("df", ["-a"])),
        (
            "lsblk",
            CommandSpec::new(
                "lsblk",
                ["--all", "-o", "+UUID,PTUUID,PARTTYPE,PARTUUID,FSTYPE"],
            ),
        ),
        ("ip_addr", CommandSpec::new("ip", ["addr"])),
        ("mount", CommandSpec::new("mount", Vec::<String>::new())),
    ]
}

async fn output_of(runner: &dyn CommandRunner, spec: CommandSpec) -> Option<String> {
    let shown = spec.to_string();
    match runner.run(spec).await {
        Ok(output) if output.success() => Some(output.stdout),
        Ok(output) => {
            tracing::debug!(command = %shown, exit = %output.describe_exit(), "log command failed, skipped");
            None
        }
        Err(err) => {
            tracing::debug!(command = %shown, error = %err, "log command unavailable, skipped");
            None
        }
    }
}

/// Collects the outputs and returns the base64 of the tar.gz.
pub async fn collect(runner: &dyn CommandRunner, paths: &HostPaths) -> Result<String, AgentError> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let host_journal = CommandSpec::new(
        "journalctl",
        [
            "--root".to_string(),
            paths.host_root.display().to_string(),
            "--no-pager".to_string(),
            "-n".to_string(),
            "100000".to_string(),
        ],
    );
    let journal = match output_of(runner, host_journal).await {
        Some(text) if text.len() >= MIN_JOURNAL_BYTES => Some(text),
        _ => {
            let own = CommandSpec::new("journalctl", ["--full", "--no-pager", "-b", "-n", "10000"]);
            output_of(runner, own).await
        }
    };
    if let Some(text) = journal {
        files.push(("journal".to_string(), text.into_bytes()));
    }
    for (name, spec) in diagnostic_commands() {
        if let Some(text) = output_of(runner, spec).await {
            files.push((name.to_string(), text.into_bytes()));
        }
    }
    let index: String = files.iter().map(|(name, _)| format!("{name}\n")).collect();
    files.push(("collected".to_string(), index.into_bytes()));
    let archive = build_archive(&files)
        .map_err(|err| AgentError::execution(format!("building the log archive: {err}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(archive))
}

/// A gzip-compressed tar archive of `(name, content)` files.
pub fn build_archive(files: &[(String, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_cksum();
        builder.append_data(&mut header, name, content.as_slice())?;
    }
    let mut encoder = builder.into_inner()?;
    encoder.flush()?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read;

    use super::*;
    use crate::host::{BoxFuture, CommandOutput};

    /// Answers known programs with canned output; everything else is "not found".
    #[derive(Debug)]
    struct CannedRunner(BTreeMap<&'static str, &'static str>);

    impl CommandRunner for CannedRunner {
        fn run(&self, spec: CommandSpec) -> BoxFuture<'static, std::io::Result<CommandOutput>> {
            let answer = self.0.get(spec.program.as_str()).copied();
            Box::pin(async move {
                match answer {
                    Some(text) => Ok(CommandOutput {
                        code: Some(0),
                        stdout: text.to_string(),
                        ..CommandOutput::default()
                    }),
                    None => Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such program",
                    )),
                }
            })
        }
    }

    fn unpack(encoded: &str) -> BTreeMap<String, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let mut out = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = entry.path().expect("path").display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("read");
            out.insert(name, text);
        }
        out
    }

    #[tokio::test]
    async fn collects_available_outputs_and_skips_missing_tools() {
        let runner = CannedRunner(BTreeMap::from([
            (
                "journalctl",
                "a journal line that is long enough to count as real\n",
            ),
            ("dmesg", "[0.0] Linux version\n"),
            ("ps", "PID CMD\n"),
        ]));
        let encoded = collect(&runner, &HostPaths::default())
            .await
            .expect("collect");
        let files = unpack(&encoded);
        assert!(files["journal"].contains("journal line"));
        assert_eq!(files["dmesg"], "[0.0] Linux version\n");
        assert_eq!(files["ps"], "PID CMD\n");
        assert!(!files.contains_key("lsblk"), "a missing tool is skipped");
        assert_eq!(files["collected"], "journal\ndmesg\nps\n");
    }
}
