//! The agent token never leaves the agent: not in `--dump-config` (whatever source set
//! it), not in the BUILT agent's own log at `RUST_LOG=trace` through a lookup that hands
//! a token out, not in the `log.collect_system_logs` archive (the lookup's token is
//! redacted there too), and a wrong token of the same length is refused.
//! Each case is recorded in `target/reliability/secrets-*.json` for `docs/reliability.md`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::agent::post_json;

/// Handed out by the mock Ironic at lookup (≥ 32 characters, so the agent uses it).
const LOOKUP_TOKEN: &str = "lk-9d2e7c4b1a8f6e3d0c5b2a9f8e7d6c5b4a3";
/// Given on the command line, in the config file or on the kernel command line.
const CONFIGURED_TOKEN: &str = "cfg-token-4f8a1c3e9b7d5e2a";
const NODE: &str = "7a3c9e1f-0b2d-4e6f-8a1c-3e5f7a9b1d2f";

#[test]
fn dump_config_never_shows_the_token_from_any_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!("[DEFAULT]\nagent_token = {CONFIGURED_TOKEN}\n"),
    )
    .expect("conf");
    let cmdline = dir.path().join("cmdline");
    std::fs::write(&cmdline, format!("ipa-agent-token={CONFIGURED_TOKEN}\n")).expect("cmdline");
    let sources: [(&str, Vec<String>); 3] = [
        (
            "command line",
            vec!["--agent-token".into(), CONFIGURED_TOKEN.into()],
        ),
        (
            "config file",
            vec!["--config-file".into(), conf.display().to_string()],
        ),
        (
            "kernel command line",
            vec!["--cmdline-file".into(), cmdline.display().to_string()],
        ),
    ];
    let mut leaks = 0;
    for (source, args) in &sources {
        let out = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
            .arg("--dump-config")
            .args(args)
            .env("RUST_LOG", "trace")
            .output()
            .expect("run --dump-config");
        assert!(out.status.success(), "{source}: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let dumped: Value = serde_json::from_str(&stdout).expect("dump is JSON");
        // The token is set (so the test sees the real path), but only as a mask.
        assert!(
            !dumped["agent_token"].is_null(),
            "{source}: the token was not read at all: {stdout}"
        );
        leaks +=
            stdout.matches(CONFIGURED_TOKEN).count() + stderr.matches(CONFIGURED_TOKEN).count();
        assert!(!stdout.contains(CONFIGURED_TOKEN), "{source}: {stdout}");
        assert!(!stderr.contains(CONFIGURED_TOKEN), "{source}: {stderr}");
    }
    support::records::record(
        "secrets-dump-config",
        &json!({"sources": sources.iter().map(|(s, _)| *s).collect::<Vec<_>>(), "leaks": leaks}),
    );
}

/// A minimal Ironic: `/` (API 1.67, so no auto-TLS), lookup handing out
/// [`LOOKUP_TOKEN`], heartbeats 202. Records the heartbeat bodies.
struct MockIronic {
    url: String,
    heartbeats: Arc<Mutex<Vec<Value>>>,
}

impl MockIronic {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let heartbeats = Arc::new(Mutex::new(Vec::new()));
        let seen = heartbeats.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || serve_ironic(stream, &seen));
            }
        });
        MockIronic { url, heartbeats }
    }
}

fn serve_ironic(stream: TcpStream, heartbeats: &Mutex<Vec<Value>>) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let (status, reply) = if path == "/" {
            (
                "200 OK",
                json!({"default_version": {"id": "v1", "version": "1.67", "min_version": "1.1"}}),
            )
        } else if path.starts_with("/v1/lookup") {
            (
                "200 OK",
                json!({"node": {"uuid": NODE, "properties": {}, "instance_info": {},
                                "driver_internal_info": {}},
                       "config": {"heartbeat_timeout": 300, "agent_token": LOOKUP_TOKEN,
                                  "agent_token_required": true}}),
            )
        } else if path.starts_with("/v1/heartbeat/") {
            heartbeats
                .lock()
                .expect("lock")
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            ("202 Accepted", Value::Null)
        } else {
            ("404 Not Found", json!({"error_message": "not found"}))
        };
        let text = if reply.is_null() {
            String::new()
        } else {
            reply.to_string()
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(text.as_bytes()).is_err()
        {
            return;
        }
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_lookup_token_is_never_logged_nor_collected() {
    let ironic = MockIronic::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    support::fixture::fixture_host(root, "52:54:00:5e:c7:01", "fixture-node");
    std::fs::write(
        root.join("agent.conf"),
        "[DEFAULT]\nlookup_timeout = 60\nlookup_interval = 1\nenable_auto_tls = False\n\
         inspection_collectors = default\n",
    )
    .expect("agent.conf");
    // The host's journal holds the token (as another service might have logged it).
    let host_root = root.join("host");
    std::fs::create_dir_all(host_root.join("etc")).expect("host root");
    std::fs::write(host_root.join("etc/hostname"), "worker-1\n").expect("hostname");
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let journalctl = bin.join("journalctl");
    std::fs::write(
        &journalctl,
        format!(
            "#!/bin/sh\n# test stand-in\n\
             echo \"Nov 26 host ironic-conductor[7]: agent_token={LOOKUP_TOKEN} for {NODE}\"\n"
        ),
    )
    .expect("journalctl");
    std::fs::set_permissions(&journalctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let port = support::agent::free_port();
    let log = root.join("agent.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
            .args(support::fixture::agent_args(root, &ironic.url, port))
            .env("RUST_LOG", "trace")
            .env("PATH", &path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(root.join("stdout.log")).expect("log"))
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn the agent"),
    );
    let logs = || {
        let mut all = std::fs::read_to_string(&log).unwrap_or_default();
        all.push_str(&std::fs::read_to_string(root.join("stdout.log")).unwrap_or_default());
        all
    };
    support::fixture::wait_for(
        "a heartbeat with the lookup token",
        Duration::from_secs(60),
        || {
            let beats = ironic.heartbeats.lock().expect("lock");
            beats
                .iter()
                .any(|b| b["agent_token"] == LOOKUP_TOKEN)
                .then_some(())
        },
    );
    let client = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let commands = format!("http://127.0.0.1:{port}/v1/commands/");
    let body = json!({"name": "log.collect_system_logs", "params": {}});
    // A wrong token of the same length is refused; the lookup's token is accepted.
    let wrong: String = LOOKUP_TOKEN
        .chars()
        .map(|c| if c == '9' { '8' } else { c })
        .collect();
    assert_eq!(wrong.len(), LOOKUP_TOKEN.len());
    let refused = post_json(&client, &format!("{commands}?agent_token={wrong}"), &body);
    assert_eq!(refused.status, 401, "{refused:?}");
    let reply = post_json(
        &client,
        &format!("{commands}?wait=true&agent_token={LOOKUP_TOKEN}"),
        &body,
    );
    assert_eq!(reply.status, 200, "{reply:?}\n{}", logs());
    let result = reply.json();
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    let b64 = result["command_result"]["system_logs"]
        .as_str()
        .expect("system_logs");
    let archive = root.join("logs.tar.gz");
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&archive).expect("archive"))
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b64.as_bytes())?;
            child.wait()
        })
        .expect("base64");
    assert!(decoded.success());
    let journal = Command::new("tar")
        .arg("-xzOf")
        .arg(&archive)
        .arg("journal")
        .output()
        .expect("tar");
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert!(
        journal.contains(&format!("agent_token=*** for {NODE}")),
        "the journal stand-in was not collected: {journal}"
    );
    let unpacked = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -dc '{}' | cat -v", archive.display()))
        .output()
        .expect("gzip");
    let unpacked = String::from_utf8_lossy(&unpacked.stdout);
    let collected_leaks = unpacked.matches(LOOKUP_TOKEN).count();
    assert_eq!(
        collected_leaks, 0,
        "the lookup token is in the collected logs"
    );

    // The agent's own log, at trace level, through lookup, heartbeats and two commands.
    let text = logs();
    assert!(text.contains("lookup succeeded"), "{text}");
    assert!(
        text.contains("TRACE") || text.contains("DEBUG"),
        "not a debug log"
    );
    let log_leaks = text.matches(LOOKUP_TOKEN).count() + text.matches(wrong.as_str()).count();
    assert_eq!(log_leaks, 0, "a token is in the agent's log");
    support::records::record(
        "secrets-lookup-token",
        &json!({"log_level": "trace", "log_bytes": text.len(),
               "leaks_in_agent_log": log_leaks, "leaks_in_collected_logs": collected_leaks,
               "wrong_token_same_length": refused.status}),
    );
}
