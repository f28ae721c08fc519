//! System logs as IPA sends them: `log.collect_system_logs` and the `logs` inspection
//! collector both use [`collect_system_logs`], a base64 string of a tar.gz holding the
//! journal and some command outputs.
//!
//! The journal is the CoreOS manager's when it answers
//! ([`crate::installer::coreos_journal`]: `journalctl --root <host_root>`, at least 50
//! bytes); else the container's own journal, as the generic manager would. Every other
//! source is best effort: a missing or failing tool is left out. The agent's own
//! `log_file` is never collected (its lines are in the journal), and the agent token is
//! replaced by `***` wherever it appears (`ps` shows the command line).

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::config::{AgentConfig, Secret};
use crate::errors::AgentError;
use crate::host::{CommandRunner, CommandSpec};
use crate::inspector::disks::LSBLK_COLUMNS;

/// Lines of the generic journal IPA sends.
pub const JOURNAL_LINES: u32 = 10000;

/// What replaces a secret in collected logs.
pub const REDACTED: &str = "***";

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

/// The journal: the host's (CoreOS manager) when the host root exists and it answers
/// with at least 50 bytes, else the container's own last [`JOURNAL_LINES`] lines.
pub async fn journal(host_root: &Path, runner: &dyn CommandRunner) -> Option<Vec<u8>> {
    if host_root.is_dir() {
        if let Some(host) = crate::installer::coreos::host_journal(host_root, runner).await {
            return Some(host);
        }
    }
    let lines = JOURNAL_LINES.to_string();
    let generic = CommandSpec::new("journalctl", ["--full", "--no-pager", "-b", "-n", &lines]);
    output_of(runner, generic).await.map(String::into_bytes)
}

/// Replaces every occurrence of each (non-empty) secret by [`REDACTED`].
pub fn redact(content: Vec<u8>, secrets: &[String]) -> Vec<u8> {
    let mut content = content;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let needle = secret.as_bytes();
        if !content.windows(needle.len()).any(|w| w == needle) {
            continue;
        }
        let mut out = Vec::with_capacity(content.len());
        let mut i = 0;
        while i < content.len() {
            if content[i..].starts_with(needle) {
                out.extend_from_slice(REDACTED.as_bytes());
                i += needle.len();
            } else {
                out.push(content[i]);
                i += 1;
            }
        }
        content = out;
    }
    content
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

/// The secrets never to appear in collected logs: the configured agent token and
/// those learnt at run time (`learnt`: the token received at lookup).
pub fn secrets_of(config: &AgentConfig, learnt: &[Secret]) -> Vec<String> {
    config
        .agent_token
        .iter()
        .chain(learnt)
        .map(|token| token.expose().to_string())
        .collect()
}

/// Collects the logs (journal, command outputs, `/proc/mdstat`) and returns the base64
/// of the tar.gz; every one of `secrets` is replaced by [`REDACTED`].
pub async fn collect_system_logs(
    host_root: &Path,
    proc_root: &Path,
    runner: &dyn CommandRunner,
    secrets: &[String],
) -> Result<String, AgentError> {
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(journal) = journal(host_root, runner).await {
        entries.push(("journal".to_string(), journal));
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
    let entries: Vec<(String, Vec<u8>)> = entries
        .into_iter()
        .map(|(name, content)| (name, redact(content, secrets)))
        .collect();
    let archive = build_archive(&entries)
        .map_err(|err| AgentError::execution(format!("building the log archive: {err}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(archive))
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
    async fn host_journal_and_commands_in_a_real_tar_gz() {
        let t = Tree::new();
        t.dir("mnt/coreos");
        t.file("proc/mdstat", "Personalities : [raid1]\n");
        let host_journal = "Nov 26 host kernel: a line long enough to count as a journal\n";
        let runner = CannedRunner::default()
            .with(
                &format!("journalctl --root {}", t.path("mnt/coreos").display()),
                0,
                host_journal,
            )
            .with("journalctl", 0, "container journal\n")
            .with("ps", 0, "PID TTY\n")
            .with("ip", 0, "1: lo: <LOOPBACK>\n")
            .with("dmesg", 1, "");
        let b64 = collect_system_logs(&t.path("mnt/coreos"), &t.path("proc"), &runner, &[])
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
    async fn small_host_journal_falls_back_to_the_generic_one() {
        let t = Tree::new();
        t.dir("mnt/coreos");
        let runner = CannedRunner::default()
            .with(
                &format!("journalctl --root {}", t.path("mnt/coreos").display()),
                0,
                "-- No entries --\n",
            )
            .with(
                "journalctl --full --no-pager -b -n 10000",
                0,
                "container journal\n",
            );
        let b64 = collect_system_logs(&t.path("mnt/coreos"), &t.path("proc"), &runner, &[])
            .await
            .expect("logs");
        let out = unpack(&b64);
        assert_eq!(
            std::fs::read_to_string(out.path("out/journal")).expect("journal"),
            "container journal\n"
        );
    }

    #[test]
    fn secrets_are_the_configured_and_the_learnt_tokens() {
        let config = AgentConfig {
            agent_token: Some(Secret::new("configured")),
            ..AgentConfig::default()
        };
        assert_eq!(
            secrets_of(&config, &[Secret::new("from-lookup")]),
            vec!["configured".to_string(), "from-lookup".to_string()]
        );
        assert!(secrets_of(&AgentConfig::default(), &[]).is_empty());
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let secrets = vec!["s3cr3t".to_string(), String::new()];
        assert_eq!(
            redact(b"a s3cr3t b s3cr3ts3cr3t".to_vec(), &secrets),
            b"a *** b ******".to_vec()
        );
        assert_eq!(redact(b"nothing".to_vec(), &secrets), b"nothing".to_vec());
    }
}
