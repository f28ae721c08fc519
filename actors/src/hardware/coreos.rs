//! The CoreOS hardware manager, as openshift's `ironic_coreos_install`
//! (`CoreOSInstallHardwareManager`, support SERVICE_PROVIDER, version `1`).
//!
//! Deploy steps `install_coreos` and `start_assisted_install` (priority 0,
//! interface `deploy`, no arguments). The host work is done by the installer
//! runner (`coreos-installer`) and the systemd supervisor (`agent.service`).

use serde_json::{Map, Value};

use super::{args, HardwareManager, HardwareSupport, StepContext, StepError, StepInfo, StepResult};
use crate::errors::StepKind;
use crate::host::BoxFuture;
use crate::installer::{CoreosInstallRequest, InstallCoreos};
use crate::systemd::StartUnitAndWait;

/// The unit the converged (assisted) flow starts.
pub const ASSISTED_AGENT_UNIT: &str = "agent.service";

/// The CoreOS manager.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreOSInstallHardwareManager;

impl CoreOSInstallHardwareManager {
    /// `get_deploy_steps`: both steps carry an empty `argsinfo`, as the original does.
    pub fn deploy_steps() -> Vec<StepInfo> {
        vec![
            StepInfo::new("install_coreos", 0, "deploy").args(&[]),
            StepInfo::new("start_assisted_install", 0, "deploy").args(&[]),
        ]
    }
}

/// Step 1 of `install_coreos`: unless `node.automated_clean` is `false`,
/// remove software RAID through whichever manager handles
/// `delete_configuration`. Failures only warn. Returns whether it was tried.
pub async fn try_delete_raid(ctx: &StepContext) -> bool {
    if ctx.node.get("automated_clean") == Some(&Value::Bool(false)) {
        tracing::debug!("cleaning is disabled, not deleting software RAID");
        return false;
    }
    tracing::info!("deleting any software RAID devices");
    if let Err(err) = ctx
        .managers
        .dispatch("delete_configuration", ctx.clone(), Map::new())
        .await
    {
        tracing::warn!(error = ?err, "unable to delete software RAID configuration, deployment may fail");
    }
    true
}

/// The host name the installed system gets in `/etc/hostname` (the container
/// shares the host's UTS namespace, so this is the host's name).
fn current_hostname() -> Option<String> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
}

/// Steps 2–7 of `install_coreos`: choose the install device by root-device
/// hints (fresh listing), then run `coreos-installer` on the installer runner.
pub async fn install_coreos(ctx: StepContext) -> StepResult {
    let device = super::generic::install_device(&ctx.peers, &ctx.node, "install_coreos").await?;
    tracing::info!(device = %device.name, "installing CoreOS");
    let request = CoreosInstallRequest::new(&device.name, ctx.node.clone(), current_hostname());
    let outcome = ctx
        .peers
        .installer
        .send(InstallCoreos(request))
        .await
        .map_err(|err| StepError::mailbox("install_coreos", err))?
        .map_err(StepError::Agent)?;
    tracing::info!(device = %outcome.device.display(), attempts = outcome.attempts, "CoreOS installed");
    Ok(serde_json::json!({
        "device": outcome.device,
        "attempts": outcome.attempts,
        "ignition": outcome.ignition,
    }))
}

impl HardwareManager for CoreOSInstallHardwareManager {
    fn class_name(&self) -> &'static str {
        "CoreOSInstallHardwareManager"
    }

    fn version(&self) -> &str {
        "1"
    }

    fn evaluate_hardware_support(&self) -> HardwareSupport {
        HardwareSupport::SERVICE_PROVIDER
    }

    fn get_steps(&self, kind: StepKind, _node: &Value, _ports: &Value) -> Vec<StepInfo> {
        match kind {
            StepKind::Deploy => Self::deploy_steps(),
            StepKind::Clean | StepKind::Service => Vec::new(),
        }
    }

    fn call(
        &self,
        method: &str,
        ctx: StepContext,
        step_args: Map<String, Value>,
    ) -> Option<BoxFuture<'static, StepResult>> {
        match method {
            "install_coreos" => {
                if let Err(err) = args::only(method, &step_args, &[]) {
                    return Some(Box::pin(async move { Err(err) }));
                }
                Some(Box::pin(async move {
                    try_delete_raid(&ctx).await;
                    install_coreos(ctx).await
                }))
            }
            "start_assisted_install" => {
                if let Err(err) = args::only(method, &step_args, &[]) {
                    return Some(Box::pin(async move { Err(err) }));
                }
                let systemd = ctx.peers.systemd.clone();
                Some(Box::pin(async move {
                    systemd
                        .send(StartUnitAndWait {
                            step: "start_assisted_install".to_string(),
                            unit: ASSISTED_AGENT_UNIT.to_string(),
                        })
                        .await
                        .map_err(|err| StepError::mailbox("start_assisted_install", err))?
                }))
            }
            _ => None,
        }
    }
}
