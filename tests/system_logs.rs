//! `log.collect_system_logs` of the BUILT binary: a valid tar.gz with IPA's member names,
//! the CoreOS host journal (a stand-in `journalctl` answering `--root <host root>`) wins
//! over the generic one, and the agent token (given on the command line and written
//! into the stand-in journal) never appears in the archive.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use support::agent::{post_json, AgentOptions, AgentProcess};

const SECRET: &str = "tok-5f1c9a7e-never-logged";

fn write_script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, body).expect("script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `log.collect_system_logs` on an agent whose host root is `host_root` and whose
/// PATH starts with `bin`; returns the archive's path.
fn collect(dir: &Path, host_root: &Path, bin: &Path) -> std::path::PathBuf {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let agent = AgentProcess::start_with(
        AgentOptions {
            with_token: false,
            ..AgentOptions::default()
        }
        .args(["--agent-token", SECRET])
        .args(["--host-root", &host_root.display().to_string()])
        .env("PATH", &path),
    );
    let client = agent.client();
    let url = format!(
        "{}?wait=true&agent_token={SECRET}",
        agent.url("/v1/commands/")
    );
    let reply = post_json(
        &client,
        &url,
        &json!({"name": "log.collect_system_logs", "params": {}}),
    );
    assert_eq!(reply.status, 200, "{reply:?}\n{}", agent.logs());
    let body = reply.json();
    assert_eq!(body["command_status"], "SUCCEEDED", "{body}");
    let b64 = body["command_result"]["system_logs"]
        .as_str()
        .expect("system_logs")
        .to_string();
    let encoded = dir.join("logs.b64");
    std::fs::write(&encoded, b64).expect("write");
    let archive = dir.join("logs.tar.gz");
    sh(&format!(
        "base64 -d '{}' > '{}'",
        encoded.display(),
        archive.display()
    ));
    archive
}

fn members(archive: &Path) -> Vec<String> {
    sh(&format!("tar -tzf '{}'", archive.display()))
        .lines()
        .map(String::from)
        .collect()
}

fn member(archive: &Path, name: &str) -> String {
    sh(&format!("tar -xzOf '{}' '{name}'", archive.display()))
}

/// `dir/host-root` with the hostname `worker-1`: a real hostname, which the start-up
/// hostname fix keeps without a hostnamectl.
fn host_root_named_worker(dir: &Path) -> PathBuf {
    let host_root = dir.join("host-root");
    std::fs::create_dir_all(host_root.join("etc")).expect("host root");
    std::fs::write(host_root.join("etc/hostname"), "worker-1\n").expect("hostname");
    host_root
}

#[test]
fn coreos_journal_wins_and_the_token_is_never_collected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host_root = host_root_named_worker(dir.path());
    let bin = dir.path().join("bin");
    write_script(
        &bin.join("journalctl"),
        &format!(
            "#!/bin/sh\n# test stand-in\n\
             if [ \"$1\" = --root ]; then\n\
               echo \"Nov 26 host ironic-agent[1]: HOST-JOURNAL started with token {SECRET}\"\n\
             else echo 'Nov 26 container: GENERIC-JOURNAL line long enough to count'; fi\n"
        ),
    );
    let archive = collect(dir.path(), &host_root, &bin);
    let names = members(&archive);
    // `ps au` lists only processes with a terminal (none here, it then fails and is left
    // out): the journal stand-in carries the token instead.
    for expected in ["journal", "df", "ip_addr", "mount"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let journal = member(&archive, "journal");
    assert!(journal.contains("HOST-JOURNAL"), "{journal}");
    assert!(journal.contains("token ***"), "{journal}");
    let raw = sh(&format!("gzip -dc '{}' | cat -v", archive.display()));
    assert!(!raw.contains(SECRET), "the token leaked into the logs");
}

#[test]
fn a_small_host_journal_gives_the_generic_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host_root = host_root_named_worker(dir.path());
    let bin = dir.path().join("bin");
    write_script(
        &bin.join("journalctl"),
        "#!/bin/sh\n# test stand-in\n\
         if [ \"$1\" = --root ]; then echo '-- No entries --';\n\
         else echo 'Nov 26 container: GENERIC-JOURNAL line long enough to count'; fi\n",
    );
    let archive = collect(dir.path(), &host_root, &bin);
    let journal = member(&archive, "journal");
    assert!(journal.contains("GENERIC-JOURNAL"), "{journal}");
}
