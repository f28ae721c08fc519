//! The HTTP API of the BUILT binary, checked like the Ironic conductor and IPA's
//! functional tests see it (spec §2, §12.2, §12.3). Nothing here needs the command
//! engine; tests that do live in `api_commands.rs`.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::agent::{
    post_json, send, tls_client_config, try_send, write_test_certificate, AgentOptions,
    AgentProcess, Reply, TOKEN,
};

const TOKEN_INVALID: &str = "401 Unauthorized: Token invalid.";
const MISSING_NAME_OR_PARAMS: &str = "400 Bad Request: Missing or invalid name or params";
const NOT_FOUND_PATH: &str = "404 Not Found: The requested URL was not found on the server. \
     If you entered the URL manually please check your spelling and try again.";
const NOT_ALLOWED: &str =
    "405 Method Not Allowed: The method is not allowed for the requested URL.";
const TOO_LARGE: &str =
    "413 Request Entity Too Large: The data value transmitted exceeds the capacity limit.";

fn get(agent: &AgentProcess, url: &str) -> Reply {
    send(agent.client().get(url), None)
}

fn post_raw(agent: &AgentProcess, url: &str, body: &[u8]) -> Reply {
    send(agent.client().post(url), Some(body))
}

#[test]
fn ipa_functional_steps_that_need_no_engine() {
    let agent = AgentProcess::start();
    // IPA's test uses python-requests, which follows the 308 of the slashless path.
    let requests = agent.following_client();
    // Step 0: no token.
    let reply = send(requests.get(&agent.url("/v1/commands")), None);
    reply.assert_fault(401, TOKEN_INVALID);
    // Step 1: exactly an empty list.
    let reply = send(requests.get(&agent.url_with_token("/v1/commands")), None);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json(), json!({"commands": []}));
    // Step 5: an unknown extension is a 404.
    let reply = post_json(
        &agent.client(),
        &agent.url_with_token("/v1/commands/"),
        &json!({"name": "bad_extension.fake_command", "params": {}}),
    );
    reply.assert_fault(404, "Not found: Extension with id bad_extension not found.");
}

#[test]
fn token_comes_from_the_query_only_and_is_checked_first() {
    let agent = AgentProcess::start();
    let client = agent.client();
    let good_body = json!({"name": "bad_extension.x", "params": {}}).to_string();
    for query in [
        "",
        "?agent_token=",
        "?agent_token=678124",
        "?agent_token=6781234",
    ] {
        get(&agent, &agent.url(&format!("/v1/commands/{query}"))).assert_fault(401, TOKEN_INVALID);
        get(&agent, &agent.url(&format!("/commands/{query}"))).assert_fault(401, TOKEN_INVALID);
        get(&agent, &agent.url(&format!("/v1/commands/some-id{query}")))
            .assert_fault(401, TOKEN_INVALID);
        post_raw(
            &agent,
            &agent.url(&format!("/v1/commands/{query}")),
            good_body.as_bytes(),
        )
        .assert_fault(401, TOKEN_INVALID);
        // The token is checked before the body: a bad body still gets 401.
        post_raw(
            &agent,
            &agent.url(&format!("/v1/commands/{query}")),
            b"not json",
        )
        .assert_fault(401, TOKEN_INVALID);
    }
    // Headers are never read.
    for (name, value) in [
        ("X-Agent-Token", TOKEN),
        ("Authorization", "Bearer 678123"),
        ("agent_token", TOKEN),
    ] {
        send(
            client.get(&agent.url("/v1/commands/")).set(name, value),
            None,
        )
        .assert_fault(401, TOKEN_INVALID);
    }
    // A token in the body is not a token either.
    post_json(
        &client,
        &agent.url("/v1/commands/"),
        &json!({"name": "a.b", "params": {}, "agent_token": TOKEN}),
    )
    .assert_fault(401, TOKEN_INVALID);
    // Root, v1 and status are open.
    for path in ["/", "/v1/", "/v1/status", "/status"] {
        assert_eq!(get(&agent, &agent.url(path)).status, 200, "{path}");
    }
    // The right token opens the command routes, in any position of the query.
    let reply = get(
        &agent,
        &agent.url("/v1/commands/?wait=false&agent_token=678123"),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    // Request spans carry method and path, never the query string with the token.
    let logs = agent.logs();
    assert!(logs.contains("/v1/commands/"), "{logs}");
    assert!(!logs.contains("agent_token"), "{logs}");
    assert!(!logs.contains(TOKEN) && !logs.contains("678124"), "{logs}");
}

#[test]
fn an_agent_holding_no_token_answers_401_to_every_command_route() {
    let agent = AgentProcess::start_with(AgentOptions {
        with_token: false,
        ..AgentOptions::default()
    });
    for query in ["", "?agent_token=", "?agent_token=678123"] {
        get(&agent, &agent.url(&format!("/v1/commands/{query}"))).assert_fault(401, TOKEN_INVALID);
        get(&agent, &agent.url(&format!("/v1/commands/x{query}"))).assert_fault(401, TOKEN_INVALID);
        post_raw(
            &agent,
            &agent.url(&format!("/v1/commands/{query}")),
            br#"{"name": "clean.get_clean_steps", "params": {}}"#,
        )
        .assert_fault(401, TOKEN_INVALID);
    }
    assert_eq!(get(&agent, &agent.url("/v1/status")).status, 200);
}

#[test]
fn malformed_command_bodies_get_400() {
    let agent = AgentProcess::start();
    let url = agent.url_with_token("/v1/commands/");
    for body in [
        &br#"{"params": {}}"#[..],
        br#"{"name": "clean.get_clean_steps"}"#,
        br#"{"name": "clean.get_clean_steps", "params": []}"#,
        br#"{"name": "clean.get_clean_steps", "params": "x"}"#,
        br#"{"name": "clean.get_clean_steps", "params": null}"#,
        br#"[{"name": "clean.get_clean_steps", "params": {}}]"#,
        br#"42"#,
    ] {
        post_raw(&agent, &url, body).assert_fault(400, MISSING_NAME_OR_PARAMS);
    }
    for body in [
        &b"not json"[..],
        b"",
        b"{\"name\": ",
        b"\xff\xfe\x00",
        b"{'a': 1}",
    ] {
        let reply = post_raw(&agent, &url, body);
        assert_eq!(reply.status, 400, "{reply:?}");
        let faultstring = reply.json()["faultstring"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            faultstring.starts_with("400 Bad Request: Failed to decode JSON object: ")
                && faultstring.len() > "400 Bad Request: Failed to decode JSON object: ".len(),
            "{reply:?}"
        );
        assert_eq!(reply.json()["faultcode"], "Client");
    }
    // A name without a dot.
    post_json(
        &agent.client(),
        &url,
        &json!({"name": "get_clean_steps", "params": {}}),
    )
    .assert_fault(
        400,
        "Invalid command: Command name must be of the form <extension>.<name>",
    );
    // The Content-Type is not checked: a valid body as text/plain reaches the engine.
    let reply = send(
        agent.client().post(&url).set("Content-Type", "text/plain"),
        Some(br#"{"name": "nope.cmd", "params": {}}"#),
    );
    reply.assert_fault(404, "Not found: Extension with id nope not found.");
}

#[test]
fn unknown_ids_paths_and_methods() {
    let agent = AgentProcess::start();
    get(&agent, &agent.url_with_token("/v1/commands/no-such-id")).assert_fault(
        404,
        "Not found: Command Result with id no-such-id not found.",
    );
    get(&agent, &agent.url_with_token("/commands/no-such-id")).assert_fault(
        404,
        "Not found: Command Result with id no-such-id not found.",
    );
    for path in [
        "/v2/",
        "/v1/nothing",
        "/v1/status/",
        "/v1/commands/a/b",
        "/commandsx",
        "/v1/commands/%2Fx/y",
        "/favicon.ico",
    ] {
        get(&agent, &agent.url(path)).assert_fault(404, NOT_FOUND_PATH);
    }
    let client = agent.client();
    let with_allow = |reply: Reply, allow: &str| {
        reply.assert_fault(405, NOT_ALLOWED);
        assert_eq!(reply.header("allow"), Some(allow), "{reply:?}");
    };
    // Routing comes before the token: no token needed to get a 405.
    for method in ["DELETE", "PUT", "PATCH", "OPTIONS"] {
        with_allow(
            send(client.request(method, &agent.url("/v1/commands/")), None),
            "GET, POST, HEAD",
        );
        with_allow(
            send(client.request(method, &agent.url("/commands/")), None),
            "GET, POST, HEAD",
        );
    }
    for path in ["/", "/v1/", "/v1/status", "/status", "/v1/commands/some-id"] {
        with_allow(
            send(client.post(&agent.url(path)), Some(b"{}")),
            "GET, HEAD",
        );
        with_allow(
            send(client.request("DELETE", &agent.url(path)), None),
            "GET, HEAD",
        );
    }
}

#[test]
fn slashless_paths_redirect_with_308_keeping_the_query() {
    let agent = AgentProcess::start();
    let client = agent.client();
    let base = agent.url("");
    for (method, path, query, target) in [
        (
            "GET",
            "/v1/commands",
            "?agent_token=678123&wait=true",
            "/v1/commands/",
        ),
        (
            "POST",
            "/v1/commands",
            "?wait=true&agent_token=678123",
            "/v1/commands/",
        ),
        (
            "HEAD",
            "/v1/commands",
            "?agent_token=678123",
            "/v1/commands/",
        ),
        ("GET", "/commands", "?agent_token=678123", "/commands/"),
        ("GET", "/v1", "", "/v1/"),
        ("GET", "/v1/commands", "", "/v1/commands/"),
    ] {
        let request = client.request(method, &agent.url(&format!("{path}{query}")));
        let reply = if method == "POST" {
            send(request, Some(br#"{"name": "a.b", "params": {}}"#))
        } else {
            send(request, None)
        };
        assert_eq!(reply.status, 308, "{method} {path}: {reply:?}");
        assert_eq!(
            reply.header("location"),
            Some(format!("{base}{target}{query}").as_str()),
            "{method} {path}"
        );
    }
    // A following client ends on the slash route.
    let reply = send(agent.following_client().get(&agent.url("/v1")), None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["id"], "v1");
}

#[test]
fn head_answers_like_get_without_a_body() {
    let agent = AgentProcess::start();
    let client = agent.client();
    for url in [
        agent.url("/"),
        agent.url("/v1/"),
        agent.url("/v1/status"),
        agent.url("/status"),
        agent.url_with_token("/v1/commands/"),
        agent.url_with_token("/commands/"),
    ] {
        let reply = send(client.head(&url), None);
        assert_eq!(reply.status, 200, "{url}: {reply:?}");
        assert_eq!(reply.body, "", "{url}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
    let reply = send(client.head(&agent.url("/v1/commands/")), None);
    assert_eq!(reply.status, 401);
    let reply = send(
        client.head(&agent.url_with_token("/v1/commands/nope")),
        None,
    );
    assert_eq!(reply.status, 404);
}

#[test]
fn documents_status_and_aliases() {
    let agent = AgentProcess::start();
    let base = agent.url("");
    let root = get(&agent, &agent.url("/"));
    assert_eq!(root.header("content-type"), Some("application/json"));
    let root = root.json();
    assert_eq!(root["name"], "OpenStack Ironic Python Agent API");
    assert_eq!(
        root["versions"][0]["links"][0],
        json!({"href": format!("{base}/v1"), "rel": "self"})
    );
    assert_eq!(root["default_version"], root["versions"][0]);
    let v1 = get(&agent, &agent.url("/v1/")).json();
    assert_eq!(v1["id"], "v1");
    assert_eq!(
        v1["commands"],
        json!([
            {"href": format!("{base}/v1/commands"), "rel": "self"},
            {"href": format!("{base}/commands"), "rel": "bookmark"},
        ])
    );
    assert_eq!(v1["status"][1]["href"], format!("{base}/status"));
    assert_eq!(v1["media_types"][0]["base"], "application/json");

    let status = get(&agent, &agent.url("/v1/status")).json();
    assert!(
        status["started_at"].as_f64().is_some_and(|t| t > 1.0e9),
        "{status}"
    );
    assert!(
        status["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{status}"
    );
    assert_eq!(
        get(&agent, &agent.url("/status")).json()["version"],
        status["version"]
    );
    assert_eq!(
        get(&agent, &agent.url_with_token("/commands/")).json(),
        json!({"commands": []})
    );

    // Hrefs follow the request's Host header.
    let response = agent.raw_exchange(
        b"GET / HTTP/1.1\r\nHost: 10.0.0.5:9999\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"http://10.0.0.5:9999/v1\""),
        "{response}"
    );
    let response = agent.raw_exchange(
        b"GET /v1/commands?agent_token=678123 HTTP/1.1\r\nHost: agent.example:9999\r\nConnection: close\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("location: http://agent.example:9999/v1/commands/?agent_token=678123\r\n"),
        "{response}"
    );
}

#[test]
fn oversized_bodies_get_413_and_the_agent_keeps_answering() {
    let mut agent = AgentProcess::start();
    let url = agent.url_with_token("/v1/commands/");
    let big = vec![b'x'; 50 * 1024 * 1024];
    // Declared with Content-Length.
    let reply = post_raw(&agent, &url, &big);
    reply.assert_fault(413, TOO_LARGE);
    agent.assert_alive();
    // Streamed with chunked encoding: the limit applies as it arrives.
    let result = agent
        .client()
        .post(&url)
        .send(std::io::Cursor::new(big.clone()));
    match result {
        Err(ureq::Error::Status(413, response)) => {
            let body: Value =
                serde_json::from_str(&response.into_string().expect("body")).expect("JSON fault");
            assert_eq!(body["faultstring"], TOO_LARGE);
        }
        // The server may stop reading before the client finished writing.
        Err(ureq::Error::Transport(_)) => {}
        other => panic!("a 50 MB chunked body was not refused: {other:?}"),
    }
    agent.assert_alive();
    // A large but acceptable body (1 MiB) is read and parsed.
    let padding = "a".repeat(1024 * 1024);
    let reply = post_json(
        &agent.client(),
        &url,
        &json!({"name": "nope.cmd", "params": {"padding": padding}}),
    );
    reply.assert_fault(404, "Not found: Extension with id nope not found.");
    // Without a token the body is not even read.
    let reply = post_raw(&agent, &agent.url("/v1/commands/"), &big);
    reply.assert_fault(401, TOKEN_INVALID);
    agent.assert_alive();
}

#[test]
fn slow_and_stalled_clients_time_out() {
    let mut agent = AgentProcess::start();
    let port = agent.port;
    let stalled_head = std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(40)))
            .expect("read timeout");
        std::io::Write::write_all(&mut stream, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
            .expect("write half a head");
        let mut response = Vec::new();
        let read = stream.read_to_end(&mut response);
        (
            started.elapsed(),
            read.is_ok(),
            String::from_utf8_lossy(&response).into_owned(),
        )
    });
    let stalled_body = std::thread::spawn(move || {
        let started = Instant::now();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(40)))
            .expect("read timeout");
        std::io::Write::write_all(
            &mut stream,
            b"POST /v1/commands/?agent_token=678123 HTTP/1.1\r\nHost: x\r\n\
              Content-Length: 100\r\n\r\n{\"name\": ",
        )
        .expect("write half a request");
        let mut response = Vec::new();
        let read = stream.read_to_end(&mut response);
        (
            started.elapsed(),
            read.is_ok(),
            String::from_utf8_lossy(&response).into_owned(),
        )
    });
    let (elapsed, closed, response) = stalled_head.join().expect("head thread");
    assert!(closed, "the server never closed a stalled head: {response}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 408"),
        "{response}"
    );
    let (elapsed, closed, response) = stalled_body.join().expect("body thread");
    assert!(closed, "the server never closed a stalled body: {response}");
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("408 Request Timeout"), "{response}");
    agent.assert_alive();
}

/// A complete POST to the run route with this body and a correct Content-Length.
fn post_with_body(body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /v1/commands/?agent_token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[test]
fn hostile_input_never_kills_the_server() {
    let mut agent = AgentProcess::start();
    let deep = format!(
        "POST /v1/commands/?agent_token=678123 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Length: 200000\r\n\r\n{}",
        "[".repeat(200_000)
    );
    let huge_header = format!(
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200_000)
    );
    let long_path = format!(
        "GET /v1/commands/{}?agent_token=678123 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "%ff".repeat(10_000)
    );
    let inputs: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\x03garbage\r\n\r\n".to_vec(),
        b"GET /\r\n\r\n".to_vec(),
        b"GET / HTTP/1.0\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /v1/commands/%00%ff%fe?agent_token=678123 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /v1/commands/?agent_token=%ff%00&wait=%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /v1 HTTP/1.1\r\nHost: a b\"<>\r\nConnection: close\r\n\r\n".to_vec(),
        b"POST /v1/commands/?agent_token=678123 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot-a-chunk\r\n0\r\n\r\n".to_vec(),
        b"POST /v1/commands/?agent_token=678123 HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(),
        b"POST /v1/commands/?agent_token=678123 HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST /v1/commands/?agent_token=678123 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        post_with_body(b"{\"name\": \"\xff\xfe.x\", \"params\": {\"a\": 1}}xx"),
        post_with_body(b"{\"name\": \".\", \"params\": {}}"),
        post_with_body(b"{\"name\": \"a.b.c.\", \"params\": {}}"),
        post_with_body(b"{\"name\": \"\", \"params\": {}}"),
        post_with_body(b"{\"name\": \"a.b\", \"params\": {\"n\": 1e999}}"),
        post_with_body(b"{\"name\": \"a.b\", \"params\": {\"s\": \"\\ud800\"}}"),
        post_with_body("{\"name\": \"\u{1F600}.\u{1F600}\", \"params\": {}}".as_bytes()),
        deep.into_bytes(),
        huge_header.into_bytes(),
        long_path.into_bytes(),
    ];
    for input in &inputs {
        let _ = agent.raw_exchange(input, Duration::from_secs(15));
        assert!(
            agent.is_running(),
            "the agent died on {:?}:\n{}",
            String::from_utf8_lossy(&input[..input.len().min(200)]),
            agent.logs()
        );
    }
    agent.assert_alive();
    assert!(!agent.logs().contains("panicked"), "{}", agent.logs());
}

#[test]
fn the_ipv6_wildcard_also_accepts_ipv4() {
    // The support helpers talk to 127.0.0.1, so readiness alone proves IPv4 works.
    let mut agent = AgentProcess::start_with(AgentOptions {
        listen_host: "::".to_string(),
        ..AgentOptions::default()
    });
    agent.assert_alive();
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let reply = send(
            agent
                .client()
                .get(&format!("http://[::1]:{}/v1/status", agent.port)),
            None,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

#[test]
fn a_busy_port_is_a_clear_start_up_error() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = holder.local_addr().expect("address").port();
    let output = run_agent_to_exit(&[
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        &port.to_string(),
    ]);
    assert_ne!(output.0, Some(0));
    assert!(
        output
            .1
            .contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && output.1.contains("in use"),
        "{}",
        output.1
    );
}

/// Runs the agent that is expected to exit by itself; returns (exit code, stderr).
fn run_agent_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
        .args([
            "--standalone",
            "--agent-token",
            TOKEN,
            "--cmdline-file",
            "/dev/null",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --- TLS (spec §12.3) ------------------------------------------------------------------

struct TlsAgent {
    agent: AgentProcess,
    cert_der: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn start_tls_agent(min_version: &str, with_listen_tls_flag: bool) -> TlsAgent {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, cert_der) = write_test_certificate(dir.path());
    let mut args = vec![
        "--tls-cert-file".to_string(),
        cert.display().to_string(),
        "--tls-key-file".to_string(),
        key.display().to_string(),
        "--tls-min-version".to_string(),
        min_version.to_string(),
    ];
    if with_listen_tls_flag {
        args.push("--listen-tls".to_string());
    }
    let agent = AgentProcess::start_with(AgentOptions {
        tls_cert_der: Some(cert_der.clone()),
        ..AgentOptions::default().args(args)
    });
    TlsAgent {
        agent,
        cert_der,
        _dir: dir,
    }
}

fn pinned_client(
    tls: &TlsAgent,
    version: &'static rustls::SupportedProtocolVersion,
) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .tls_config(tls_client_config(&tls.cert_der, Some(version)))
        .build()
}

/// Runs `openssl s_client` against the agent; returns (success, combined output).
fn openssl_client(port: u16, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is needed for the TLS tests (.ci/install-deps.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for openssl") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openssl s_client hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut output);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut output);
    }
    (status.success(), output)
}

/// A handshake the server refused with an alert (rustls answers a TLS 1.0/1.1 hello with
/// `handshake_failure` or `protocol_version`), not one the client refused to start.
fn assert_version_refused(port: u16, flag: &str) {
    // SECLEVEL=0 lets OpenSSL 3 really offer TLS 1.0/1.1, so the server is the one saying no.
    let (ok, output) = openssl_client(port, &[flag, "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok, "a {flag} handshake succeeded:\n{output}");
    let lower = output.to_ascii_lowercase();
    assert!(
        lower.contains("alert protocol version") || lower.contains("alert handshake failure"),
        "{flag} was not refused by a server alert:\n{output}"
    );
    assert!(
        !lower.contains("no protocols available"),
        "client-side refusal:\n{output}"
    );
}

#[test]
fn static_tls_accepts_1_2_and_1_3_and_refuses_1_0_and_1_1() {
    let tls = start_tls_agent("1.2", true);
    // IPA's test: poll the slashless path, following the redirect, with TLS 1.2 then 1.3.
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let client = pinned_client(&tls, version);
        let reply = send(client.get(&tls.agent.url_with_token("/v1/commands")), None);
        assert_eq!(reply.status, 200, "{version:?}: {reply:?}");
        assert_eq!(reply.json(), json!({"commands": []}), "{version:?}");
    }
    // The redirect and the documents say https.
    let reply = send(tls.agent.client().get(&tls.agent.url("/v1")), None);
    assert_eq!(reply.status, 308);
    assert_eq!(
        reply.header("location"),
        Some(tls.agent.url("/v1/").as_str())
    );
    assert!(tls.agent.url("/v1/").starts_with("https://"));
    // A real client pinned to the old versions is refused by the server.
    assert_version_refused(tls.agent.port, "-tls1_1");
    assert_version_refused(tls.agent.port, "-tls1");
    // The same client does connect with TLS 1.2 and 1.3 (so the refusals above are real).
    let (ok, output) = openssl_client(tls.agent.port, &["-tls1_2"]);
    assert!(ok && output.contains("TLSv1.2"), "{output}");
    let (ok, output) = openssl_client(tls.agent.port, &["-tls1_3"]);
    assert!(ok && output.contains("TLSv1.3"), "{output}");
    // TLS 1.2 offers IPA's AES-GCM suites only.
    let (ok, output) = openssl_client(
        tls.agent.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(ok, "{output}");
    let (ok, output) = openssl_client(
        tls.agent.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    );
    assert!(!ok, "a suite outside IPA's list was accepted:\n{output}");
    // Plain HTTP to the TLS port gets nothing useful.
    let plain = tls.agent.raw_exchange(
        b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(!plain.contains("started_at"), "{plain}");
}

#[test]
fn tls_min_version_1_3_refuses_1_2() {
    // Both files without --listen-tls also turn TLS on, as in IPA.
    let tls = start_tls_agent("1.3", false);
    let reply = send(
        pinned_client(&tls, &rustls::version::TLS13)
            .get(&tls.agent.url_with_token("/v1/commands/")),
        None,
    );
    assert_eq!(reply.json(), json!({"commands": []}));
    let refused = try_send(
        pinned_client(&tls, &rustls::version::TLS12).get(&tls.agent.url("/v1/status")),
        None,
    );
    assert!(refused.is_err(), "TLS 1.2 was accepted: {refused:?}");
    let (ok, output) = openssl_client(tls.agent.port, &["-tls1_2"]);
    assert!(!ok, "{output}");
}

#[test]
fn listen_tls_without_files_is_a_start_up_error() {
    let port = support::agent::free_port();
    let (code, stderr) = run_agent_to_exit(&[
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        &port.to_string(),
        "--listen-tls",
    ]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("tls_cert_file"), "{stderr}");
}

// --- In-process: the token the Ironic client installs after lookup ---------------------

#[test]
fn installing_a_token_at_run_time_opens_the_command_routes() {
    use ironic_agent::wiring::start_actors;
    use ironic_agent_actors::api::InstallAgentToken;
    use ironic_agent_actors::config::{AgentConfig, Secret};

    let config = AgentConfig {
        listen_host: "127.0.0.1".to_string(),
        listen_port: 0,
        standalone: true,
        agent_token: None,
        ..AgentConfig::default()
    };
    let system = actix::System::new();
    system.block_on(async move {
        let agent = start_actors(&config);
        let addrs = agent.serve().await.expect("serve on a loopback port");
        let port = addrs[0].port();
        // Blocking HTTP runs off the actix thread, where the coordinator lives.
        let status_of = move |token: &'static str| {
            actix_rt::task::spawn_blocking(move || {
                let url = format!("http://127.0.0.1:{port}/v1/commands/?agent_token={token}");
                match ureq::get(&url).call() {
                    Ok(response) => response.status(),
                    Err(ureq::Error::Status(code, _)) => code,
                    Err(err) => panic!("{err}"),
                }
            })
        };
        assert_eq!(status_of("a-token-from-lookup").await.expect("join"), 401);
        agent
            .api
            .send(InstallAgentToken(Secret::new("a-token-from-lookup")))
            .await
            .expect("API mailbox");
        assert_eq!(status_of("a-token-from-lookup").await.expect("join"), 200);
        assert_eq!(status_of("another-token").await.expect("join"), 401);
        agent.shutdown(Duration::from_secs(5)).await;
    });
}

// --- Options from a configuration file -------------------------------------------------

#[test]
fn max_request_body_bytes_is_configurable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("agent.conf");
    std::fs::write(&conf, "[DEFAULT]\nmax_request_body_bytes = 2048\n").expect("write conf");
    let mut agent = AgentProcess::start_with(
        AgentOptions::default().args(["--config-file".to_string(), conf.display().to_string()]),
    );
    let url = agent.url_with_token("/v1/commands/");
    let body = |padding: usize| {
        json!({"name": "nope.cmd", "params": {"pad": "p".repeat(padding)}}).to_string()
    };
    post_raw(&agent, &url, body(1500).as_bytes())
        .assert_fault(404, "Not found: Extension with id nope not found.");
    post_raw(&agent, &url, body(2100).as_bytes()).assert_fault(413, TOO_LARGE);
    agent.assert_alive();
}

#[test]
fn tls_cipher_suites_replaces_ipas_tls12_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, cert_der) = write_test_certificate(dir.path());
    let conf = dir.path().join("agent.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nlisten_tls = True\ntls_cert_file = {}\ntls_key_file = {}\n\
             tls_cipher_suites = ECDHE-ECDSA-CHACHA20-POLY1305\n",
            cert.display(),
            key.display()
        ),
    )
    .expect("write conf");
    let agent = AgentProcess::start_with(AgentOptions {
        tls_cert_der: Some(cert_der),
        ..AgentOptions::default().args(["--config-file".to_string(), conf.display().to_string()])
    });
    let (ok, output) = openssl_client(
        agent.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
    );
    assert!(ok, "{output}");
    let (ok, output) = openssl_client(
        agent.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(!ok, "{output}");
    // TLS 1.3 is not affected by the TLS 1.2 list.
    let (ok, output) = openssl_client(agent.port, &["-tls1_3"]);
    assert!(ok, "{output}");
}
