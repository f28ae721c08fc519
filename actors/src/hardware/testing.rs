//! `TestingHardwareManager`: **test-only**. Loaded only when the environment
//! variable `IRONIC_AGENT_ENABLE_TEST_MANAGER=1` is set at start; never in
//! production. It gives HTTP-level tests a step that runs for a while
//! (`test_sleep`, for busy/wait checks) and one that fails (`test_fail`).

use std::time::Duration;

use serde_json::{Map, Value};

use super::{args, HardwareManager, HardwareSupport, StepContext, StepError, StepInfo, StepResult};
use crate::errors::StepKind;
use crate::host::BoxFuture;

/// The test-only manager (support MAINLINE, version `1.0`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TestingHardwareManager;

impl TestingHardwareManager {
    /// The steps, the same for clean, deploy and service.
    pub fn steps() -> Vec<StepInfo> {
        vec![
            StepInfo::new("test_sleep", 0, "deploy")
                .abortable(true)
                .args(&[("seconds", "seconds to sleep (default 1)", false)]),
            StepInfo::new("test_fail", 0, "deploy").args(&[(
                "message",
                "the error message to fail with",
                false,
            )]),
        ]
    }
}

impl HardwareManager for TestingHardwareManager {
    fn class_name(&self) -> &'static str {
        "TestingHardwareManager"
    }

    fn manager_name(&self) -> &str {
        "testing_hardware_manager"
    }

    fn evaluate_hardware_support(&self) -> HardwareSupport {
        HardwareSupport::MAINLINE
    }

    fn get_steps(&self, _kind: StepKind, _node: &Value, _ports: &Value) -> Vec<StepInfo> {
        Self::steps()
    }

    fn call(
        &self,
        method: &str,
        _ctx: StepContext,
        step_args: Map<String, Value>,
    ) -> Option<BoxFuture<'static, StepResult>> {
        match method {
            "test_sleep" => Some(Box::pin(async move {
                args::only("test_sleep", &step_args, &["seconds"])?;
                let seconds = match step_args.get("seconds") {
                    None | Some(Value::Null) => 1.0,
                    Some(value) => value
                        .as_f64()
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| {
                            StepError::unexpected(
                                "TypeError",
                                "test_sleep() argument 'seconds' must be a non-negative number",
                            )
                        })?,
                };
                tokio::time::sleep(Duration::from_secs_f64(seconds.min(3600.0))).await;
                Ok(Value::String(format!("slept {seconds} seconds")))
            })),
            "test_fail" => Some(Box::pin(async move {
                args::only("test_fail", &step_args, &["message"])?;
                let message = step_args
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("test_fail asked to fail")
                    .to_string();
                Err(StepError::unexpected("RuntimeError", message))
            })),
            _ => None,
        }
    }
}
