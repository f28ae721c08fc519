//! The installer's streamed output reaches the log as it arrives, inside the
//! `install_coreos{device}` / `coreos_installer{attempt}` spans, and a failing installer is
//! tried three times. Its own test binary: tracing's per-callsite interest cache makes a
//! thread-local subscriber unreliable while other tests log on other threads.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use ironic_agent_actors::config::AgentConfig;
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::installer::{CoreosInstallRequest, CoreosInstaller};
use serde_json::json;

const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/coreos");

fn root_or_skip(test: &str) -> bool {
    let uid = Command::new("id").arg("-u").output().expect("id");
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{test}: CI must run as root"
    );
    eprintln!("SKIP {test}: needs root");
    false
}

fn write_script(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::write(path, body).expect("script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A `Write` sink shared with the test, for capturing tracing output.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("sink").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn installer_lines_are_logged_in_step_spans_and_failures_retry_three_times() {
    if !root_or_skip("installer_logging") {
        return;
    }
    let sink = LogSink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("host-root");
    let built = Command::new("bash")
        .arg(format!("{HARNESS}/host-root.sh"))
        .arg(&root)
        .status()
        .expect("host-root.sh");
    assert!(built.success());
    // A stand-in that fails like a download error: progress, then the error lines.
    write_script(
        &root.join("usr/bin/coreos-installer"),
        "#!/bin/sh\n# test stand-in\necho \"$*\" >> /tmp/installer.calls\n\
         echo 'Downloading image from http://example/fcos.raw.xz' >&2\n\
         printf 'Read disk 1.0 MiB/2.0 MiB (50%%)\\r' >&2\n\
         echo 'Error: decoding and writing image' >&2\necho '' >&2\n\
         echo 'Error: install failed' >&2\nexit 1\n",
    );
    let device = dir.path().join("disk");
    std::fs::write(&device, b"").expect("device");
    let mut config = AgentConfig::default();
    config.paths.host_root = root.clone();
    config.block_device_allowlist = vec![device.display().to_string()];
    let installer = CoreosInstaller::new(config, Arc::new(ProcessRunner::default()));
    let node = json!({"instance_info": {"image_source": "http://example/fcos.raw.xz"}});
    let err = installer
        .install(
            CoreosInstallRequest::new(&device, node, Some("h".into())),
            None,
        )
        .await
        .expect_err("fails");
    assert_eq!(
        err.details,
        "coreos-installer failed with code 1: Error: install failed"
    );
    let calls: Vec<String> = std::fs::read_to_string(root.join("tmp/installer.calls"))
        .expect("calls")
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls[0].starts_with("install --preserve-on-error --ignition-file /tmp/ironic.ign --image-url http://example/fcos.raw.xz --insecure"));
    assert!(calls[0].ends_with(&device.display().to_string()));

    let logs = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf-8");
    let device_field = format!("install_coreos{{device={}}}", device.display());
    for attempt in 1..=3 {
        let line = logs
            .lines()
            .find(|l| {
                l.contains(&format!("coreos_installer{{attempt={attempt}}}"))
                    && l.contains("coreos-installer: Read disk 1.0 MiB/2.0 MiB (50%)")
            })
            .unwrap_or_else(|| panic!("attempt {attempt} not logged:\n{logs}"));
        assert!(line.contains(&device_field), "{line}");
    }
    assert!(
        logs.contains("Executing CoreOS installer: chroot"),
        "{logs}"
    );
}
