//! Rebooting and powering off the host (`standby.run_image`, `standby.power_off`).
//!
//! The coordinator reaches the host's power through the injectable
//! [`PowerControl`] trait. [`HostCommandPower`] runs `systemctl reboot|poweroff`
//! inside `chroot <host_root>`, then the container's own `reboot|poweroff`,
//! and falls back to the kernel's sysrq trigger as IPA does. A later
//! implementation talks to the host's logind/systemd over D-Bus.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::errors::AgentError;
use crate::host::{BoxFuture, CommandRunner, CommandSpec};

/// What to do with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Reboot (`standby.run_image`).
    Reboot,
    /// Power off (`standby.power_off`).
    PowerOff,
}

impl PowerAction {
    /// The systemctl verb / program name: `reboot` or `poweroff`.
    pub fn verb(self) -> &'static str {
        match self {
            PowerAction::Reboot => "reboot",
            PowerAction::PowerOff => "poweroff",
        }
    }

    /// The sysrq key of the last-resort fallback: `b` (reboot) or `o` (off).
    pub fn sysrq_key(self) -> &'static str {
        match self {
            PowerAction::Reboot => "b",
            PowerAction::PowerOff => "o",
        }
    }
}

/// Performs power actions on the host. Tests inject a recording stand-in.
pub trait PowerControl: Send + Sync + fmt::Debug {
    /// Starts the action; `Ok` once it was handed to the host.
    fn execute(&self, action: PowerAction) -> BoxFuture<'static, Result<(), AgentError>>;
}

/// Power control through host commands, with IPA's sysrq fallback.
#[derive(Debug, Clone)]
pub struct HostCommandPower {
    runner: Arc<dyn CommandRunner>,
    host_root: PathBuf,
    proc_root: PathBuf,
}

impl HostCommandPower {
    /// Uses `runner` for the commands; `host_root` for chroot, `proc_root` for sysrq.
    pub fn new(runner: Arc<dyn CommandRunner>, host_root: PathBuf, proc_root: PathBuf) -> Self {
        Self {
            runner,
            host_root,
            proc_root,
        }
    }
}

impl PowerControl for HostCommandPower {
    fn execute(&self, action: PowerAction) -> BoxFuture<'static, Result<(), AgentError>> {
        let runner = self.runner.clone();
        let host_root = self.host_root.clone();
        let proc_root = self.proc_root.clone();
        Box::pin(async move {
            let attempts = [
                CommandSpec::new("systemctl", [action.verb()]).in_chroot(&host_root),
                CommandSpec::new(action.verb(), Vec::<String>::new()),
            ];
            let mut last_error = String::new();
            for spec in attempts {
                match runner.run(spec.clone()).await {
                    Ok(output)
                        if output.success() && !output.stderr.contains("ignoring request") =>
                    {
                        tracing::info!(command = %spec, "power action handed to the host");
                        return Ok(());
                    }
                    Ok(output) if output.success() => {
                        last_error =
                            format!("{spec} ignored the request: {}", output.stderr.trim());
                    }
                    Ok(output) => {
                        last_error = format!(
                            "{spec} exited with {}: {}",
                            output.describe_exit(),
                            output.stderr.trim()
                        );
                    }
                    Err(err) => last_error = format!("{spec}: {err}"),
                }
                tracing::warn!(error = %last_error, "power command failed, falling back");
            }
            // Last resort, as IPA: enable sysrq and trigger it.
            let _ = tokio::fs::write(proc_root.join("sys/kernel/sysrq"), b"1").await;
            tokio::fs::write(
                proc_root.join("sysrq-trigger"),
                action.sysrq_key().as_bytes(),
            )
            .await
            .map_err(|err| {
                AgentError::new(
                    "SystemRebootError",
                    500,
                    "Error rebooting system",
                    format!(
                        "{} failed ({last_error}) and the sysrq fallback failed too: {err}",
                        action.verb()
                    ),
                )
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::host::CommandOutput;

    #[derive(Debug, Default)]
    struct FailingRunner {
        calls: Mutex<Vec<Vec<String>>>,
        /// Exit 0 but print systemd's "ignoring request" (inhibited).
        ignored: bool,
    }

    impl CommandRunner for FailingRunner {
        fn run(&self, spec: CommandSpec) -> BoxFuture<'static, std::io::Result<CommandOutput>> {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(spec.argv());
            }
            let ignored = self.ignored;
            Box::pin(async move {
                Ok(CommandOutput {
                    code: Some(if ignored { 0 } else { 1 }),
                    stderr: if ignored {
                        "Operation inhibited, ignoring request".to_string()
                    } else {
                        String::new()
                    },
                    ..CommandOutput::default()
                })
            })
        }
    }

    #[tokio::test]
    async fn falls_back_to_sysrq_when_commands_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let proc_root = dir.path().join("proc");
        std::fs::create_dir_all(proc_root.join("sys/kernel")).expect("mkdir");
        let runner = Arc::new(FailingRunner::default());
        let power = HostCommandPower::new(runner.clone(), "/mnt/coreos".into(), proc_root.clone());
        power
            .execute(PowerAction::PowerOff)
            .await
            .expect("fallback works");
        let calls = runner.calls.lock().expect("lock").clone();
        assert_eq!(
            calls,
            vec![
                vec!["chroot", "/mnt/coreos", "systemctl", "poweroff"],
                vec!["poweroff"]
            ]
        );
        let written = std::fs::read_to_string(proc_root.join("sysrq-trigger")).expect("read");
        assert_eq!(written, "o");
    }

    #[tokio::test]
    async fn an_ignored_request_falls_back_too_and_a_failed_fallback_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let runner = Arc::new(FailingRunner {
            ignored: true,
            ..FailingRunner::default()
        });
        let power = HostCommandPower::new(runner, "/mnt/coreos".into(), dir.path().into());
        power
            .execute(PowerAction::Reboot)
            .await
            .expect("fallback works");
        let written = std::fs::read_to_string(dir.path().join("sysrq-trigger")).expect("read");
        assert_eq!(written, "b");

        let missing = dir.path().join("no/such/proc");
        let power = HostCommandPower::new(Arc::new(FailingRunner::default()), "/x".into(), missing);
        let err = power
            .execute(PowerAction::Reboot)
            .await
            .expect_err("nothing worked");
        assert_eq!(err.error_type, "SystemRebootError");
        assert!(err.details.contains("sysrq fallback failed"));
    }
}
