//! The CoreOS hardware manager, as openshift's `ironic_coreos_install`
//! (`CoreOSInstallHardwareManager`, support SERVICE_PROVIDER, version `1`).
//!
//! Deploy steps `install_coreos` and `start_assisted_install` (priority 0,
//! interface `deploy`, no arguments). The host work is done by the installer
//! runner (`coreos-installer`) and the systemd supervisor (`agent.service`).

use serde_json::{Map, Value};

use super::generic::delegate_to_installer;
use super::{args, HardwareManager, HardwareSupport, StepContext, StepError, StepInfo, StepResult};
use crate::errors::StepKind;
use crate::host::BoxFuture;
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
            "install_coreos" => Some(match args::only(method, &step_args, &[]) {
                Err(err) => Box::pin(async move { Err(err) }),
                Ok(()) => delegate_to_installer(method, ctx, step_args),
            }),
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
