//! The one place that creates the actors and connects them.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use anyhow::Context as _;
use ironic_agent_actors::api::{
    static_tls_files, ApiServer, ApiSettings, StartServing, StopServing, TlsFiles,
};
use ironic_agent_actors::config::AgentConfig;
use ironic_agent_actors::coordinator::{Coordinator, DrainCommands, Peers, ProbeAll};
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::inspector::HardwareInspector;
use ironic_agent_actors::installer::{
    CancelInstaller, InstallerIdle, InstallerRunner, WaitForInstaller,
};
use ironic_agent_actors::ironic::startup::{self, StartupPeers, StartupTiming};
use ironic_agent_actors::ironic::{IronicClient, StopHeartbeating};
use ironic_agent_actors::systemd::SystemdSupervisor;

/// How long a signal waits for a running command before the agent exits anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// The exit code when Ironic could not be reached (or did not know the node) within
/// `lookup_timeout`: `EX_TEMPFAIL` (75), distinct from other start-up failures (1), so
/// systemd's `Restart=on-failure` retries and operators can tell the two apart.
pub const EXIT_LOOKUP_FAILED: i32 = 75;

/// How long a cancelled installer may take to stop at shutdown.
pub const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// Addresses of every running actor.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The HTTP API.
    pub api: Addr<ApiServer>,
    /// The command engine.
    pub coordinator: Addr<Coordinator>,
    /// The worker actors the coordinator delegates to.
    pub peers: Peers,
    /// The static TLS files of the configuration, or why they are unusable.
    static_tls: Result<Option<TlsFiles>, String>,
}

/// Starts all six actors inside the current actix system.
pub fn start_actors(config: &AgentConfig) -> Agent {
    let runner = Arc::new(ProcessRunner::default());
    let peers = Peers {
        inspector: HardwareInspector::new(config.clone()).start(),
        installer: InstallerRunner::new(config.clone(), runner).start(),
        systemd: SystemdSupervisor::new(std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok()).start(),
        ironic: IronicClient::new(config.clone()).start(),
    };
    let coordinator = Coordinator::new(config.clone(), peers.clone()).start();
    let api = ApiServer::new(
        ApiSettings::from_config(config),
        coordinator.clone(),
        config.agent_token.clone(),
    )
    .start();
    // The coordinator stops the API after rescue and lockdown.
    coordinator.do_send(ironic_agent_actors::coordinator::AttachApiControl(
        api.clone().recipient(),
    ));
    Agent {
        api,
        coordinator,
        peers,
        static_tls: static_tls_files(config),
    }
}

impl Agent {
    /// Checks that every actor answers, returning their names.
    pub async fn probe(&self) -> anyhow::Result<Vec<String>> {
        let mut names = self
            .coordinator
            .send(ProbeAll)
            .await
            .context("coordinator mailbox")?
            .context("probing the worker actors")?;
        names.push(
            self.api
                .send(ironic_agent_actors::probe::Probe)
                .await
                .context("API mailbox")?,
        );
        Ok(names)
    }

    /// The actors the non-standalone start-up sequence drives.
    pub fn startup_peers(&self) -> StartupPeers {
        StartupPeers {
            api: self.api.clone(),
            coordinator: self.coordinator.clone(),
            inspector: self.peers.inspector.clone(),
            ironic: self.peers.ironic.clone(),
        }
    }

    /// Binds the API and starts serving (over static TLS when configured).
    pub async fn serve(&self) -> anyhow::Result<Vec<std::net::SocketAddr>> {
        let tls = self.static_tls.clone().map_err(anyhow::Error::msg)?;
        self.api
            .send(StartServing { tls })
            .await
            .context("API mailbox")?
            .map_err(anyhow::Error::msg)
    }

    /// Clean shutdown: stop accepting work, let a running command finish, stop the API.
    ///
    /// A running installer (`install_coreos`) is waited for within the same
    /// `drain_timeout` (a half-written disk is worse than a late exit); only when it is
    /// still running after that is it cancelled, so its command ends FAILED instead of
    /// staying RUNNING, and the kill is waited for (at most [`CANCEL_WAIT`]).
    pub async fn shutdown(&self, drain_timeout: Duration) -> bool {
        tracing::info!("shutting down: no new commands are accepted");
        let deadline = tokio::time::Instant::now() + drain_timeout;
        let mut drained = self
            .coordinator
            .send(DrainCommands {
                timeout: drain_timeout,
            })
            .await
            .unwrap_or(false);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let installer = self
            .peers
            .installer
            .send(WaitForInstaller { timeout: left })
            .await
            .unwrap_or(InstallerIdle::Idle);
        if let InstallerIdle::StillRunning(what) = installer {
            drained = false;
            tracing::warn!("{what} is still running after {drain_timeout:?}: cancelling it");
            let _ = self.peers.installer.send(CancelInstaller).await;
            let after = self
                .peers
                .installer
                .send(WaitForInstaller {
                    timeout: CANCEL_WAIT,
                })
                .await
                .unwrap_or(InstallerIdle::Idle);
            if let InstallerIdle::StillRunning(what) = after {
                tracing::error!("{what} did not stop after being cancelled");
            }
            // Its command now fails as cancelled: let the registry record that.
            let _ = self
                .coordinator
                .send(DrainCommands {
                    timeout: CANCEL_WAIT,
                })
                .await;
        }
        if !drained {
            tracing::warn!("a command was still running at shutdown");
        }
        let _ = self.peers.ironic.send(StopHeartbeating).await;
        let _ = self.api.send(StopServing { graceful: true }).await;
        drained
    }
}

/// Runs the agent until a signal arrives; returns the process exit code.
pub fn run_agent(config: AgentConfig) -> anyhow::Result<i32> {
    let system = actix::System::new();
    let code = system.block_on(async move {
        fix_host_hostname(&config).await?;
        let agent = start_actors(&config);
        let names = agent.probe().await?;
        tracing::debug!(?names, "all actors answer");
        let marker = ironic_agent_actors::coordinator::rescued_marker_path(&config.paths.etc_root);
        if marker.exists() {
            // IPA: after finalize_rescue the agent never serves the API again.
            tracing::warn!(marker = %marker.display(), "node was rescued: not serving the API");
        } else if config.standalone {
            let addrs = agent.serve().await?;
            tracing::info!(?addrs, standalone = true, "agent running");
        } else {
            // Restart recovery: restore (and from now on save) the command history.
            let store = ironic_agent_actors::state::StateStore::new(
                &config.paths.state_dir,
                &config.paths.proc_root,
            );
            let (restored, interrupted) = agent
                .coordinator
                .send(ironic_agent_actors::coordinator::EnableStatePersistence(
                    store,
                ))
                .await
                .context("coordinator mailbox")?;
            if restored > 0 {
                tracing::info!(restored, interrupted, "resuming after an agent restart");
            }
            // Lookup may take up to lookup_timeout: a signal still stops the agent.
            let peers = agent.startup_peers();
            let timing = StartupTiming::default();
            let startup = startup::run(&config, &peers, &timing);
            tokio::select! {
                outcome = startup => {
                    let outcome = match outcome {
                        Err(err @ startup::StartupError::Lookup { .. }) => {
                            tracing::error!(
                                error = %err,
                                exit_code = EXIT_LOOKUP_FAILED,
                                "giving up; systemd's Restart=on-failure starts the agent again"
                            );
                            return anyhow::Ok(EXIT_LOOKUP_FAILED);
                        }
                        other => other.context("start-up")?,
                    };
                    tracing::info!(?outcome, "agent running");
                }
                signal = wait_for_signal() => {
                    signal?;
                    agent.shutdown(DRAIN_TIMEOUT).await;
                    return anyhow::Ok(0);
                }
            }
        }
        wait_for_signal().await?;
        spawn_second_signal_exit();
        agent.shutdown(DRAIN_TIMEOUT).await;
        anyhow::Ok(0)
    })?;
    Ok(code)
}

/// The CoreOS hardware manager's start-up hostname fix, before any actor starts.
///
/// Skipped (one warning) when the host root does not exist; a failure stops start-up.
pub async fn fix_host_hostname(config: &AgentConfig) -> anyhow::Result<()> {
    let root = &config.paths.host_root;
    if !root.is_dir() {
        tracing::warn!(
            host_root = %root.display(),
            "CoreOS hostname fix skipped: there is no host root"
        );
        return Ok(());
    }
    let runner = ProcessRunner::default();
    ironic_agent_actors::installer::fix_hostname(config, &runner)
        .await
        .map_err(|err| anyhow::anyhow!("{}", err.details))
        .context("start-up stopped")?;
    Ok(())
}

/// Waits for the first SIGTERM or SIGINT.
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

/// After the first signal, a second one exits at once.
fn spawn_second_signal_exit() {
    actix::spawn(async {
        if wait_for_signal().await.is_ok() {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(130);
        }
    });
}
