//! The installer runner actor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use tokio::sync::watch;

use crate::config::AgentConfig;
use crate::errors::AgentError;
use crate::host::{CommandRunner, ProcessRunner};
use crate::installer::coreos::{CoreosInstallOutcome, CoreosInstallRequest, CoreosInstaller};

/// Runs long host processes (installers, image writes) one at a time.
#[derive(Debug)]
pub struct InstallerRunner {
    config: AgentConfig,
    runner: Arc<dyn CommandRunner>,
    coreos: CoreosInstaller,
    /// What is running now (`None` when idle); waiters subscribe to it.
    running: Arc<watch::Sender<Option<String>>>,
    /// Bumped to cancel the running installer.
    cancel: Arc<watch::Sender<u64>>,
}

impl InstallerRunner {
    /// Creates the runner with the host command runner to use.
    pub fn new(config: AgentConfig, runner: Arc<dyn CommandRunner>) -> Self {
        let coreos = CoreosInstaller::new(config.clone(), runner.clone());
        Self {
            config,
            runner,
            coreos,
            running: Arc::new(watch::channel(None).0),
            cancel: Arc::new(watch::channel(0).0),
        }
    }

    /// Uses `process` to build the streamed installer processes (PATH additions).
    pub fn with_process_runner(mut self, process: ProcessRunner) -> Self {
        self.coreos.process = process;
        self
    }

    /// Extra environment for coreos-installer (tests: `SHIM_PARTX_DEVICES`).
    pub fn with_installer_env(mut self, env: BTreeMap<String, String>) -> Self {
        self.coreos.installer_env = env;
        self
    }

    /// The pause between UEFI boot-entry attempts (5 s by default).
    pub fn with_uefi_retry_delay(mut self, delay: Duration) -> Self {
        self.coreos.uefi_retry_delay = delay;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The host command runner.
    pub fn runner(&self) -> &Arc<dyn CommandRunner> {
        &self.runner
    }
}

impl Actor for InstallerRunner {
    type Context = Context<Self>;
}

crate::answer_probe!(InstallerRunner, "installer-runner");

/// Clears the "running" marker when the install future ends or is dropped.
struct RunningGuard(Arc<watch::Sender<Option<String>>>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.send_replace(None);
    }
}

/// Request: run `install_coreos` (coreos-installer onto the request's device).
///
/// Fails with `AgentIsBusy` while another install runs. Progress goes to the request's
/// `progress` channel; [`CancelInstaller`] kills the running installer.
#[derive(Debug)]
pub struct InstallCoreos(pub CoreosInstallRequest);

impl Message for InstallCoreos {
    type Result = Result<CoreosInstallOutcome, AgentError>;
}

impl Handler<InstallCoreos> for InstallerRunner {
    type Result = ResponseFuture<Result<CoreosInstallOutcome, AgentError>>;

    fn handle(&mut self, msg: InstallCoreos, _ctx: &mut Self::Context) -> Self::Result {
        let what = format!("install_coreos on {}", msg.0.device.display());
        if let Some(busy) = self.running.borrow().clone() {
            return Box::pin(async move { Err(AgentError::busy(&busy)) });
        }
        self.running.send_replace(Some(what.clone()));
        let guard = RunningGuard(self.running.clone());
        let installer = self.coreos.clone();
        let cancel = self.cancel.subscribe();
        // The installer's progress goes to this runner's progress slot too, where the
        // coordinator reads it into the RUNNING command's `command_progress`.
        let mut request = msg.0;
        let mut updates = match &request.progress {
            Some(sender) => sender.subscribe(),
            None => request.watch_progress(),
        };
        let sink = super::progress::for_instance(super::steps::instance_key(self));
        sink.start(what, None);
        let forward_sink = sink.clone();
        let forward = tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                let current = updates.borrow_and_update().clone();
                forward_sink.replace(current);
            }
        });
        Box::pin(async move {
            let _guard = guard;
            let outcome = installer.install(request, Some(cancel)).await;
            forward.abort();
            sink.finish();
            outcome
        })
    }
}

/// Whether the installer runner became idle in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallerIdle {
    /// Nothing is running (any more).
    Idle,
    /// Still running after the timeout: what it is.
    StillRunning(String),
}

/// Request: wait (at most `timeout`) until no installer runs, e.g. on SIGTERM.
#[derive(Debug, Clone, Copy)]
pub struct WaitForInstaller {
    /// The longest wait.
    pub timeout: Duration,
}

impl Message for WaitForInstaller {
    type Result = InstallerIdle;
}

impl Handler<WaitForInstaller> for InstallerRunner {
    type Result = ResponseFuture<InstallerIdle>;

    fn handle(&mut self, msg: WaitForInstaller, _ctx: &mut Self::Context) -> Self::Result {
        let mut running = self.running.subscribe();
        Box::pin(async move {
            let idle = async {
                // An error means the actor is gone, and with it every installer.
                let _ = running.wait_for(|what| what.is_none()).await;
            };
            if tokio::time::timeout(msg.timeout, idle).await.is_ok() {
                return InstallerIdle::Idle;
            }
            let what = running.borrow().clone();
            what.map_or(InstallerIdle::Idle, InstallerIdle::StillRunning)
        })
    }
}

/// Request: kill the running installer (its step then fails as cancelled).
/// Answers whether something was running.
#[derive(Debug, Clone, Copy)]
pub struct CancelInstaller;

impl Message for CancelInstaller {
    type Result = bool;
}

impl Handler<CancelInstaller> for InstallerRunner {
    type Result = bool;

    fn handle(&mut self, _msg: CancelInstaller, _ctx: &mut Self::Context) -> bool {
        let running = self.running.borrow().is_some();
        if running {
            tracing::warn!("Cancelling the running installer");
            self.cancel.send_modify(|generation| *generation += 1);
        }
        running
    }
}
