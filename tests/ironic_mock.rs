//! The Ironic client against a scripted mock Ironic (an actix-web server on
//! 127.0.0.1:0 inside the test): lookup retries, version negotiation, several URLs,
//! heartbeat 202/409 and forced heartbeats, a new token looked up after Ironic rejects
//! the held one, inspection retries, and the start-up sequence (token `******`,
//! auto-TLS, lookup timeout).

mod support;

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use ironic_agent_actors::api::InstallAgentToken;
use ironic_agent_actors::config::{AgentConfig, HostPaths, Secret};
use ironic_agent_actors::ironic::client::{ClientSettings, IronicHttp};
use ironic_agent_actors::ironic::startup::{self, StartupError, StartupOutcome, StartupTiming};
use ironic_agent_actors::ironic::timing::{FixedJitter, InspectionRetry, LookupBackoff};
use ironic_agent_actors::ironic::{
    ForceHeartbeat, GetHeartbeatStats, Inspect, IronicClient, IronicError, Lookup,
    StartHeartbeating, TokenRenewal,
};
use serde_json::{json, Value};

const TOKEN: &str = "an7dLO4r3mP-2KgfYhpFmMVB9jyzmPMsZXBIaOUqR9s";
const NODE: &str = "2865dde3-5ab8-44f2-89b9-ac1d6436aebc";

/// One request the mock received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    version: Option<String>,
    request_id: Option<String>,
    body: Value,
    at: Instant,
}

/// Scripted answers (front first; when a queue is empty the default answers).
#[derive(Debug, Default)]
struct Script {
    root: VecDeque<u16>,
    lookup: VecDeque<(u16, Value)>,
    heartbeat: VecDeque<u16>,
    inspection: VecDeque<(u16, Value)>,
    lookup_default: Option<(u16, Value)>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Script>>;

fn lookup_body(token: &str) -> Value {
    json!({
        "node": {"uuid": NODE, "properties": {}, "instance_info": {}, "driver_internal_info": {}},
        "config": {"heartbeat_timeout": 300, "agent_token": token, "agent_token_required": true,
                   "tls_min_version": "1.2"}
    })
}

fn fault(text: &str) -> Value {
    json!({"error_message": json!({"faultcode": "Client", "faultstring": text, "debuginfo": null}).to_string()})
}

async fn mock_handler(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Shared>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = match req.query_string() {
        "" => req.path().to_string(),
        query => format!("{}?{query}", req.path()),
    };
    let mut script = state.lock().expect("script");
    script.seen.push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        version: header("X-OpenStack-Ironic-API-Version"),
        request_id: header("X-OpenStack-Request-ID"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        at: Instant::now(),
    });
    let reply = |code: u16, body: Value| {
        let status = actix_web::http::StatusCode::from_u16(code).expect("status");
        if body.is_null() {
            HttpResponse::build(status).finish()
        } else {
            HttpResponse::build(status).json(body)
        }
    };
    match req.path() {
        "/" => match script.root.pop_front().unwrap_or(200) {
            200 => reply(
                200,
                json!({"default_version": {"id": "v1", "version": "1.115", "min_version": "1.1"}}),
            ),
            code => reply(code, json!({"title": "broken"})),
        },
        "/v1/lookup" => {
            let (code, body) = script
                .lookup
                .pop_front()
                .or_else(|| script.lookup_default.clone())
                .unwrap_or_else(|| (200, lookup_body(TOKEN)));
            reply(code, body)
        }
        p if p.starts_with("/v1/heartbeat/") => {
            let code = script.heartbeat.pop_front().unwrap_or(202);
            match code {
                202 => reply(202, Value::Null),
                // Ironic 39's answer once the conductor has wiped the node's token.
                400 => reply(400, fault("Invalid or missing agent token received.")),
                _ => reply(code, fault("Node is locked")),
            }
        }
        "/v1/continue_inspection" => {
            let (code, body) = script
                .inspection
                .pop_front()
                .unwrap_or_else(|| (202, json!({"uuid": NODE})));
            reply(code, body)
        }
        _ => reply(404, json!({"title": "not found"})),
    }
}

/// A running mock Ironic.
struct Mock {
    url: String,
    state: Shared,
    handle: actix_web::dev::ServerHandle,
}

impl Mock {
    fn start(script: Script) -> Mock {
        let state: Shared = Arc::new(Mutex::new(script));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(mock_handler))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind mock");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Mock {
            url: format!("http://127.0.0.1:{port}"),
            state,
            handle,
        }
    }

    /// The same mock over HTTPS with a self-signed certificate for 127.0.0.1; returns
    /// the certificate PEM too.
    fn start_tls(script: Script) -> (Mock, String) {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("self-signed certificate");
        let pem = cert.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
        let state: Shared = Arc::new(Mutex::new(script));
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(mock_handler))
        })
        .workers(1)
        .disable_signals()
        .bind_rustls_0_23(("127.0.0.1", 0), tls)
        .expect("bind mock");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        let mock = Mock {
            url: format!("https://127.0.0.1:{port}"),
            state,
            handle,
        };
        (mock, pem)
    }

    fn seen(&self, path_prefix: &str) -> Vec<Seen> {
        self.state
            .lock()
            .expect("script")
            .seen
            .iter()
            .filter(|s| s.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn config_for(mock: &Mock) -> AgentConfig {
    AgentConfig {
        api_url: vec![format!("{}/", mock.url)],
        global_request_id: Some("req-test".into()),
        lookup_timeout: 30,
        ..AgentConfig::default()
    }
}

fn fast_lookup() -> LookupBackoff {
    LookupBackoff {
        interval: Duration::from_millis(10),
        max: Duration::from_millis(40),
        conflict_sleeps: vec![Duration::from_millis(20)],
    }
}

fn macs() -> Vec<String> {
    vec!["02:fc:00:00:00:01".to_string()]
}

async fn wait_until(mut done: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Heartbeating for [`NODE`] with [`TOKEN`], no token renewal.
fn heartbeating(heartbeat_timeout: f64) -> StartHeartbeating {
    StartHeartbeating {
        node_uuid: NODE.into(),
        agent_token: Some(Secret::new(TOKEN)),
        heartbeat_timeout,
        callback_url: "http://127.0.0.1:9999".into(),
        verify_ca: None,
        renewal: None,
    }
}

#[actix_rt::test]
async fn lookup_retries_409_and_500_then_succeeds_with_negotiated_version() {
    let mock = Mock::start(Script {
        lookup: VecDeque::from([(409, fault("Node is locked")), (500, json!({}))]),
        ..Script::default()
    });
    let client = IronicClient::new(config_for(&mock))
        .with_lookup_backoff(fast_lookup())
        .start();
    let found = client
        .send(Lookup {
            macs: macs(),
            node_uuid: Some(NODE.into()),
        })
        .await
        .expect("mailbox")
        .expect("lookup succeeds after retries");
    assert_eq!(found.node_uuid, NODE);
    assert_eq!(found.config.heartbeat_timeout, 300.0);
    assert_eq!(
        found.config.agent_token.as_ref().map(Secret::expose),
        Some(TOKEN)
    );

    let root = mock.seen("/");
    assert_eq!(root[0].path, "/", "version detection first");
    assert_eq!(root[0].version, None, "GET / carries no version header");
    let lookups = mock.seen("/v1/lookup");
    assert_eq!(lookups.len(), 3);
    for lookup in &lookups {
        assert_eq!(lookup.method, "GET");
        assert_eq!(lookup.version.as_deref(), Some("1.62"));
        assert_eq!(lookup.request_id.as_deref(), Some("req-test"));
        assert_eq!(
            lookup.path,
            format!("/v1/lookup?addresses=02%3Afc%3A00%3A00%3A00%3A01&node_uuid={NODE}")
        );
    }
    // The version is detected once and cached.
    assert_eq!(mock.seen("/").iter().filter(|s| s.path == "/").count(), 1);
    // After the 409 came the extra conflict sleep (20 ms) plus the back-off (≥ 10 ms).
    assert!(lookups[1].at - lookups[0].at >= Duration::from_millis(30));
    mock.stop().await;
}

#[actix_rt::test]
async fn version_fallback_is_131_and_not_cached() {
    let mock = Mock::start(Script {
        root: VecDeque::from([500]),
        ..Script::default()
    });
    let http = IronicHttp::new(ClientSettings::from_config(&config_for(&mock))).expect("client");
    http.lookup_once(&macs(), None).await.expect("first lookup");
    http.lookup_once(&macs(), None)
        .await
        .expect("second lookup");
    let lookups = mock.seen("/v1/lookup");
    assert_eq!(lookups[0].version.as_deref(), Some("1.31"));
    assert_eq!(lookups[1].version.as_deref(), Some("1.62"));
    assert_eq!(mock.seen("/").iter().filter(|s| s.path == "/").count(), 2);
    mock.stop().await;
}

#[actix_rt::test]
async fn several_api_urls_tried_in_order_and_working_one_moves_first() {
    let mock = Mock::start(Script::default());
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/", listener.local_addr().expect("addr"))
    };
    let config = AgentConfig {
        api_url: vec![dead.clone(), format!("{}/", mock.url)],
        ..AgentConfig::default()
    };
    let http = IronicHttp::new(ClientSettings::from_config(&config)).expect("client");
    assert_eq!(
        http.api_urls(),
        [dead.trim_end_matches('/').to_string(), mock.url.clone()]
    );
    let found = http.lookup_once(&macs(), None).await.expect("lookup");
    assert_eq!(found.node_uuid, NODE);
    assert_eq!(http.api_urls()[0], mock.url, "the working URL moved first");
    mock.stop().await;
}

#[actix_rt::test]
async fn lookup_error_text_comes_from_ironic_body() {
    let mock = Mock::start(Script {
        lookup: VecDeque::from([(404, fault("Node could not be found"))]),
        ..Script::default()
    });
    let http = IronicHttp::new(ClientSettings::from_config(&config_for(&mock))).expect("client");
    let err = http.lookup_once(&macs(), None).await.expect_err("404");
    assert_eq!(
        err,
        IronicError::Status {
            code: 404,
            text: "Node could not be found".into()
        }
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn heartbeat_409_backs_off_then_202_and_forced_heartbeat_goes_at_once() {
    let mock = Mock::start(Script {
        heartbeat: VecDeque::from([409]),
        ..Script::default()
    });
    let client = IronicClient::new(config_for(&mock))
        .with_error_base(Duration::from_millis(100))
        .with_jitter(FixedJitter::new([0.0]))
        .start();
    client.send(heartbeating(1000.0)).await.expect("mailbox");
    let beats = || mock.seen("/v1/heartbeat/").len();
    assert!(wait_until(|| beats() >= 2, Duration::from_secs(5)).await);
    let seen = mock.seen("/v1/heartbeat/");
    // Error back-off: 100 ms × U(1, 2) with the draw pinned to 1.
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_millis(95), "{gap:?}");
    assert!(gap < Duration::from_millis(1000), "{gap:?}");
    assert_eq!(seen[0].path, format!("/v1/heartbeat/{NODE}"));
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].version.as_deref(), Some("1.68"));
    assert_eq!(
        seen[0].body,
        json!({"callback_url": "http://127.0.0.1:9999", "agent_token": TOKEN,
               "agent_version": ironic_agent_actors::AGENT_VERSION})
    );
    // After the 202 the next one is 1000 × 0.3 s away: nothing more arrives…
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(beats(), 2);
    let stats = client.send(GetHeartbeatStats).await.expect("mailbox");
    assert_eq!((stats.sent, stats.accepted, stats.failed), (2, 1, 1));
    assert!(stats.last_error.as_deref().unwrap_or("").contains("409"));
    // …until an async command ends: the forced heartbeat goes at once.
    let forced_at = Instant::now();
    client.send(ForceHeartbeat).await.expect("mailbox");
    assert!(wait_until(|| beats() >= 3, Duration::from_secs(2)).await);
    let third = mock.seen("/v1/heartbeat/")[2].at;
    assert!(
        third - forced_at < Duration::from_millis(200),
        "{:?}",
        third - forced_at
    );
    mock.stop().await;
}

#[actix_rt::test]
async fn forced_heartbeat_after_an_error_keeps_the_floor() {
    let mock = Mock::start(Script {
        heartbeat: VecDeque::from([500, 500]),
        ..Script::default()
    });
    let client = IronicClient::new(config_for(&mock))
        .with_error_base(Duration::from_millis(400))
        .with_jitter(FixedJitter::new([1.0]))
        .start();
    client.send(heartbeating(1000.0)).await.expect("mailbox");
    let beats = || mock.seen("/v1/heartbeat/").len();
    assert!(wait_until(|| beats() >= 1, Duration::from_secs(2)).await);
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    client.send(ForceHeartbeat).await.expect("mailbox");
    assert!(wait_until(|| beats() >= 2, Duration::from_secs(3)).await);
    let seen = mock.seen("/v1/heartbeat/");
    let gap = seen[1].at - seen[0].at;
    // Not at once (the 400 ms floor), but before the 800 ms error interval.
    assert!(gap >= Duration::from_millis(380), "{gap:?}");
    assert!(gap < Duration::from_millis(750), "{gap:?}");
    mock.stop().await;
}

/// Records the tokens the heartbeat loop installs (stands in for the API server).
struct TokenSink(Arc<Mutex<Vec<String>>>);

impl Actor for TokenSink {
    type Context = actix::Context<Self>;
}

impl actix::Handler<InstallAgentToken> for TokenSink {
    type Result = ();

    fn handle(&mut self, msg: InstallAgentToken, _ctx: &mut Self::Context) {
        self.0
            .lock()
            .expect("sink")
            .push(msg.0.expose().to_string());
    }
}

/// Ironic wiped the token it handed out: heartbeats get 400 "Invalid or missing agent
/// token". The loop looks the node up again (by MACs and UUID): a 404 (lookup not
/// allowed in this state) and a `******` (another token is held) change nothing; the
/// first fresh token is installed in the API and the heartbeat goes out with it at once.
#[actix_rt::test]
async fn token_rejected_heartbeat_looks_up_a_new_token_and_installs_it() {
    const NEW: &str = "Zx9bq2Wm0vLr7TtYpUu1Kk3Hh5Gg8Ff6Dd4Ss2Aa0Qq";
    let mock = Mock::start(Script {
        heartbeat: VecDeque::from([400, 400, 400]),
        lookup: VecDeque::from([
            (404, fault("Node could not be found")),
            (200, lookup_body("******")),
            (200, lookup_body(NEW)),
        ]),
        ..Script::default()
    });
    let installed = Arc::new(Mutex::new(Vec::new()));
    let sink = TokenSink(installed.clone()).start();
    let client = IronicClient::new(config_for(&mock))
        .with_error_base(Duration::from_millis(50))
        .with_jitter(FixedJitter::new([0.0]))
        .start();
    client
        .send(StartHeartbeating {
            renewal: Some(TokenRenewal {
                macs: macs(),
                install: sink.recipient(),
            }),
            ..heartbeating(1000.0)
        })
        .await
        .expect("mailbox");
    let beats = || mock.seen("/v1/heartbeat/").len();
    assert!(wait_until(|| beats() >= 4, Duration::from_secs(5)).await);
    let tokens: Vec<Value> = mock
        .seen("/v1/heartbeat/")
        .iter()
        .map(|seen| seen.body["agent_token"].clone())
        .collect();
    assert_eq!(
        tokens,
        vec![json!(TOKEN), json!(TOKEN), json!(TOKEN), json!(NEW)]
    );
    let lookups = mock.seen("/v1/lookup");
    assert_eq!(lookups.len(), 3, "one lookup per rejected heartbeat");
    assert!(
        lookups[0].path.contains(&format!(
            "addresses=02%3Afc%3A00%3A00%3A00%3A01&node_uuid={NODE}"
        )),
        "{}",
        lookups[0].path
    );
    assert_eq!(*installed.lock().expect("sink"), vec![NEW.to_string()]);
    // The fresh token's heartbeat went out at once, not after the error interval.
    let seen = mock.seen("/v1/");
    let last_lookup = seen.iter().rposition(|s| s.path.starts_with("/v1/lookup"));
    let renewed_beat = &seen[last_lookup.expect("lookup") + 1];
    assert!(renewed_beat.path.starts_with("/v1/heartbeat/"));
    assert!(
        renewed_beat.at - seen[last_lookup.expect("lookup")].at < Duration::from_millis(45),
        "the renewed heartbeat waited"
    );
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let stats = client.send(GetHeartbeatStats).await.expect("mailbox");
    assert_eq!(
        (stats.accepted, stats.failed, stats.tokens_renewed),
        (1, 3, 1)
    );
    assert_eq!(beats(), 4, "accepted: the next heartbeat is 300 s away");
    mock.stop().await;
}

/// Without a renewal (standalone-like set-ups) a token rejection is only retried.
#[actix_rt::test]
async fn token_rejected_heartbeat_without_renewal_only_retries() {
    let mock = Mock::start(Script {
        heartbeat: VecDeque::from([400, 400]),
        ..Script::default()
    });
    let client = IronicClient::new(config_for(&mock))
        .with_error_base(Duration::from_millis(30))
        .with_jitter(FixedJitter::new([0.0]))
        .start();
    client.send(heartbeating(1000.0)).await.expect("mailbox");
    assert!(
        wait_until(
            || mock.seen("/v1/heartbeat/").len() >= 3,
            Duration::from_secs(5)
        )
        .await
    );
    assert!(mock.seen("/v1/lookup").is_empty());
    mock.stop().await;
}

fn fast_inspection() -> InspectionRetry {
    InspectionRetry {
        attempts: 5,
        base: Duration::from_millis(5),
        min: Duration::from_millis(10),
        max: Duration::from_millis(40),
    }
}

#[actix_rt::test]
async fn inspection_retries_5xx_and_409_then_returns_uuid() {
    let mock = Mock::start(Script {
        inspection: VecDeque::from([(503, json!({})), (409, fault("locked"))]),
        ..Script::default()
    });
    let client = IronicClient::new(config_for(&mock))
        .with_inspection_retry(fast_inspection())
        .start();
    let data =
        json!({"inventory": {"interfaces": [{"mac_address": "02:fc:00:00:00:01"}]}, "error": null});
    let uuid = client
        .send(Inspect {
            urls: vec![format!("{}/v1/continue_inspection", mock.url)],
            data: data.clone(),
        })
        .await
        .expect("mailbox")
        .expect("inspection accepted");
    assert_eq!(uuid.as_deref(), Some(NODE));
    let posts = mock.seen("/v1/continue_inspection");
    assert_eq!(posts.len(), 3);
    for post in &posts {
        assert_eq!(post.method, "POST");
        assert_eq!(post.version, None, "no microversion on continue_inspection");
        assert_eq!(post.body, data);
    }
    mock.stop().await;
}

#[actix_rt::test]
async fn inspection_gives_up_on_4xx_at_once_and_after_5_server_errors() {
    let mock = Mock::start(Script {
        inspection: VecDeque::from([
            (400, fault("bad")),
            (500, json!({})),
            (500, json!({})),
            (500, json!({})),
            (500, json!({})),
            (500, json!({})),
        ]),
        ..Script::default()
    });
    let client = IronicClient::new(config_for(&mock))
        .with_inspection_retry(fast_inspection())
        .start();
    let url = format!("{}/v1/continue_inspection", mock.url);
    let err = client
        .send(Inspect {
            urls: vec![url.clone()],
            data: json!({}),
        })
        .await
        .expect("mailbox")
        .expect_err("400 gives up");
    assert_eq!(err.status(), Some(400));
    assert_eq!(mock.seen("/v1/continue_inspection").len(), 1);
    let err = client
        .send(Inspect {
            urls: vec![url],
            data: json!({}),
        })
        .await
        .expect("mailbox")
        .expect_err("5 × 500 gives up");
    assert_eq!(err.status(), Some(500));
    assert_eq!(mock.seen("/v1/continue_inspection").len(), 6);
    mock.stop().await;
}

struct Started {
    agent: ironic_agent::wiring::Agent,
    port: u16,
    _dir: tempfile::TempDir,
    config: AgentConfig,
}

/// The real actors, configured against the mock, with a shrunk start-up timing.
fn agent_for(mock: &Mock, tweak: impl FnOnce(&mut AgentConfig)) -> Started {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::agent::free_port();
    let mut config = config_for(mock);
    config.listen_host = "127.0.0.1".into();
    config.listen_port = port;
    config.advertise_host = Some("127.0.0.1".into());
    config.advertise_port = port;
    config.paths = HostPaths::rooted_at(dir.path());
    std::fs::create_dir_all(dir.path().join("proc/sys/kernel")).expect("mkdir");
    std::fs::write(dir.path().join("proc/sys/kernel/hostname"), "mock-node\n").expect("hostname");
    tweak(&mut config);
    let agent = ironic_agent::wiring::start_actors(&config);
    Started {
        agent,
        port,
        _dir: dir,
        config,
    }
}

fn quick_timing() -> StartupTiming {
    StartupTiming {
        interface_wait: Duration::from_millis(50),
        interface_poll: Duration::from_millis(10),
    }
}

#[actix_rt::test]
async fn startup_with_redacted_token_and_none_held_locks_down_without_serving() {
    let mock = Mock::start(Script {
        lookup_default: Some((200, lookup_body("******"))),
        ..Script::default()
    });
    let started = agent_for(&mock, |_| {});
    let outcome = startup::run(
        &started.config,
        &started.agent.startup_peers(),
        &quick_timing(),
    )
    .await
    .expect("start-up");
    assert!(matches!(outcome, StartupOutcome::Lockdown), "{outcome:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", started.port)).is_err(),
        "nothing listens after a lockdown"
    );
    assert!(mock.seen("/v1/heartbeat/").is_empty());
    mock.stop().await;
}

#[actix_rt::test]
async fn startup_with_redacted_token_keeps_a_configured_one() {
    let mock = Mock::start(Script {
        lookup_default: Some((200, lookup_body("******"))),
        ..Script::default()
    });
    let started = agent_for(&mock, |c| {
        c.agent_token = Some(Secret::new("678123"));
        c.enable_auto_tls = false;
    });
    let outcome = startup::run(
        &started.config,
        &started.agent.startup_peers(),
        &quick_timing(),
    )
    .await
    .expect("start-up");
    assert!(
        matches!(
            outcome,
            StartupOutcome::Serving {
                heartbeating: true,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert!(
        wait_until(
            || !mock.seen("/v1/heartbeat/").is_empty(),
            Duration::from_secs(5)
        )
        .await
    );
    let beat = &mock.seen("/v1/heartbeat/")[0];
    assert_eq!(beat.body["agent_token"], "678123");
    assert_eq!(
        beat.body["callback_url"],
        format!("http://127.0.0.1:{}", started.port)
    );
    assert!(beat.body.get("agent_verify_ca").is_none());
    started.agent.shutdown(Duration::from_secs(1)).await;
    mock.stop().await;
}

#[actix_rt::test]
async fn startup_auto_tls_serves_https_and_heartbeats_the_certificate() {
    let mock = Mock::start(Script::default());
    let started = agent_for(&mock, |_| {});
    let outcome = startup::run(
        &started.config,
        &started.agent.startup_peers(),
        &quick_timing(),
    )
    .await
    .expect("start-up");
    let StartupOutcome::Serving {
        callback_url,
        node_uuid,
        heartbeating,
        ..
    } = outcome
    else {
        panic!("not serving: {outcome:?}");
    };
    assert!(heartbeating);
    assert_eq!(node_uuid.as_deref(), Some(NODE));
    let expected_url = format!("https://127.0.0.1:{}", started.port);
    assert_eq!(callback_url.as_deref(), Some(expected_url.as_str()));

    assert!(
        wait_until(
            || !mock.seen("/v1/heartbeat/").is_empty(),
            Duration::from_secs(5)
        )
        .await
    );
    let beat = mock.seen("/v1/heartbeat/")[0].clone();
    assert_eq!(beat.body["callback_url"], expected_url);
    assert_eq!(beat.body["agent_token"], TOKEN);
    let pem = beat.body["agent_verify_ca"]
        .as_str()
        .expect("agent_verify_ca")
        .to_string();
    let state_dir = &started.config.paths.state_dir;
    assert_eq!(
        std::fs::read_to_string(state_dir.join("agent.crt")).expect("crt"),
        pem
    );
    assert!(state_dir.join("agent.key").exists());

    // The API answers over HTTPS with exactly that certificate, and holds the token.
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let tls = support::agent::tls_client_config(&der.contents, None);
    let port = started.port;
    let (status, commands) = tokio::task::spawn_blocking(move || {
        let client = ureq::AgentBuilder::new().tls_config(tls).build();
        let status = client
            .get(&format!("https://127.0.0.1:{port}/v1/status"))
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| panic!("https status: {e}"));
        let commands = client
            .get(&format!(
                "https://127.0.0.1:{port}/v1/commands/?agent_token={TOKEN}"
            ))
            .call()
            .map(|r| r.status())
            .unwrap_or_else(|e| panic!("https commands: {e}"));
        (status, commands)
    })
    .await
    .expect("blocking client");
    assert_eq!(status, 200);
    assert_eq!(commands, 200, "the lookup token was installed on the API");
    started.agent.shutdown(Duration::from_secs(1)).await;
    mock.stop().await;
}

#[actix_rt::test]
async fn startup_fails_when_lookup_times_out() {
    let mock = Mock::start(Script {
        lookup_default: Some((404, fault("Node could not be found"))),
        ..Script::default()
    });
    let started = agent_for(&mock, |c| c.lookup_timeout = 1);
    let begun = Instant::now();
    let err = startup::run(
        &started.config,
        &started.agent.startup_peers(),
        &quick_timing(),
    )
    .await
    .expect_err("lookup cannot succeed");
    assert!(matches!(err, StartupError::Lookup { .. }), "{err}");
    assert!(
        err.to_string().contains("Could not look up node info"),
        "{err}"
    );
    assert!(err.to_string().contains("Node could not be found"), "{err}");
    assert!(begun.elapsed() < Duration::from_secs(5));
    assert!(mock.seen("/v1/lookup").len() >= 2, "retried");
    mock.stop().await;
}

#[actix_rt::test]
async fn unreachable_ironic_keeps_heartbeating_with_backoff_until_stopped() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let config = AgentConfig {
        api_url: vec![closed],
        ..AgentConfig::default()
    };
    let client = IronicClient::new(config)
        .with_error_base(Duration::from_millis(40))
        .with_jitter(FixedJitter::new([0.0]))
        .start();
    client.send(heartbeating(300.0)).await.expect("mailbox");
    actix_rt::time::sleep(Duration::from_millis(400)).await;
    let stats = client.send(GetHeartbeatStats).await.expect("mailbox");
    assert!(stats.running);
    assert_eq!(stats.accepted, 0);
    assert!(stats.failed >= 3, "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("cannot reach"),
        "{stats:?}"
    );
    client
        .send(ironic_agent_actors::ironic::StopHeartbeating)
        .await
        .expect("mailbox");
    let stopped = client.send(GetHeartbeatStats).await.expect("mailbox");
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let later = client.send(GetHeartbeatStats).await.expect("mailbox");
    assert!(!later.running);
    assert!(later.sent <= stopped.sent + 1, "{stopped:?} → {later:?}");
    // A forced heartbeat while stopped sends nothing.
    client.send(ForceHeartbeat).await.expect("mailbox");
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    let after = client.send(GetHeartbeatStats).await.expect("mailbox");
    assert_eq!(after.sent, later.sent);
}

#[actix_rt::test]
async fn https_ironic_needs_cafile_or_insecure() {
    let (mock, pem) = Mock::start_tls(Script::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let cafile = dir.path().join("ca.pem");
    std::fs::write(&cafile, &pem).expect("write ca");
    let base = AgentConfig {
        api_url: vec![mock.url.clone()],
        ..AgentConfig::default()
    };

    let unverified = IronicHttp::new(ClientSettings::from_config(&base)).expect("client");
    let err = unverified
        .lookup_once(&macs(), None)
        .await
        .expect_err("an unknown CA is refused");
    assert!(matches!(err, IronicError::Connection { .. }), "{err}");

    let with_ca = AgentConfig {
        cafile: Some(cafile),
        ..base.clone()
    };
    let verified = IronicHttp::new(ClientSettings::from_config(&with_ca)).expect("client");
    let found = verified.lookup_once(&macs(), None).await.expect("cafile");
    assert_eq!(found.node_uuid, NODE);

    let insecure = AgentConfig {
        insecure: true,
        ..base
    };
    let insecure = IronicHttp::new(ClientSettings::from_config(&insecure)).expect("client");
    insecure.lookup_once(&macs(), None).await.expect("insecure");
    mock.stop().await;
}

#[test]
fn unreadable_cafile_is_a_config_error() {
    let config = AgentConfig {
        api_url: vec!["https://127.0.0.1:1".into()],
        cafile: Some("/does/not/exist.pem".into()),
        ..AgentConfig::default()
    };
    let err = actix_rt::System::new()
        .block_on(async { IronicHttp::new(ClientSettings::from_config(&config)).map(|_| ()) })
        .expect_err("missing CA file");
    assert!(matches!(err, IronicError::Config(_)), "{err}");
    assert!(err.to_string().contains("/does/not/exist.pem"), "{err}");
}
