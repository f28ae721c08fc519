//! Runs the BUILT `ironic-agent` binary and talks HTTP(S) to it.
//!
//! `AgentProcess::start()` spawns `ironic-agent --standalone --agent-token 678123
//! --listen-host 127.0.0.1 --listen-port <free port> --cmdline-file /dev/null`, waits
//! until `/v1/status` answers, and kills the process when dropped. Its stderr goes to a
//! file, shown by [`AgentProcess::logs`] and printed when a start fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The token of IPA's functional tests.
pub const TOKEN: &str = "678123";

/// What the agent logs (at info level) once its API socket is bound.
const SERVING_MARKER: &str = "API serving";

/// How long a started agent may take to answer `/v1/status`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port (racy by nature; [`AgentProcess`] retries on a clash).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// How to start the agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Pass `--agent-token 678123`.
    pub with_token: bool,
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub envs: Vec<(String, String)>,
    /// Serve HTTPS: the client trusts this certificate (DER) for 127.0.0.1.
    pub tls_cert_der: Option<Vec<u8>>,
    /// `--listen-host` (127.0.0.1 unless changed).
    pub listen_host: String,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            with_token: true,
            args: Vec::new(),
            envs: Vec::new(),
            tls_cert_der: None,
            listen_host: "127.0.0.1".to_string(),
        }
    }
}

impl AgentOptions {
    /// Adds command-line arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running agent process; killed on drop.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// `http` or `https`.
    pub scheme: &'static str,
    log: PathBuf,
    _dir: tempfile::TempDir,
    tls_cert_der: Option<Vec<u8>>,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The outcome of trying to start the agent once.
enum Started {
    Ready(AgentProcess),
    PortClash,
}

impl AgentProcess {
    /// The standalone agent with the functional tests' token, over plain HTTP.
    pub fn start() -> Self {
        Self::start_with(AgentOptions::default())
    }

    /// An agent with these options; retries on a port clash.
    pub fn start_with(options: AgentOptions) -> Self {
        for _ in 0..5 {
            if let Started::Ready(agent) = Self::try_start(&options, free_port()) {
                return agent;
            }
        }
        panic!("could not find a free port for the agent");
    }

    fn try_start(options: &AgentOptions, port: u16) -> Started {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("agent.log");
        let stderr = std::fs::File::create(&log).expect("create the log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ironic-agent"));
        command.arg("--standalone");
        if options.with_token {
            command.args(["--agent-token", TOKEN]);
        }
        command
            .args(["--listen-host", &options.listen_host])
            .args(["--listen-port", &port.to_string()])
            .args(["--cmdline-file", "/dev/null"])
            .args(["--state-dir", &dir.path().join("state").to_string_lossy()])
            .args(&options.args)
            .env("RUST_LOG", "info")
            .envs(options.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = command.spawn().expect("spawn the built agent");
        let mut agent = AgentProcess {
            child,
            port,
            scheme: if options.tls_cert_der.is_some() {
                "https"
            } else {
                "http"
            },
            log,
            _dir: dir,
            tls_cert_der: options.tls_cert_der.clone(),
        };
        let client = agent.client();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            // Another test (or developer) may hold the port: only trust the answer once
            // this process says it bound the socket.
            if agent.logs().contains(SERVING_MARKER) {
                if let Ok(reply) = try_send(client.get(&agent.url("/v1/status")), None) {
                    assert_eq!(reply.status, 200, "status answered {reply:?}");
                    return Started::Ready(agent);
                }
            }
            if let Some(status) = agent.child.try_wait().expect("poll the agent") {
                let logs = agent.logs();
                if logs.contains("Address already in use") {
                    return Started::PortClash;
                }
                panic!("the agent exited with {status} before serving:\n{logs}");
            }
            assert!(
                Instant::now() < deadline,
                "the agent never served /v1/status:\n{}",
                agent.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `<scheme>://127.0.0.1:<port><path_and_query>`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}://127.0.0.1:{}{path_and_query}", self.scheme, self.port)
    }

    /// `url(path)` with `agent_token=678123` appended to the query.
    pub fn url_with_token(&self, path_and_query: &str) -> String {
        let separator = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        self.url(&format!("{path_and_query}{separator}agent_token={TOKEN}"))
    }

    /// A client that does not follow redirects and trusts the agent's certificate.
    pub fn client(&self) -> ureq::Agent {
        self.client_builder().redirects(0).build()
    }

    /// A client that follows redirects, like python-requests in IPA's functional tests.
    pub fn following_client(&self) -> ureq::Agent {
        self.client_builder().redirects(5).build()
    }

    fn client_builder(&self) -> ureq::AgentBuilder {
        let builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(120));
        match &self.tls_cert_der {
            Some(der) => builder.tls_config(tls_client_config(der, None)),
            None => builder,
        }
    }

    /// The agent's stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asserts the agent still runs and answers `/v1/status` with 200.
    pub fn assert_alive(&mut self) {
        assert!(self.is_running(), "the agent died:\n{}", self.logs());
        let reply = send(self.client().get(&self.url("/v1/status")), None);
        assert_eq!(reply.status, 200, "{reply:?}");
    }

    /// Sends raw bytes on a new connection and returns everything read until the server
    /// closes it or `read_timeout` passes.
    pub fn raw_exchange(&self, request: &[u8], read_timeout: Duration) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(read_timeout))
            .expect("read timeout");
        // The server may answer and close before reading everything: ignore write errors.
        let _ = stream.write_all(request);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }
}

/// A TLS client configuration that trusts `cert_der` and speaks only `version` (or
/// TLS 1.2 and 1.3 when `None`).
pub fn tls_client_config(
    cert_der: &[u8],
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert_der.to_vec()))
        .expect("trust the test certificate");
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
        Some(version) => vec![version],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&versions)
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// A self-signed certificate for 127.0.0.1 (CN localhost) written into `dir`:
/// returns (cert path, key path, cert DER).
pub fn write_test_certificate(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("certificate parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let key = rcgen::KeyPair::generate().expect("key pair");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let cert_path = dir.join("agent.crt");
    let key_path = dir.join("agent.key");
    std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write the key");
    (cert_path, key_path, cert.der().to_vec())
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {self:?}"))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Asserts an IPA fault body with this status and faultstring.
    pub fn assert_fault(&self, status: u16, faultstring: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let body = self.json();
        let expected_code = if status >= 500 { "Server" } else { "Client" };
        assert_eq!(body["faultcode"], expected_code, "{self:?}");
        assert_eq!(body["faultstring"], faultstring, "{self:?}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{self:?}");
    }
}

fn reply_from(response: ureq::Response) -> Reply {
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| {
            let value = response.header(&name).unwrap_or_default().to_string();
            (name.to_ascii_lowercase(), value)
        })
        .collect();
    let body = response.into_string().expect("read the body");
    Reply {
        status,
        headers,
        body,
    }
}

/// Sends a request (with an optional body); any status is a [`Reply`], transport
/// failures are errors.
pub fn try_send(
    request: ureq::Request,
    body: Option<&[u8]>,
) -> Result<Reply, Box<ureq::Transport>> {
    let result = match body {
        Some(bytes) => request.send_bytes(bytes),
        None => request.call(),
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => Ok(reply_from(response)),
        Err(ureq::Error::Transport(transport)) => Err(Box::new(transport)),
    }
}

/// Like [`try_send`], panicking on transport failures.
pub fn send(request: ureq::Request, body: Option<&[u8]>) -> Reply {
    try_send(request, body).unwrap_or_else(|err| panic!("HTTP request failed: {err}"))
}

/// POSTs a JSON value.
pub fn post_json(client: &ureq::Agent, url: &str, body: &Value) -> Reply {
    send(
        client.post(url).set("Content-Type", "application/json"),
        Some(body.to_string().as_bytes()),
    )
}
