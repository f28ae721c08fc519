//! `image_info.proxies` and `no_proxy` against a real forward proxy (tinyproxy, from
//! apt): http:// images go through it as absolute-form GETs, https:// images through a
//! CONNECT tunnel (also to an https:// proxy: tinyproxy behind a socat TLS front), `no_proxy`
//! hosts are fetched directly, and a proxy that refuses, is untrusted or is gone fails the
//! step clearly without falling back to a direct connection.
//!
//! Images are written to loop devices from `losetup -f` (allow-listed, detached on drop).

mod steps_support;

use std::path::Path;
use std::sync::{Arc, Mutex};

use actix::{Actor, Addr};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use ironic_agent_actors::config::{AgentConfig, HostPaths};
use ironic_agent_actors::hardware::StepResult;
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::installer::InstallerRunner;
use serde_json::{json, Value};
use steps_support::*;

const MIB: usize = 1024 * 1024;

/// What the image server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    via: Option<String>,
}

type Files = Arc<Vec<(String, Vec<u8>)>>;

/// The origin image server (actix-web, plain or TLS on 127.0.0.1:0); records requests.
struct ImageServer {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: actix_web::dev::ServerHandle,
}

async fn serve_file(
    req: HttpRequest,
    files: web::Data<Files>,
    seen: web::Data<Arc<Mutex<Vec<Seen>>>>,
) -> HttpResponse {
    let path = req.path().to_string();
    let via = req
        .headers()
        .get("via")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Ok(mut seen) = seen.lock() {
        seen.push(Seen {
            path: path.clone(),
            via,
        });
    }
    match files.iter().find(|(name, _)| *name == path) {
        Some((_, body)) => HttpResponse::Ok().body(body.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

impl ImageServer {
    fn start(files: Vec<(&str, Vec<u8>)>, tls: Option<rustls::ServerConfig>) -> Self {
        let files: Files = Arc::new(
            files
                .into_iter()
                .map(|(name, body)| (name.to_string(), body))
                .collect(),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (files_data, seen_data) = (web::Data::new(files), web::Data::new(seen.clone()));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(files_data.clone())
                .app_data(seen_data.clone())
                .default_service(web::to(serve_file))
        })
        .workers(1)
        .disable_signals();
        let (server, scheme) = match tls {
            Some(tls) => (server.bind_rustls_0_23(("127.0.0.1", 0), tls), "https"),
            None => (server.bind(("127.0.0.1", 0)), "http"),
        };
        let server = server.expect("bind the image server");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base: format!("{scheme}://127.0.0.1:{port}"),
            seen,
            handle,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A self-signed certificate for 127.0.0.1: the server config, the certificate PEM (for
/// the cafile) and the key PEM.
fn tls_for_loopback() -> (rustls::ServerConfig, String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("self-signed certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server config");
    (config, cert.cert.pem(), cert.key_pair.serialize_pem())
}

/// A TLS front for a plain proxy (socat OPENSSL-LISTEN → tinyproxy): an https:// proxy.
struct TlsFront {
    child: std::process::Child,
    port: u16,
}

impl TlsFront {
    fn start(dir: &Path, backend_port: u16, cert_pem: &str, key_pem: &str) -> Self {
        let pem = dir.join("proxy-front.pem");
        std::fs::write(&pem, format!("{cert_pem}{key_pem}")).expect("front certificate");
        let port = free_port();
        let child = std::process::Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={}",
                pem.display()
            ))
            .arg(format!("TCP:127.0.0.1:{backend_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat");
        let front = Self { child, port };
        wait_for_port(port, "socat");
        front
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Case {
    dir: tempfile::TempDir,
    disk: LoopDev,
    addr: Addr<InstallerRunner>,
    image: Vec<u8>,
}

/// A loop disk, a 4 MiB image and an installer allowed onto that disk only.
fn case(seed: u64, tweak: impl FnOnce(&mut AgentConfig, &Path)) -> Case {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = LoopDev::new(dir.path(), "disk.img", 16 * MIB as u64);
    let mut config = AgentConfig {
        block_device_allowlist: vec![disk.dev()],
        image_download_connection_retries: 1,
        image_download_connection_retry_interval: 0,
        image_download_connection_timeout: 5,
        paths: HostPaths::rooted_at(dir.path()),
        ..AgentConfig::default()
    };
    tweak(&mut config, dir.path());
    let addr = InstallerRunner::new(config, Arc::new(ProcessRunner::default())).start();
    Case {
        dir,
        disk,
        addr,
        image: pseudo_random(4 * MIB, seed),
    }
}

impl Case {
    async fn write_image(&self, url: &str, extra: Value) -> StepResult {
        let mut info = json!({"id": format!("proxy-{}", self.disk.dev().replace('/', "")),
            "urls": [url], "os_hash_algo": "sha256", "os_hash_value": sha256(&self.image),
            "disk_format": "raw", "container_format": "bare", "stream_raw_images": true,
            "image_type": "whole-disk"});
        if let (Some(info), Some(extra)) = (info.as_object_mut(), extra.as_object()) {
            info.extend(extra.clone());
        }
        run_step_on(
            &self.addr,
            "write_image",
            json!({"image_info": info, "configdrive": null}),
            json!({}),
            Some(&self.disk.dev()),
        )
        .await
    }

    fn disk_holds_the_image(&self) -> bool {
        self.disk.sha256(Some(self.image.len() as u64)) == sha256(&self.image)
    }
}

#[actix_rt::test]
async fn http_image_and_checksum_file_go_through_tinyproxy_as_absolute_form_gets() {
    if !loop_devices_usable() || !tinyproxy_usable() {
        return;
    }
    let case = case(21, |_, _| {});
    let proxy = Tinyproxy::start(case.dir.path(), None);
    let sums = format!("{}  disk.raw\n", sha256(&case.image));
    let server = ImageServer::start(
        vec![
            ("/disk.raw", case.image.clone()),
            ("/disk.raw.sha256", sums.into_bytes()),
        ],
        None,
    );
    let image_url = format!("{}/disk.raw", server.base);
    let sums_url = format!("{}/disk.raw.sha256", server.base);
    let result = case
        .write_image(
            &image_url,
            json!({"os_hash_algo": null, "os_hash_value": null, "checksum": sums_url,
                   "proxies": {"http": proxy.url("")}, "no_proxy": "example.invalid"}),
        )
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(case.disk_holds_the_image());

    let requests = proxy.requests();
    for url in [&sums_url, &image_url] {
        let line = format!("GET {url} HTTP/1.1");
        assert!(
            requests.contains(&line),
            "tinyproxy did not forward {line}: {requests:?}"
        );
    }
    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/disk.raw.sha256", "/disk.raw"], "{seen:?}");
    for request in &seen {
        let via = request.via.as_deref().unwrap_or("");
        assert!(
            via.contains("tinyproxy"),
            "{request:?} did not come through the proxy"
        );
    }
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn https_image_is_tunnelled_with_connect_through_an_authenticating_proxy() {
    if !loop_devices_usable() || !tinyproxy_usable() {
        return;
    }
    let (tls, pem, _) = tls_for_loopback();
    let case = case(22, |config, dir| {
        let cafile = dir.join("image-ca.pem");
        std::fs::write(&cafile, &pem).expect("write the CA");
        config.cafile = Some(cafile);
    });
    let proxy = Tinyproxy::start(case.dir.path(), Some(("agent", "s3cret")));
    let server = ImageServer::start(vec![("/disk.raw", case.image.clone())], Some(tls));
    let image_url = format!("{}/disk.raw", server.base);
    let result = case
        .write_image(
            &image_url,
            json!({"proxies": {"https": proxy.url("agent:s3cret@"),
                               "http": "http://127.0.0.1:9"}}),
        )
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(case.disk_holds_the_image());

    let authority = server.base.trim_start_matches("https://");
    let requests = proxy.requests();
    assert_eq!(
        requests,
        vec![format!("CONNECT {authority} HTTP/1.1")],
        "one tunnel and nothing else through the proxy"
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].via.is_none(), "a tunnel adds no Via: {seen:?}");
    server.handle.stop(false).await;
}

/// An https image server, and tinyproxy behind a socat TLS front (an https:// proxy);
/// the cafile trusts the image server, and the proxy only when `trust_proxy`.
struct HttpsProxyCase {
    case: Case,
    proxy: Tinyproxy,
    _front: TlsFront,
    server: ImageServer,
    proxies: Value,
}

fn https_proxy_case(seed: u64, trust_proxy: bool) -> HttpsProxyCase {
    let (origin_tls, origin_pem, _) = tls_for_loopback();
    let (_, proxy_pem, proxy_key) = tls_for_loopback();
    let case = case(seed, |config, dir| {
        let cafile = dir.join("image-ca.pem");
        let trusted = if trust_proxy {
            format!("{origin_pem}{proxy_pem}")
        } else {
            origin_pem.clone()
        };
        std::fs::write(&cafile, trusted).expect("write the CA");
        config.cafile = Some(cafile);
    });
    let proxy = Tinyproxy::start(case.dir.path(), None);
    let front = TlsFront::start(case.dir.path(), proxy.port, &proxy_pem, &proxy_key);
    let server = ImageServer::start(vec![("/disk.raw", case.image.clone())], Some(origin_tls));
    let proxies = json!({"proxies": {"https": format!("https://127.0.0.1:{}", front.port)}});
    HttpsProxyCase {
        case,
        proxy,
        _front: front,
        server,
        proxies,
    }
}

#[actix_rt::test]
async fn https_image_through_an_https_proxy_is_tls_inside_tls() {
    if !loop_devices_usable() || !tinyproxy_usable() || !tool_usable("socat", "-V") {
        return;
    }
    let t = https_proxy_case(27, true);
    let image_url = format!("{}/disk.raw", t.server.base);
    let result = t.case.write_image(&image_url, t.proxies.clone()).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(t.case.disk_holds_the_image());
    let authority = t.server.base.trim_start_matches("https://");
    assert_eq!(
        t.proxy.requests(),
        vec![format!("CONNECT {authority} HTTP/1.1")],
        "the tunnel went through the TLS front to tinyproxy"
    );
    t.server.handle.stop(false).await;
}

#[actix_rt::test]
async fn https_proxy_with_an_untrusted_certificate_is_refused() {
    if !loop_devices_usable() || !tinyproxy_usable() || !tool_usable("socat", "-V") {
        return;
    }
    let t = https_proxy_case(28, false);
    let image_url = format!("{}/disk.raw", t.server.base);
    let err = agent_err(t.case.write_image(&image_url, t.proxies.clone()).await);
    assert_eq!(err.error_type, "ImageDownloadError", "{err:?}");
    assert!(
        err.details.to_lowercase().contains("certificate"),
        "{}",
        err.details
    );
    assert!(t.proxy.requests().is_empty(), "{:?}", t.proxy.requests());
    assert!(t.server.seen().is_empty(), "{:?}", t.server.seen());
    t.server.handle.stop(false).await;
}

#[actix_rt::test]
async fn no_proxy_hosts_are_fetched_directly() {
    if !loop_devices_usable() || !tinyproxy_usable() {
        return;
    }
    let case = case(23, |_, _| {});
    let proxy = Tinyproxy::start(case.dir.path(), None);
    let server = ImageServer::start(vec![("/disk.raw", case.image.clone())], None);
    let result = case
        .write_image(
            &format!("{}/disk.raw", server.base),
            json!({"proxies": {"http": proxy.url("")},
                   "no_proxy": "images.example.com, 127.0.0.0/8"}),
        )
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(case.disk_holds_the_image());
    assert_eq!(proxy.requests(), Vec::<String>::new(), "the proxy was used");
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].via.is_none(), "{seen:?}");
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn proxy_refusing_the_credentials_is_fatal_at_once_and_the_image_is_never_fetched() {
    if !loop_devices_usable() || !tinyproxy_usable() {
        return;
    }
    let case = case(24, |_, _| {});
    let proxy = Tinyproxy::start(case.dir.path(), Some(("agent", "s3cret")));
    let server = ImageServer::start(vec![("/disk.raw", case.image.clone())], None);
    let image_url = format!("{}/disk.raw", server.base);
    let err = agent_err(
        case.write_image(
            &image_url,
            json!({"proxies": {"http": proxy.url("agent:wrong@")}}),
        )
        .await,
    );
    assert_eq!(err.error_type, "ImageDownloadFatalError", "{err:?}");
    // tinyproxy answers wrong credentials with 401 (407 when there are none).
    assert!(
        err.details.contains("status code 401") || err.details.contains("status code 407"),
        "{}",
        err.details
    );
    assert!(
        !err.details.contains("wrong"),
        "the proxy password leaked: {}",
        err.details
    );
    assert_eq!(proxy.requests().len(), 1, "a 4xx is not retried");
    assert!(server.seen().is_empty(), "{:?}", server.seen());
    assert_eq!(case.disk.sha256(Some(MIB as u64)), zeros(MIB));
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn unreachable_proxy_fails_after_the_retries_without_going_direct() {
    if !loop_devices_usable() {
        return;
    }
    let case = case(25, |_, _| {});
    let server = ImageServer::start(vec![("/disk.raw", case.image.clone())], None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let err = agent_err(
        case.write_image(
            &format!("{}/disk.raw", server.base),
            json!({"proxies": {"http": dead}}),
        )
        .await,
    );
    assert_eq!(err.error_type, "ImageDownloadError", "{err:?}");
    assert!(
        err.details.to_lowercase().contains("connect"),
        "{}",
        err.details
    );
    assert!(server.seen().is_empty(), "{:?}", server.seen());
    assert_eq!(case.disk.sha256(Some(MIB as u64)), zeros(MIB));
    server.handle.stop(false).await;
}

#[actix_rt::test]
async fn malformed_proxies_are_a_400_before_the_disk_is_touched() {
    if !loop_devices_usable() {
        return;
    }
    let case = case(26, |_, _| {});
    for extra in [
        json!({"proxies": "http://proxy:3128"}),
        json!({"proxies": {"https": "socks5://proxy:1080"}}),
        json!({"proxies": {"http": "http://proxy:3128"}, "no_proxy": 5}),
    ] {
        let err = agent_err(
            case.write_image("http://127.0.0.1:9/disk.raw", extra.clone())
                .await,
        );
        assert_eq!(err.code, 400, "{extra}: {err:?}");
        assert_eq!(
            err.error_type, "InvalidCommandParamsError",
            "{extra}: {err:?}"
        );
    }
    assert_eq!(case.disk.sha256(Some(MIB as u64)), zeros(MIB));
}
