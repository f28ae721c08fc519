//! Step work requested by the hardware managers and the standby/image commands.

use std::sync::Arc;

use serde_json::Value;

use crate::config::AgentConfig;
use crate::hardware::{StepError, StepResult};
use crate::host::{CommandRunner, DeviceAllowlist};

use super::InstallerRunner;

/// What the step modules use: configuration, the host runner, the allow-list.
#[derive(Debug, Clone)]
pub struct StepEnv {
    /// The agent configuration.
    pub config: Arc<AgentConfig>,
    /// Runs host programs.
    pub runner: Arc<dyn CommandRunner>,
    /// Devices destructive work may touch (from `block_device_allowlist`).
    pub allowlist: DeviceAllowlist,
    /// Where the running command's progress goes.
    pub progress: super::progress::ProgressSink,
    /// Identifies the installer instance (state such as the written image's
    /// partition UUIDs is kept per instance).
    pub instance: usize,
}

/// Runs one step by name; `None` when this agent does not implement it.
pub async fn dispatch(env: StepEnv, msg: RunStep) -> Option<StepResult> {
    let result = match msg.step.as_str() {
        "erase_devices_metadata" => super::erase::erase_devices_metadata(&env).await,
        "erase_devices" => super::erase::erase_devices(&env, &msg.node, false).await,
        "erase_devices_express" => super::erase::erase_devices(&env, &msg.node, true).await,
        "prepare_image" => {
            super::image::prepare_image(&env, &msg.args, msg.install_device.as_deref())
                .await
                .map(Value::String)
        }
        "write_image" => {
            super::image::prepare_image(&env, &msg.args, msg.install_device.as_deref())
                .await
                .map(|text| serde_json::json!({ "result": format!("prepare_image: {text}") }))
        }
        "get_partition_uuids" => Ok(super::image::partition_uuids(&env)),
        "erase_pstore" => super::misc::erase_pstore(&env).await,
        "create_configuration" => {
            let config = msg
                .node
                .get("target_raid_config")
                .cloned()
                .unwrap_or(Value::Null);
            super::raid::create(&env, &config).await
        }
        "apply_configuration" => {
            let config = msg.args.get("raid_config").cloned().unwrap_or(Value::Null);
            // Validate the shape before deleting anything (holder counts later).
            if let Err(err) = super::raid::validate(&config, usize::MAX) {
                return Some(Err(StepError::Agent(err)));
            }
            let delete_first =
                msg.args.get("delete_existing").and_then(Value::as_bool) != Some(false);
            let deleted = if delete_first {
                super::raid::delete(&env).await.map(|_| ())
            } else {
                Ok(())
            };
            match deleted {
                Ok(()) => super::raid::create(&env, &config).await,
                Err(err) => Err(err),
            }
        }
        "delete_configuration" => super::raid::delete(&env).await,
        "clean_uefi_nvram" => super::misc::clean_uefi_nvram(&env, &msg.args).await,
        "install_bootloader" => super::misc::install_bootloader(&env, &msg.args).await,
        "execute_bootc_install" => {
            let text =
                super::misc::execute_bootc_install(&env, &msg.args, msg.install_device.as_deref())
                    .await;
            if msg.kind.is_some() {
                text.map(|t| serde_json::json!({ "result": format!("execute_bootc_install: {t}") }))
            } else {
                text.map(Value::String)
            }
        }
        _ => return None,
    };
    Some(result.map_err(StepError::Agent))
}

/// Request: run the host work of a step or command (erase, RAID, image write,
/// `install_coreos`, bootc, boot loader…). Arguments were already validated by
/// the hardware manager or command; the answer is the step's result value.
///
/// Until the issue that implements a given step lands, the answer is a clear
/// `NotImplementedError` failure (never a fake success).
#[derive(Clone)]
pub struct RunStep {
    /// The step or command name (`erase_devices`, `write_image`, `prepare_image`…).
    pub step: String,
    /// The step family, when a step command asked (`None` for plain commands).
    pub kind: Option<crate::errors::StepKind>,
    /// Keyword arguments (step args merged over the command's extra parameters).
    pub args: serde_json::Map<String, serde_json::Value>,
    /// The node Ironic sent (may hold secrets: never log it whole).
    pub node: serde_json::Value,
    /// The ports Ironic sent.
    pub ports: serde_json::Value,
    /// The OS install device (`/dev/sda`) the inspector chose for the node
    /// (`ChooseInstallDevice`, §5.6) when the step [writes one](Self::writes_install_device).
    pub install_device: Option<String>,
}

impl RunStep {
    /// Whether the step writes an OS image onto the install device (`write_image`,
    /// `prepare_image`, `execute_bootc_install`): the sender fills `install_device`.
    pub fn writes_install_device(&self) -> bool {
        matches!(
            self.step.as_str(),
            "write_image" | "prepare_image" | "execute_bootc_install"
        )
    }
}

impl actix::Message for RunStep {
    type Result = StepResult;
}

impl actix::Handler<RunStep> for InstallerRunner {
    type Result = actix::ResponseFuture<StepResult>;

    fn handle(&mut self, msg: RunStep, _ctx: &mut Self::Context) -> Self::Result {
        let env = StepEnv {
            config: Arc::new(self.config().clone()),
            runner: self.runner().clone(),
            allowlist: DeviceAllowlist::new(self.config().block_device_allowlist.iter()),
            progress: super::progress::for_instance(instance_key(self)),
            instance: instance_key(self),
        };
        Box::pin(async move {
            let step = msg.step.clone();
            match dispatch(env, msg).await {
                Some(result) => result,
                None => {
                    tracing::warn!(step = %step, "step requested but not implemented yet");
                    Err(StepError::not_implemented(&step))
                }
            }
        })
    }
}

/// Identifies an installer instance by its runner (state is kept per instance).
pub(super) fn instance_key(installer: &InstallerRunner) -> usize {
    Arc::as_ptr(installer.runner()) as *const () as usize
}

/// Request: the running step's progress (bytes done / total), if any.
#[derive(Debug, Clone, Copy)]
pub struct GetProgress;

impl actix::Message for GetProgress {
    type Result = Option<crate::command::CommandProgress>;
}

impl actix::Handler<GetProgress> for InstallerRunner {
    type Result = Option<crate::command::CommandProgress>;

    fn handle(&mut self, _msg: GetProgress, _ctx: &mut Self::Context) -> Self::Result {
        super::progress::for_instance(instance_key(self)).snapshot()
    }
}

impl std::fmt::Debug for RunStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Argument values and the node may hold secrets: names only.
        f.debug_struct("RunStep")
            .field("step", &self.step)
            .field("kind", &self.kind)
            .field("args", &self.args.keys().collect::<Vec<_>>())
            .field("node_uuid", &self.node.get("uuid"))
            .field("install_device", &self.install_device)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_argument_values_and_the_node() {
        let mut args = serde_json::Map::new();
        args.insert(
            "image_info".into(),
            serde_json::json!({"password": "hunter2"}),
        );
        let step = RunStep {
            step: "write_image".into(),
            kind: None,
            args,
            node: serde_json::json!({"uuid": "n1", "driver_info": {"ipmi_password": "s3cret"}}),
            ports: serde_json::json!([]),
            install_device: None,
        };
        let text = format!("{step:?}");
        assert!(
            text.contains("write_image") && text.contains("image_info"),
            "{text}"
        );
        assert!(
            !text.contains("hunter2") && !text.contains("s3cret"),
            "{text}"
        );
    }
}
