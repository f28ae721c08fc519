//! IPA's `GenericHardwareManager`: the steps of `ipa-protocol.md` §11 with
//! their priorities, interfaces, `abortable` flags and `argsinfo`.
//!
//! The step bodies validate their arguments here and hand the host work to
//! the installer runner actor ([`crate::installer::RunStep`]).

use serde_json::{Map, Value};

use super::{args, HardwareManager, HardwareSupport, StepContext, StepError, StepInfo, StepResult};
use crate::coordinator::Peers;
use crate::errors::StepKind;
use crate::host::BoxFuture;
use crate::inspector::{BlockDevice, ChooseInstallDevice};
use crate::installer::RunStep;

/// The generic manager (support GENERIC, name `generic_hardware_manager`, version `1.2`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GenericHardwareManager {
    /// Priority of the `inject_files` deploy/service step (`inject_files_priority`).
    pub inject_files_priority: i64,
}

const MATCH_PATTERNS_DESC: &str = r#"Json blob contains a list of regex patterns where any UEFI NVRAM entry matching that pattern will be deleted. Default value is '["^HD\(", "shim.*\.efi", "grub.*\.efi"]'"#;
const RAID_CONFIG_DESC: &str = "The RAID configuration to apply.";
const DELETE_EXISTING_DESC: &str = "Setting this to 'True' indicates to delete existing RAID configuration prior to creating the new configuration. Default value is 'True'.";
const FILES_DESC: &str = "Files to inject, a list of file structures with keys: 'path' (path to the file), 'partition' (partition specifier), 'content' (base64 encoded string), 'mode' (new file mode) and 'dirmode' (mode for the leaf directory, if created). Merged with the values from node.properties[inject_files].";
const VERIFY_CA_DESC: &str =
    "Whether to verify TLS certificates. Global agent options are used by default.";

fn clean_uefi_nvram(priority: i64) -> StepInfo {
    StepInfo::new("clean_uefi_nvram", priority, "deploy").args(&[(
        "match_patterns",
        MATCH_PATTERNS_DESC,
        false,
    )])
}

fn apply_configuration() -> StepInfo {
    StepInfo::new("apply_configuration", 0, "raid").args(&[
        ("raid_config", RAID_CONFIG_DESC, true),
        ("delete_existing", DELETE_EXISTING_DESC, false),
    ])
}

fn inject_files(priority: i64) -> StepInfo {
    StepInfo::new("inject_files", priority, "deploy").args(&[
        ("files", FILES_DESC, false),
        ("verify_ca", VERIFY_CA_DESC, false),
    ])
}

impl GenericHardwareManager {
    /// `get_clean_steps`.
    pub fn clean_steps() -> Vec<StepInfo> {
        vec![
            StepInfo::new("erase_devices", 10, "deploy").abortable(true),
            StepInfo::new("erase_devices_metadata", 99, "deploy").abortable(true),
            StepInfo::new("erase_devices_express", 0, "deploy").abortable(true),
            StepInfo::new("erase_pstore", 0, "deploy").abortable(true),
            StepInfo::new("delete_configuration", 0, "raid").abortable(true),
            StepInfo::new("create_configuration", 0, "raid").abortable(true),
            StepInfo::new("burnin_cpu", 0, "deploy").abortable(true),
            StepInfo::new("burnin_gpu", 0, "deploy").abortable(true),
            StepInfo::new("burnin_disk", 0, "deploy").abortable(true),
            StepInfo::new("burnin_memory", 0, "deploy").abortable(true),
            StepInfo::new("burnin_network", 0, "deploy").abortable(true),
            clean_uefi_nvram(0).abortable(true),
        ]
    }

    /// `get_deploy_steps`; `inject_files` takes `inject_files_priority`.
    pub fn deploy_steps(inject_files_priority: i64) -> Vec<StepInfo> {
        vec![
            StepInfo::new("erase_devices_metadata", 0, "deploy"),
            apply_configuration(),
            StepInfo::new("write_image", 0, "deploy"),
            clean_uefi_nvram(0),
            inject_files(inject_files_priority),
            StepInfo::new("execute_bootc_install", 0, "deploy"),
        ]
    }

    /// `get_service_steps` (no `burnin_disk`, on purpose, as in IPA).
    pub fn service_steps(inject_files_priority: i64) -> Vec<StepInfo> {
        vec![
            StepInfo::new("delete_configuration", 0, "raid").abortable(true),
            apply_configuration(),
            StepInfo::new("create_configuration", 0, "raid").abortable(true),
            StepInfo::new("burnin_cpu", 0, "deploy").abortable(true),
            StepInfo::new("burnin_gpu", 0, "deploy").abortable(true),
            StepInfo::new("burnin_memory", 0, "deploy").abortable(true),
            StepInfo::new("burnin_network", 0, "deploy").abortable(true),
            StepInfo::new("write_image", 0, "deploy"),
            inject_files(inject_files_priority),
            StepInfo::new("execute_bootc_install", 0, "deploy"),
        ]
    }
}

/// The step methods this manager provides (all step names of §11).
pub const STEP_METHODS: &[&str] = &[
    "erase_devices",
    "erase_devices_metadata",
    "erase_devices_express",
    "erase_pstore",
    "clean_uefi_nvram",
    "delete_configuration",
    "create_configuration",
    "apply_configuration",
    "write_image",
    "inject_files",
    "execute_bootc_install",
    "burnin_cpu",
    "burnin_gpu",
    "burnin_disk",
    "burnin_memory",
    "burnin_network",
];

/// Validates a generic step's arguments as IPA's method signatures do.
pub fn validate_step_args(step: &str, a: &Map<String, Value>) -> Result<(), StepError> {
    match step {
        "clean_uefi_nvram" => args::typed(step, a, "match_patterns", "a list of strings", |v| {
            v.as_array()
                .is_some_and(|items| items.iter().all(Value::is_string))
        }),
        "apply_configuration" => {
            let config = args::required(step, a, "raid_config")?;
            if !config.is_object() {
                return Err(StepError::unexpected(
                    "TypeError",
                    "apply_configuration() argument 'raid_config' must be an object",
                ));
            }
            args::typed(step, a, "delete_existing", "a boolean", Value::is_boolean)
        }
        "write_image" => {
            let image_info = args::required(step, a, "image_info")?;
            if !image_info.is_object() {
                return Err(StepError::unexpected(
                    "TypeError",
                    "write_image() argument 'image_info' must be an object",
                ));
            }
            // As standby.prepare_image: a bad image_info is reported before any disk
            // is looked at (the install device is chosen after this).
            crate::coordinator::commands::validate_image_info(Some(image_info))
                .map_err(StepError::Agent)
        }
        "inject_files" => {
            args::typed(step, a, "files", "a list", Value::is_array)?;
            args::typed(step, a, "verify_ca", "a boolean or a string", |v| {
                v.is_boolean() || v.is_string()
            })
        }
        "execute_bootc_install" => {
            let source = args::required(step, a, "image_source")?;
            if !source.is_string() {
                return Err(StepError::unexpected(
                    "TypeError",
                    "execute_bootc_install() argument 'image_source' must be a string",
                ));
            }
            args::typed(step, a, "oci_pull_secret", "a string", Value::is_string)
        }
        _ => Ok(()),
    }
}

/// Hands a validated step to the installer runner actor.
pub fn delegate_to_installer(
    step: &str,
    ctx: StepContext,
    args: Map<String, Value>,
) -> BoxFuture<'static, StepResult> {
    let message = RunStep {
        step: step.to_string(),
        kind: ctx.kind,
        args,
        node: ctx.node.clone(),
        ports: ctx.ports.clone(),
        install_device: None,
    };
    Box::pin(async move { run_on_installer(&ctx.peers, message).await })
}

/// Runs `step` on the installer runner. A step that writes an OS image first gets the
/// install device from the inspector ([`install_device`]), as `install_coreos` does.
pub async fn run_on_installer(peers: &Peers, mut step: RunStep) -> StepResult {
    if step.writes_install_device() {
        let device = install_device(peers, &step.node, &step.step).await?;
        tracing::info!(step = %step.step, device = %device.name, "install device chosen");
        step.install_device = Some(device.name);
    }
    let name = step.step.clone();
    peers
        .installer
        .send(step)
        .await
        .map_err(|err| StepError::mailbox(&name, err))?
}

/// The OS install device for `node` (`get_os_install_device`, §5.6): root-device
/// hints, skip list and the disks offered for installation, from a fresh listing.
pub async fn install_device(
    peers: &Peers,
    node: &Value,
    step: &str,
) -> Result<BlockDevice, StepError> {
    peers
        .inspector
        .send(ChooseInstallDevice { node: node.clone() })
        .await
        .map_err(|err| StepError::mailbox(step, err))?
        .map_err(StepError::Agent)
}

impl HardwareManager for GenericHardwareManager {
    fn class_name(&self) -> &'static str {
        "GenericHardwareManager"
    }

    fn manager_name(&self) -> &str {
        "generic_hardware_manager"
    }

    fn version(&self) -> &str {
        "1.2"
    }

    fn evaluate_hardware_support(&self) -> HardwareSupport {
        HardwareSupport::GENERIC
    }

    fn get_steps(&self, kind: StepKind, _node: &Value, _ports: &Value) -> Vec<StepInfo> {
        match kind {
            StepKind::Clean => Self::clean_steps(),
            StepKind::Deploy => Self::deploy_steps(self.inject_files_priority),
            StepKind::Service => Self::service_steps(self.inject_files_priority),
        }
    }

    fn call(
        &self,
        method: &str,
        ctx: StepContext,
        args: Map<String, Value>,
    ) -> Option<BoxFuture<'static, StepResult>> {
        let method = *STEP_METHODS.iter().find(|name| **name == method)?;
        if let Err(err) = validate_step_args(method, &args) {
            return Some(Box::pin(async move { Err(err) }));
        }
        Some(delegate_to_installer(method, ctx, args))
    }
}
