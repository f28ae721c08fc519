//! Loop devices, a fault-injecting HTTP server and a real forward proxy (tinyproxy)
//! for the generic-step tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use ironic_agent_actors::errors::{AgentError, StepKind};
use ironic_agent_actors::hardware::{StepError, StepResult};
use ironic_agent_actors::installer::{InstallerRunner, RunStep};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Whether the loop-device tests can run; in CI they must (a panic, never a skip).
pub fn loop_devices_usable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let ok = root && Path::new("/dev/loop-control").exists();
    if !ok && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: loop-device tests need root and /dev/loop-control");
    }
    if !ok {
        eprintln!("SKIPPED: loop-device tests need root and /dev/loop-control");
    }
    ok
}

/// A loop device on a sparse file; detached on drop (also on panic).
pub struct LoopDev {
    pub path: PathBuf,
    pub backing: PathBuf,
}

impl LoopDev {
    pub fn new(dir: &Path, name: &str, size: u64) -> Self {
        let backing = dir.join(name);
        let file = std::fs::File::create(&backing).expect("backing file");
        file.set_len(size).expect("set_len");
        drop(file);
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&backing)
            .output()
            .expect("losetup");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Self { path, backing }
    }

    pub fn dev(&self) -> String {
        self.path.display().to_string()
    }

    /// sha256 of the first `len` bytes of the device (all when `None`).
    pub fn sha256(&self, len: Option<u64>) -> String {
        let mut file = std::fs::File::open(&self.path).expect("open loop");
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = len.unwrap_or(u64::MAX);
        while left > 0 {
            let want = buf.len().min(left.try_into().unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want]).expect("read loop");
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        hex(&hasher.finalize())
    }

    /// `wipefs` (no-act) output: the signatures it sees.
    pub fn signatures(&self) -> String {
        let out = Command::new("wipefs")
            .arg("--no-act")
            .arg(&self.path)
            .output()
            .expect("wipefs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(&self.path).expect("open");
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).expect("read");
        buf
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.path).status();
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Runs a program and asserts success.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `raw` converted to qcow2 by qemu-img.
pub fn qcow2_of(raw: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw_path = dir.path().join("image.raw");
    let qcow_path = dir.path().join("image.qcow2");
    std::fs::write(&raw_path, raw).expect("raw image");
    let path = |p: &Path| p.display().to_string();
    sh(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            &path(&raw_path),
            &path(&qcow_path),
        ],
    );
    std::fs::read(&qcow_path).expect("qcow2 image")
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What the server does for one path.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 with the body.
    Ok(Arc<Vec<u8>>),
    /// This status with a short body.
    Status(u16),
    /// Statuses for the first requests, then the inner behaviour.
    Sequence(Vec<u16>, Box<Behaviour>),
    /// Sends `n` bytes of the body (with the full Content-Length), then stalls.
    Stall(Arc<Vec<u8>>, usize),
    /// Sends `n` bytes of the body (with the full Content-Length), then closes.
    Truncate(Arc<Vec<u8>>, usize),
    /// 200 with the body sent in `chunk`-byte pieces, `delay_ms` apart.
    Slow(Arc<Vec<u8>>, usize, u64),
    /// Requires this Authorization header value, else 401.
    Auth(String, Box<Behaviour>),
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Behaviour>,
    hits: HashMap<String, usize>,
}

/// A tiny HTTP/1.1 server on 127.0.0.1:0, one thread per connection.
pub struct TestServer {
    pub base: String,
    state: Arc<Mutex<State>>,
    pub connections: Arc<AtomicUsize>,
}

impl TestServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let connections = Arc::new(AtomicUsize::new(0));
        let st = state.clone();
        let conns = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                conns.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                std::thread::spawn(move || serve(stream, st));
            }
        });
        Self {
            base,
            state,
            connections,
        }
    }

    pub fn route(&self, path: &str, behaviour: Behaviour) -> String {
        self.state
            .lock()
            .expect("lock")
            .routes
            .insert(path.to_string(), behaviour);
        format!("{}{path}", self.base)
    }

    pub fn hits(&self, path: &str) -> usize {
        *self
            .state
            .lock()
            .expect("lock")
            .hits
            .get(path)
            .unwrap_or(&0)
    }
}

fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let head_only = text.starts_with("HEAD ");
        let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
        let auth = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("authorization: ")
                    .or_else(|| l.strip_prefix("Authorization: "))
            })
            .map(str::to_string);
        let (behaviour, hit) = {
            let mut st = state.lock().expect("lock");
            let hit = {
                let h = st.hits.entry(path.clone()).or_insert(0);
                *h += 1;
                *h
            };
            (st.routes.get(&path).cloned(), hit)
        };
        let keep = match behaviour {
            // HEAD (Ironic validates image URLs with it): the headers of a 200, no body.
            Some(Behaviour::Ok(body)) if head_only => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                stream.write_all(head.as_bytes()).is_ok()
            }
            behaviour => respond(&mut stream, behaviour, hit, auth.as_deref()),
        };
        if !keep {
            return;
        }
    }
}

fn status_line(code: u16) -> &'static str {
    match code {
        200 => "200 OK",
        401 => "401 Unauthorized",
        403 => "403 Forbidden",
        404 => "404 Not Found",
        500 => "500 Internal Server Error",
        503 => "503 Service Unavailable",
        _ => "500 Internal Server Error",
    }
}

fn respond(stream: &mut TcpStream, b: Option<Behaviour>, hit: usize, auth: Option<&str>) -> bool {
    let Some(b) = b else {
        return send_status(stream, 404);
    };
    match b {
        Behaviour::Ok(body) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).is_ok() && stream.write_all(&body).is_ok()
        }
        Behaviour::Status(code) => send_status(stream, code),
        Behaviour::Sequence(codes, then) => match codes.get(hit - 1) {
            Some(code) => send_status(stream, *code),
            None => respond(stream, Some(*then), hit, auth),
        },
        Behaviour::Stall(body, n) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..n]);
            std::thread::sleep(Duration::from_secs(30));
            false
        }
        Behaviour::Truncate(body, n) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body[..n]);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            false
        }
        Behaviour::Slow(body, chunk, delay_ms) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            if stream.write_all(head.as_bytes()).is_err() {
                return false;
            }
            for piece in body.chunks(chunk) {
                if stream.write_all(piece).is_err() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(delay_ms));
            }
            true
        }
        Behaviour::Auth(expected, inner) => {
            if auth == Some(expected.as_str()) {
                respond(stream, Some(*inner), hit, auth)
            } else {
                send_status(stream, 401)
            }
        }
    }
}

fn send_status(stream: &mut TcpStream, code: u16) -> bool {
    let body = format!("status {code}");
    let head = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\n\r\n{body}",
        status_line(code),
        body.len()
    );
    stream.write_all(head.as_bytes()).is_ok()
}

/// Runs a step that writes an OS image onto `device`, as the inspector chose it.
pub async fn run_step_on(
    addr: &Addr<InstallerRunner>,
    step: &str,
    args: Value,
    node: Value,
    device: Option<&str>,
) -> StepResult {
    let args: Map<String, Value> = args.as_object().cloned().unwrap_or_default();
    addr.send(RunStep {
        step: step.into(),
        kind: Some(StepKind::Clean),
        args,
        node,
        ports: json!([]),
        install_device: device.map(str::to_string),
    })
    .await
    .expect("installer mailbox")
}

/// The agent error of a failed step; panics on anything else.
pub fn agent_err(result: StepResult) -> AgentError {
    match result {
        Err(StepError::Agent(err)) => err,
        other => panic!("expected an agent error, got {other:?}"),
    }
}

/// The sha256 of `len` zero bytes (a scrubbed or untouched device).
pub fn zeros(len: usize) -> String {
    sha256(&vec![0u8; len])
}

// --- a real forward proxy ------------------------------------------------------------

/// Whether `program` (probed with `probe_arg`) is installed; in CI it must be (a panic,
/// never a skip).
pub fn tool_usable(program: &str, probe_arg: &str) -> bool {
    let found = Command::new(program)
        .arg(probe_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: this test needs {program} (make deps installs it)");
    }
    if !found {
        eprintln!("SKIPPED: {program} is not installed (make deps)");
    }
    found
}

/// Whether tinyproxy is installed (see [`tool_usable`]).
pub fn tinyproxy_usable() -> bool {
    tool_usable("tinyproxy", "-v")
}

/// Waits until something listens on the loopback `port` (10 s at most).
pub fn wait_for_port(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free loopback port (closed again; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A tinyproxy on a free loopback port, killed on drop.
pub struct Tinyproxy {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Tinyproxy {
    pub fn start(dir: &Path, basic_auth: Option<(&str, &str)>) -> Self {
        let port = free_port();
        let log = dir.join(format!("tinyproxy-{port}.log"));
        let conf = dir.join(format!("tinyproxy-{port}.conf"));
        let mut text = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
             MaxClients 20\nAllow 127.0.0.1\n",
            log.display()
        );
        if let Some((user, password)) = basic_auth {
            text.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        std::fs::write(&conf, text).expect("tinyproxy config");
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy");
        let proxy = Self { child, port, log };
        wait_for_port(port, "tinyproxy");
        proxy
    }

    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}", self.port)
    }

    /// The request lines tinyproxy logged ("GET http://… HTTP/1.1", "CONNECT host:port …").
    pub fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split_once("Request (file descriptor "))
            .filter_map(|(_, rest)| rest.split_once("): ").map(|(_, req)| req.to_string()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
