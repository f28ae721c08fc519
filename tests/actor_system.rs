//! The whole actor system, in-process and as the built binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironic_agent::wiring::start_actors;
use ironic_agent_actors::config::AgentConfig;

fn loopback_config() -> AgentConfig {
    AgentConfig {
        listen_host: "127.0.0.1".to_string(),
        listen_port: 0,
        standalone: true,
        ..AgentConfig::default()
    }
}

#[test]
fn every_actor_answers_and_the_system_shuts_down_cleanly() {
    let system = actix::System::new();
    let (names, drained) = system.block_on(async {
        let agent = start_actors(&loopback_config());
        let names = agent.probe().await.expect("probe round trip");
        let addrs = agent.serve().await.expect("API binds a loopback port");
        assert!(addrs.iter().all(|addr| addr.ip().is_loopback()));
        let drained = agent.shutdown(Duration::from_secs(5)).await;
        (names, drained)
    });
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        [
            "api",
            "coordinator",
            "hardware-inspector",
            "installer-runner",
            "ironic-client",
            "systemd-supervisor"
        ]
    );
    assert!(drained, "nothing was running, so the drain must succeed");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_standalone(port: u16) -> Agent {
    let child = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
        .args([
            "--standalone",
            "--agent-token",
            "678123",
            "--listen-host",
            "127.0.0.1",
        ])
        .args(["--listen-port", &port.to_string()])
        .args(["--cmdline-file", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the built agent");
    Agent(child)
}

fn wait_until_serving(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(response) = http_get(port, "/v1/status") {
            return response;
        }
        assert!(Instant::now() < deadline, "agent never served /v1/status");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_for_exit(agent: &mut Agent, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = agent.0.try_wait().expect("wait on agent") {
            return status;
        }
        assert!(Instant::now() < deadline, "agent did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn built_binary_serves_status_and_exits_zero_on_sigterm() {
    let port = free_port();
    let mut agent = spawn_standalone(port);
    let response = wait_until_serving(port);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"started_at\""), "{response}");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.0.id()).expect("pid fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
    let status = wait_for_exit(&mut agent, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "clean shutdown exits 0");
    assert!(http_get(port, "/v1/status").is_none(), "API must be gone");
}

#[test]
fn built_binary_exits_on_sigint_too() {
    let port = free_port();
    let mut agent = spawn_standalone(port);
    wait_until_serving(port);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(agent.0.id()).expect("pid fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
    let status = wait_for_exit(&mut agent, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
}
