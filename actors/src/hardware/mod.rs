//! Hardware managers: IPA's manager framework, the generic and the CoreOS manager.
//!
//! This module is plain logic, testable without an actor system:
//! - [`HardwareManager`]: the trait every manager implements (support level,
//!   name/version, steps, dispatchable methods);
//! - [`ManagerSet`]: the loaded managers, sorted by support level, with IPA's
//!   `dispatch_to_managers` / `dispatch_to_all_managers` semantics, step
//!   discovery and de-duplication (`ipa-protocol.md` §4.3) and step execution
//!   (§4.4: version check, argument merge, error wrapping);
//! - [`StepContext`]: what a step body may use (configuration, peers, the host
//!   command runner, the node and ports Ironic sent).

pub mod coreos;
pub mod generic;
pub mod testing;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::config::AgentConfig;
use crate::coordinator::Peers;
use crate::errors::{AgentError, StepKind};
use crate::host::{BoxFuture, CommandRunner, DeviceAllowlist};

pub use coreos::CoreOSInstallHardwareManager;
pub use generic::GenericHardwareManager;
pub use testing::TestingHardwareManager;

/// IPA's hardware support levels (`HardwareSupport`); higher wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HardwareSupport(pub u32);

impl HardwareSupport {
    /// The manager does not apply to this machine; it is not loaded.
    pub const NONE: Self = Self(0);
    /// Works everywhere (the generic manager).
    pub const GENERIC: Self = Self(1);
    /// Mainline IPA managers for specific hardware.
    pub const MAINLINE: Self = Self(2);
    /// Deployment-specific managers (the CoreOS manager).
    pub const SERVICE_PROVIDER: Self = Self(3);
}

/// The environment variable that loads [`TestingHardwareManager`] (test-only).
pub const TEST_MANAGER_ENV: &str = "IRONIC_AGENT_ENABLE_TEST_MANAGER";

/// One step as a manager advertises it (`get_<kind>_steps`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    /// The method name.
    pub step: String,
    /// 0 means the step never runs automatically.
    pub priority: i64,
    /// `deploy`, `raid`, …
    pub interface: String,
    /// Whether Ironic should reboot the node after the step.
    pub reboot_requested: bool,
    /// Whether the operator may abort the step (clean and service steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abortable: Option<bool>,
    /// `{arg: {"description", "required"}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argsinfo: Option<Map<String, Value>>,
    /// Only third-party managers set this; IPA's own managers never do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_ramdisk: Option<bool>,
}

impl StepInfo {
    /// A step with `reboot_requested: false` and no optional keys.
    pub fn new(step: &str, priority: i64, interface: &str) -> Self {
        Self {
            step: step.to_string(),
            priority,
            interface: interface.to_string(),
            reboot_requested: false,
            abortable: None,
            argsinfo: None,
            requires_ramdisk: None,
        }
    }

    /// Sets `abortable`.
    pub fn abortable(mut self, abortable: bool) -> Self {
        self.abortable = Some(abortable);
        self
    }

    /// Sets `argsinfo` from `(name, description, required)` triples.
    pub fn args(mut self, args: &[(&str, &str, bool)]) -> Self {
        let mut info = Map::new();
        for (name, description, required) in args {
            info.insert(
                (*name).to_string(),
                json!({"description": description, "required": required}),
            );
        }
        self.argsinfo = Some(info);
        self
    }
}

/// How a manager method or step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepError {
    /// IPA's `IncompatibleHardwareMethodError`: try the next manager.
    Incompatible,
    /// An agent error (`RESTError`): reported as it is.
    Agent(AgentError),
    /// Any other failure; wrapped into `CleaningError`/`DeploymentError`/`ServicingError`.
    Unexpected {
        /// The exception class name shown to Ironic (`TypeError`, `RuntimeError`…).
        class: String,
        /// The message.
        message: String,
    },
}

impl StepError {
    /// An unexpected failure of the given class.
    pub fn unexpected(class: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unexpected {
            class: class.into(),
            message: message.into(),
        }
    }

    /// The clear failure of work a later part of this agent will implement.
    pub fn not_implemented(what: &str) -> Self {
        Self::unexpected(
            "NotImplementedError",
            format!("{what} is not implemented in this agent yet"),
        )
    }

    /// A worker actor could not be reached.
    pub fn mailbox(what: &str, err: actix::MailboxError) -> Self {
        Self::unexpected("MailboxError", format!("{what}: {err}"))
    }

    /// Turns the error into the agent error a step command reports (§4.4 item 6).
    pub fn into_step_error(self, kind: StepKind, step: &str) -> AgentError {
        match self {
            StepError::Agent(err) => err,
            StepError::Incompatible => AgentError::method_not_found(step),
            StepError::Unexpected { class, message } => AgentError::step_failed(
                kind,
                format!(
                    "Unexpected exception performing {} step {step}. {class}: {message}",
                    kind.as_str()
                ),
            ),
        }
    }

    /// Turns the error into the agent error a plain command reports.
    pub fn into_command_error(self, method: &str) -> AgentError {
        match self {
            StepError::Agent(err) => err,
            StepError::Incompatible => AgentError::method_not_found(method),
            StepError::Unexpected { class, message } => {
                AgentError::execution(format!("{class}: {message}"))
            }
        }
    }
}

impl From<AgentError> for StepError {
    fn from(err: AgentError) -> Self {
        StepError::Agent(err)
    }
}

/// The result of a manager method.
pub type StepResult = Result<Value, StepError>;

/// What a step or manager method may use. Cheap to clone.
#[derive(Clone)]
pub struct StepContext {
    /// The step family being executed, when a step command called this.
    pub kind: Option<StepKind>,
    /// The node Ironic sent (`node.as_dict(secure=True)`), or the cached one.
    pub node: Value,
    /// The ports Ironic sent.
    pub ports: Value,
    /// The agent configuration (host paths in `config.paths`).
    pub config: Arc<AgentConfig>,
    /// The block devices destructive work may touch.
    pub allowlist: DeviceAllowlist,
    /// The worker actors (installer runner, systemd supervisor, inspector, Ironic client).
    pub peers: Peers,
    /// Runs host programs.
    pub runner: Arc<dyn CommandRunner>,
    /// All loaded managers, for nested dispatch (e.g. `install_coreos` → `delete_configuration`).
    pub managers: Arc<ManagerSet>,
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The node may hold secrets (driver_info): never print it.
        f.debug_struct("StepContext")
            .field("kind", &self.kind)
            .field("node_uuid", &self.node.get("uuid"))
            .finish_non_exhaustive()
    }
}

/// A hardware manager, as IPA's `HardwareManager` class.
pub trait HardwareManager: Send + Sync + fmt::Debug {
    /// The class name; steps are keyed by it (`GenericHardwareManager`).
    fn class_name(&self) -> &'static str;

    /// `HARDWARE_MANAGER_NAME`; versions are keyed by it. Defaults to the class name.
    fn manager_name(&self) -> &str {
        self.class_name()
    }

    /// `HARDWARE_MANAGER_VERSION`; defaults to `1.0`.
    fn version(&self) -> &str {
        "1.0"
    }

    /// The support level; [`HardwareSupport::NONE`] drops the manager.
    fn evaluate_hardware_support(&self) -> HardwareSupport;

    /// `get_clean_steps` / `get_deploy_steps` / `get_service_steps`.
    fn get_steps(&self, _kind: StepKind, _node: &Value, _ports: &Value) -> Vec<StepInfo> {
        Vec::new()
    }

    /// Calls method `method` with keyword arguments `args`; `None` when this
    /// manager does not have the method (the dispatcher then tries the next one).
    fn call(
        &self,
        method: &str,
        ctx: StepContext,
        args: Map<String, Value>,
    ) -> Option<BoxFuture<'static, StepResult>>;
}

/// The loaded managers, highest support level first (stable on ties).
#[derive(Debug, Clone)]
pub struct ManagerSet {
    managers: Vec<(HardwareSupport, Arc<dyn HardwareManager>)>,
}

impl ManagerSet {
    /// Evaluates each candidate, drops unsupported ones and sorts the rest.
    pub fn new(candidates: Vec<Arc<dyn HardwareManager>>) -> Result<Self, AgentError> {
        let mut managers: Vec<_> = candidates
            .into_iter()
            .map(|manager| (manager.evaluate_hardware_support(), manager))
            .filter(|(support, _)| *support > HardwareSupport::NONE)
            .collect();
        if managers.is_empty() {
            return Err(AgentError::new(
                "HardwareManagerNotFound",
                500,
                "No valid HardwareManager found",
                "no hardware manager supports this machine",
            ));
        }
        managers.sort_by_key(|(support, _)| std::cmp::Reverse(*support));
        Ok(Self { managers })
    }

    /// The managers this agent ships: generic and CoreOS, plus the testing
    /// manager when `IRONIC_AGENT_ENABLE_TEST_MANAGER=1`.
    pub fn standard(config: &AgentConfig) -> Self {
        let generic = GenericHardwareManager {
            inject_files_priority: i64::from(config.inject_files_priority),
        };
        let mut candidates: Vec<Arc<dyn HardwareManager>> =
            vec![Arc::new(generic), Arc::new(CoreOSInstallHardwareManager)];
        if std::env::var(TEST_MANAGER_ENV).is_ok_and(|value| value == "1") {
            tracing::warn!("loading the test-only TestingHardwareManager");
            candidates.push(Arc::new(TestingHardwareManager));
        }
        // The generic manager always supports the machine, so this cannot fail.
        Self::new(candidates).unwrap_or_else(|_| Self {
            managers: vec![(
                HardwareSupport::GENERIC,
                Arc::new(generic) as Arc<dyn HardwareManager>,
            )],
        })
    }

    /// `(class name, support level)` of each manager, in dispatch order.
    pub fn summary(&self) -> Vec<(&'static str, HardwareSupport)> {
        self.managers
            .iter()
            .map(|(support, manager)| (manager.class_name(), *support))
            .collect()
    }

    /// `(HARDWARE_MANAGER_NAME, version)` of each manager, in dispatch order: inspection's
    /// `configuration.managers` and `hardware_manager_version` both come from here.
    pub fn names_and_versions(&self) -> Vec<(String, String)> {
        self.managers
            .iter()
            .map(|(_, manager)| {
                (
                    manager.manager_name().to_string(),
                    manager.version().to_string(),
                )
            })
            .collect()
    }

    /// `hardware_manager_version`: `{HARDWARE_MANAGER_NAME: version}`.
    pub fn versions(&self) -> Value {
        let map: Map<String, Value> = self
            .managers
            .iter()
            .map(|(_, manager)| {
                (
                    manager.manager_name().to_string(),
                    Value::String(manager.version().to_string()),
                )
            })
            .collect();
        Value::Object(map)
    }

    /// `get_<kind>_steps`: `{"<kind>_steps": {Class: [...]}, "hardware_manager_version": {...}}`.
    pub fn get_steps(&self, kind: StepKind, node: &Value, ports: &Value) -> Value {
        let candidates: Vec<Candidate> = self
            .managers
            .iter()
            .map(|(support, manager)| Candidate {
                class_name: manager.class_name().to_string(),
                support: *support,
                steps: manager.get_steps(kind, node, ports),
            })
            .collect();
        let mut steps = Map::new();
        for (class_name, list) in deduplicate_steps(candidates) {
            steps.insert(class_name, serde_json::to_value(list).unwrap_or_default());
        }
        let mut out = Map::new();
        out.insert(format!("{}_steps", kind.as_str()), Value::Object(steps));
        out.insert("hardware_manager_version".to_string(), self.versions());
        Value::Object(out)
    }

    /// `dispatch_to_managers`: the first manager that has `method` and does not
    /// answer "incompatible" handles it; none → `HardwareManagerMethodNotFound`.
    pub async fn dispatch(
        self: &Arc<Self>,
        method: &str,
        ctx: StepContext,
        args: Map<String, Value>,
    ) -> StepResult {
        for (_, manager) in &self.managers {
            let Some(call) = manager.call(method, ctx.clone(), args.clone()) else {
                continue;
            };
            match call.await {
                Err(StepError::Incompatible) => {
                    tracing::debug!(
                        manager = manager.class_name(),
                        method,
                        "incompatible, trying the next manager"
                    );
                }
                other => return other,
            }
        }
        Err(StepError::Agent(AgentError::method_not_found(method)))
    }

    /// `dispatch_to_all_managers`: `{Class: result}` of every manager that has
    /// `method`, skipping incompatible ones; any other error aborts.
    pub async fn dispatch_to_all(
        self: &Arc<Self>,
        method: &str,
        ctx: StepContext,
        args: Map<String, Value>,
    ) -> Result<BTreeMap<String, Value>, StepError> {
        let mut results = BTreeMap::new();
        for (_, manager) in &self.managers {
            let Some(call) = manager.call(method, ctx.clone(), args.clone()) else {
                continue;
            };
            match call.await {
                Ok(value) => {
                    results.insert(manager.class_name().to_string(), value);
                }
                Err(StepError::Incompatible) => {}
                Err(other) => return Err(other),
            }
        }
        if results.is_empty() {
            return Err(StepError::Agent(AgentError::method_not_found(method)));
        }
        Ok(results)
    }

    /// `execute_<kind>_step` (§4.4): version check, malformed-step check,
    /// argument merge, dispatch and error wrapping. `params` are the command's
    /// keyword parameters; `ctx` carries the node and ports from them.
    pub async fn execute_step(
        self: Arc<Self>,
        kind: StepKind,
        params: Map<String, Value>,
        ctx: StepContext,
    ) -> Result<Value, AgentError> {
        let version_key = format!("{}_version", kind.as_str());
        check_version(&self.versions(), params.get(&version_key))?;
        let step = params.get("step").cloned().unwrap_or(Value::Null);
        let Some(step_name) = step.get("step").and_then(Value::as_str).map(str::to_string) else {
            return Err(AgentError::execution(format!(
                "Malformed {}_step, no \"step\" key: {step}",
                kind.as_str()
            )));
        };
        let extra: Map<String, Value> = params
            .into_iter()
            .filter(|(key, _)| {
                !matches!(key.as_str(), "step" | "node" | "ports") && *key != version_key
            })
            .collect();
        let args = merge_step_args(extra, &step).map_err(AgentError::execution)?;
        let span = tracing::info_span!("step", step = %step_name, kind = kind.as_str());
        span.in_scope(|| {
            tracing::info!(args = ?args.keys().collect::<Vec<_>>(), "executing step");
        });
        let ctx = StepContext {
            kind: Some(kind),
            ..ctx
        };
        let result = self
            .dispatch(&step_name, ctx, args)
            .instrument(span)
            .await
            .map_err(|err| err.into_step_error(kind, &step_name))?;
        let mut out = Map::new();
        out.insert(format!("{}_result", kind.as_str()), result);
        out.insert(format!("{}_step", kind.as_str()), step);
        Ok(Value::Object(out))
    }
}

/// One manager's advertised steps, as input to [`deduplicate_steps`].
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The manager class name.
    pub class_name: String,
    /// Its support level.
    pub support: HardwareSupport,
    /// Its steps, in its own order.
    pub steps: Vec<StepInfo>,
}

/// IPA's step de-duplication (§4.3): per step name the winner has the higher
/// support level, then the higher priority, then the alphabetically first
/// class name; it stays under its own manager. Managers are listed in the
/// order their first winning step name was first seen.
pub fn deduplicate_steps(candidates: Vec<Candidate>) -> Vec<(String, Vec<StepInfo>)> {
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<String, Vec<(HardwareSupport, String, StepInfo)>> = BTreeMap::new();
    for candidate in candidates {
        for step in candidate.steps {
            if !by_name.contains_key(&step.step) {
                order.push(step.step.clone());
            }
            by_name.entry(step.step.clone()).or_default().push((
                candidate.support,
                candidate.class_name.clone(),
                step,
            ));
        }
    }
    let mut out: Vec<(String, Vec<StepInfo>)> = Vec::new();
    for name in order {
        let Some(entries) = by_name.remove(&name) else {
            continue;
        };
        let winner = entries.into_iter().min_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.2.priority.cmp(&a.2.priority))
                .then(a.1.cmp(&b.1))
        });
        let Some((_, class_name, step)) = winner else {
            continue;
        };
        match out.iter_mut().find(|(class, _)| *class == class_name) {
            Some((_, list)) => list.push(step),
            None => out.push((class_name, vec![step])),
        }
    }
    out
}

/// §4.4 item 2: a non-null requested version map must equal the current one exactly.
pub fn check_version(current: &Value, requested: Option<&Value>) -> Result<(), AgentError> {
    match requested {
        None | Some(Value::Null) => Ok(()),
        Some(requested) if requested == current => Ok(()),
        Some(requested) => Err(AgentError::version_mismatch(current, requested)),
    }
}

/// §4.4 item 4: the command's leftover keyword arguments with `step["args"]`
/// merged over them. A non-object `args` is an error.
pub fn merge_step_args(
    mut extra: Map<String, Value>,
    step: &Value,
) -> Result<Map<String, Value>, String> {
    match step.get("args") {
        None | Some(Value::Null) => {}
        Some(Value::Object(args)) => {
            for (key, value) in args {
                extra.insert(key.clone(), value.clone());
            }
        }
        Some(other) => return Err(format!("step args must be an object, got {other}")),
    }
    Ok(extra)
}

/// Argument checking for step bodies, with Python-like `TypeError` messages.
pub mod args {
    use serde_json::{Map, Value};

    use super::StepError;

    /// Fails on any argument not in `allowed` (a method without `**kwargs`).
    pub fn only(
        method: &str,
        args: &Map<String, Value>,
        allowed: &[&str],
    ) -> Result<(), StepError> {
        match args.keys().find(|key| !allowed.contains(&key.as_str())) {
            Some(key) => Err(StepError::unexpected(
                "TypeError",
                format!("{method}() got an unexpected keyword argument '{key}'"),
            )),
            None => Ok(()),
        }
    }

    /// A required argument, present and not null.
    pub fn required<'a>(
        method: &str,
        args: &'a Map<String, Value>,
        name: &str,
    ) -> Result<&'a Value, StepError> {
        args.get(name)
            .filter(|value| !value.is_null())
            .ok_or_else(|| {
                StepError::unexpected(
                    "TypeError",
                    format!("{method}() missing 1 required argument: '{name}'"),
                )
            })
    }

    /// Checks an optional argument's JSON type (`null` counts as absent).
    pub fn typed(
        method: &str,
        args: &Map<String, Value>,
        name: &str,
        expected: &str,
        check: fn(&Value) -> bool,
    ) -> Result<(), StepError> {
        match args.get(name) {
            None | Some(Value::Null) => Ok(()),
            Some(value) if check(value) => Ok(()),
            Some(_) => Err(StepError::unexpected(
                "TypeError",
                format!("{method}() argument '{name}' must be {expected}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
