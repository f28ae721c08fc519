//! The start-up hostname fix of the CoreOS hardware manager.
//!
//! The host's hostname is read with `chroot <host root> hostnamectl hostname` (falling
//! back to `<host root>/etc/hostname`). When it is `localhost` or `localhost.localdomain`
//! and `IPA_DEFAULT_HOSTNAME` is set, the host gets that name
//! (`hostnamectl set-hostname --static --transient`) and the container's `/etc/hostname`
//! (below `paths.etc_root`) is written. Any failure is an error: start-up stops.

use std::path::PathBuf;

use crate::config::AgentConfig;
use crate::errors::AgentError;
use crate::host::{CommandRunner, CommandSpec};

/// Hostnames that count as "not set".
pub const PLACEHOLDER_HOSTNAMES: [&str; 2] = ["localhost", "localhost.localdomain"];

fn hostname_error(details: impl Into<String>) -> AgentError {
    AgentError::execution(format!("CoreOS hostname fix failed: {}", details.into()))
}

/// The container's `/etc/hostname` (below `paths.etc_root`).
pub fn container_hostname_path(config: &AgentConfig) -> PathBuf {
    config.paths.etc_root.join("etc/hostname")
}

/// Reads the host's hostname: `hostnamectl hostname` in the host root, else its
/// `/etc/hostname`.
pub async fn current_hostname(
    config: &AgentConfig,
    runner: &dyn CommandRunner,
) -> Result<String, AgentError> {
    let root = &config.paths.host_root;
    let spec = CommandSpec::new("hostnamectl", ["hostname"]).in_chroot(root);
    let shown = spec.to_string();
    let failure = match runner.run(spec).await {
        Ok(out) if out.success() && !out.stdout.trim().is_empty() => {
            return Ok(out.stdout.trim().to_string())
        }
        Ok(out) if out.success() => format!("{shown} printed nothing"),
        Ok(out) => format!(
            "{shown} failed with {}: {}",
            out.describe_exit(),
            out.stderr.trim()
        ),
        Err(err) => format!("{shown} could not run: {err}"),
    };
    tracing::warn!("{failure}; falling back to /etc/hostname");
    let path = root.join("etc/hostname");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(hostname_error(format!(
            "{failure}, and {} is empty",
            path.display()
        ))),
        Err(err) => Err(hostname_error(format!(
            "{failure}, and {} cannot be read: {err}",
            path.display()
        ))),
    }
}

/// Fixes a placeholder hostname; returns the host's hostname afterwards.
///
/// `Ok(Some(name))` is the current (possibly new) hostname, which the install writes
/// into the Ignition; `Ok(None)` is never returned today but leaves room for "unknown".
pub async fn fix_hostname(
    config: &AgentConfig,
    runner: &dyn CommandRunner,
) -> Result<Option<String>, AgentError> {
    let current = current_hostname(config, runner).await?;
    if !PLACEHOLDER_HOSTNAMES.contains(&current.as_str()) {
        tracing::info!("Host hostname is {current}");
        return Ok(Some(current));
    }
    let Some(new) = config
        .coreos
        .default_hostname
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
    else {
        tracing::info!("Host hostname is {current} and IPA_DEFAULT_HOSTNAME is not set");
        return Ok(Some(current));
    };
    tracing::info!("Host hostname is {current}, setting it to {new}");
    let spec = CommandSpec::new(
        "hostnamectl",
        ["set-hostname", "--static", "--transient", new],
    )
    .in_chroot(&config.paths.host_root);
    let shown = spec.to_string();
    match runner.run(spec).await {
        Ok(out) if out.success() => {}
        Ok(out) => {
            return Err(hostname_error(format!(
                "{shown} failed with {}: {}",
                out.describe_exit(),
                out.stderr.trim()
            )))
        }
        Err(err) => return Err(hostname_error(format!("{shown} could not run: {err}"))),
    }
    let path = container_hostname_path(config);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|err| hostname_error(format!("creating {}: {err}", dir.display())))?;
    }
    std::fs::write(&path, format!("{new}\n"))
        .map_err(|err| hostname_error(format!("writing {}: {err}", path.display())))?;
    Ok(Some(new.to_string()))
}
