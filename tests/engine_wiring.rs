//! The wired agent: the coordinator really stops the API after lockdown and rescue.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ironic_agent::wiring::start_actors;
use ironic_agent_actors::command::CommandStatus;
use ironic_agent_actors::config::{AgentConfig, HostPaths};
use ironic_agent_actors::coordinator::RunCommand;
use serde_json::{json, Value};

fn status_answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        stream,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

fn stops_api_after(name: &str, params: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = AgentConfig {
        listen_host: "127.0.0.1".to_string(),
        listen_port: 0,
        standalone: true,
        // Paths in a scratch tree: lockdown must not touch this machine's links.
        paths: HostPaths::rooted_at(dir.path()),
        ..AgentConfig::default()
    };
    let system = actix::System::new();
    system.block_on(async {
        let agent = start_actors(&config);
        let addrs = agent.serve().await.expect("serve");
        let addr = addrs[0];
        assert!(status_answers(addr), "serving before the command");
        let result = agent
            .coordinator
            .send(RunCommand {
                name: name.to_string(),
                params: params.as_object().cloned().expect("object"),
                wait: true,
            })
            .await
            .expect("mailbox")
            .expect("stored result");
        assert_eq!(
            result.command_status,
            CommandStatus::Succeeded,
            "{result:?}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_answers(addr) {
            assert!(
                Instant::now() < deadline,
                "the API kept serving after {name}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    dir
}

#[test]
fn lockdown_stops_the_api() {
    stops_api_after("system.lockdown", json!({}));
}

#[test]
fn finalize_rescue_stops_the_api_and_leaves_the_marker() {
    let dir = stops_api_after(
        "rescue.finalize_rescue",
        json!({"rescue_password": "$6$x$y", "hashed": true}),
    );
    assert!(dir.path().join("etc/.rescued").exists());
    let stored =
        std::fs::read_to_string(dir.path().join("etc/ipa-rescue-config/ipa-rescue-password"))
            .expect("password");
    assert_eq!(stored, "$6$x$y");
}
