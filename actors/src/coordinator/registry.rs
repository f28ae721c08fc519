//! The command registry: stored results, the busy rule and IPA's naming rules.
//!
//! Plain logic, no actor: each stored result lives in a `tokio::sync::watch`
//! channel so waiters (`wait=true`, drain) follow it without going through
//! the coordinator's mailbox.

use serde_json::Value;
use tokio::sync::watch;

use crate::command::{wrap_string_result, CommandResult, CommandStatus};
use crate::errors::AgentError;

/// Every command result of this process, in execution order (never evicted).
#[derive(Debug, Default)]
pub struct Registry {
    entries: Vec<watch::Sender<CommandResult>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The busy rule (§2.7): any command while the most recent result is RUNNING → 409.
    pub fn check_busy(&self) -> Result<(), AgentError> {
        match self.entries.last() {
            Some(last) => {
                let last = last.borrow();
                if last.command_status == CommandStatus::Running {
                    Err(AgentError::busy(&last.command_name))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Stores a new result; returns a receiver that follows it.
    pub fn insert(&mut self, result: CommandResult) -> watch::Receiver<CommandResult> {
        let (sender, receiver) = watch::channel(result);
        self.entries.push(sender);
        receiver
    }

    /// Replaces the stored result with the same id; `false` when there is none.
    pub fn update(&mut self, result: CommandResult) -> bool {
        match self
            .entries
            .iter()
            .find(|entry| entry.borrow().id == result.id)
        {
            Some(entry) => {
                entry.send_replace(result);
                true
            }
            None => false,
        }
    }

    /// Every result, in order.
    pub fn list(&self) -> Vec<CommandResult> {
        self.entries
            .iter()
            .map(|entry| entry.borrow().clone())
            .collect()
    }

    /// A receiver following the result with this id.
    pub fn subscribe(&self, id: &str) -> Option<watch::Receiver<CommandResult>> {
        self.entries
            .iter()
            .find(|entry| entry.borrow().id == id)
            .map(watch::Sender::subscribe)
    }

    /// A receiver following the running command, if the last one is RUNNING.
    pub fn running(&self) -> Option<watch::Receiver<CommandResult>> {
        self.entries
            .last()
            .filter(|entry| !entry.borrow().is_finished())
            .map(watch::Sender::subscribe)
    }
}

/// Waits until the followed result is finished, then returns it.
pub async fn wait_finished(mut receiver: watch::Receiver<CommandResult>) -> CommandResult {
    // The sender lives in the registry for the life of the process; if it
    // were dropped, the last value is still the best answer.
    let _ = receiver.wait_for(CommandResult::is_finished).await;
    let result = receiver.borrow().clone();
    result
}

/// A new random command id (UUID4).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The short command name: the part after the first dot.
pub fn short_name(full_name: &str) -> &str {
    full_name
        .split_once('.')
        .map_or(full_name, |(_, short)| short)
}

/// The stored result of a finished sync command: success → short name with a
/// wrapped string result; failure → the **dotted** name, FAILED.
pub fn sync_result(
    id: String,
    full_name: &str,
    outcome: Result<Value, AgentError>,
) -> CommandResult {
    let failed_name = full_name.to_string();
    finished_result(id, full_name, failed_name, outcome, false)
}

/// A finished command: the short name on success, `failed_name` on failure;
/// string results wrapped per mode.
fn finished_result(
    id: String,
    full_name: &str,
    failed_name: String,
    outcome: Result<Value, AgentError>,
    is_async: bool,
) -> CommandResult {
    let short = short_name(full_name);
    let (command_name, command_status, command_error, command_result) = match outcome {
        Ok(value) => (
            short.to_string(),
            CommandStatus::Succeeded,
            None,
            Some(wrap_string_result(value, short, is_async)),
        ),
        Err(err) => (failed_name, status_of(&err), Some(err), None),
    };
    CommandResult {
        id,
        command_name,
        command_status,
        command_error,
        command_result,
        command_progress: None,
    }
}

/// The RUNNING result stored when an async command starts (short name).
pub fn running_result(id: String, full_name: &str) -> CommandResult {
    CommandResult {
        id,
        command_name: short_name(full_name).to_string(),
        command_status: CommandStatus::Running,
        command_error: None,
        command_result: None,
        command_progress: None,
    }
}

/// The final result of an async command (short name, any outcome).
pub fn async_result(
    id: String,
    full_name: &str,
    outcome: Result<Value, AgentError>,
) -> CommandResult {
    let failed_name = short_name(full_name).to_string();
    finished_result(id, full_name, failed_name, outcome, true)
}

/// A result stored when an async command's validator raised an error that is
/// not of the invalid-request kind: FAILED under the dotted name.
pub fn rejected_result(id: String, full_name: &str, err: AgentError) -> CommandResult {
    CommandResult {
        id,
        command_name: full_name.to_string(),
        command_status: status_of(&err),
        command_error: Some(err),
        command_result: None,
        command_progress: None,
    }
}

fn status_of(err: &AgentError) -> CommandStatus {
    if err.is_version_mismatch() {
        CommandStatus::CleanVersionMismatch
    } else {
        CommandStatus::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_busy_only_while_last_is_running() {
        let mut registry = Registry::new();
        assert!(registry.check_busy().is_ok());
        registry.insert(sync_result(
            "1".into(),
            "clean.get_clean_steps",
            Ok(json!({})),
        ));
        assert!(registry.check_busy().is_ok());
        let running = running_result("2".into(), "clean.execute_clean_step");
        registry.insert(running.clone());
        let err = registry.check_busy().expect_err("busy");
        assert_eq!(err.code, 409);
        assert!(err.faultstring().contains("Agent is busy"));
        assert!(err.details.contains("execute_clean_step"));
        assert!(registry.running().is_some());
        let done = async_result("2".into(), "clean.execute_clean_step", Ok(json!(null)));
        assert!(registry.update(done));
        assert!(registry.check_busy().is_ok());
        assert!(registry.running().is_none());
        assert!(!registry.update(async_result("nope".into(), "a.b", Ok(json!(1)))));
        assert_eq!(registry.list().len(), 2);
    }

    #[test]
    fn registry_naming_follows_ipa() {
        let ok = sync_result("1".into(), "standby.sync", Ok(Value::Null));
        assert_eq!(ok.command_name, "sync");
        assert_eq!(ok.command_status, CommandStatus::Succeeded);
        assert_eq!(ok.command_result, Some(Value::Null));

        let failed = sync_result(
            "2".into(),
            "standby.sync",
            Err(AgentError::execution(
                "Flushing file system buffers failed: x",
            )),
        );
        assert_eq!(failed.command_name, "standby.sync");
        assert_eq!(failed.command_status, CommandStatus::Failed);

        let text = sync_result("3".into(), "x.y", Ok(json!("done")));
        assert_eq!(text.command_result, Some(json!({"result": "done"})));

        let async_ok = async_result("4".into(), "standby.prepare_image", Ok(json!("written")));
        assert_eq!(async_ok.command_name, "prepare_image");
        assert_eq!(
            async_ok.command_result,
            Some(json!({"result": "prepare_image: written"}))
        );

        let async_failed = async_result(
            "5".into(),
            "deploy.execute_deploy_step",
            Err(AgentError::step_failed(
                crate::errors::StepKind::Deploy,
                "boom",
            )),
        );
        assert_eq!(async_failed.command_name, "execute_deploy_step");
        assert_eq!(async_failed.command_status, CommandStatus::Failed);

        let mismatch = async_result(
            "6".into(),
            "service.execute_service_step",
            Err(AgentError::version_mismatch(
                &json!({"a": "1"}),
                &json!({"a": "2"}),
            )),
        );
        assert_eq!(mismatch.command_status, CommandStatus::CleanVersionMismatch);
        assert!(mismatch.command_result.is_none());

        let rejected = rejected_result(
            "7".into(),
            "flow.start_flow",
            AgentError::not_found("Extension with id nope not found."),
        );
        assert_eq!(rejected.command_name, "flow.start_flow");
        assert_eq!(rejected.command_status, CommandStatus::Failed);
        assert_eq!(short_name("a.b.c"), "b.c");
        assert_eq!(short_name("plain"), "plain");
    }

    #[tokio::test]
    async fn waiters_see_the_final_result() {
        let mut registry = Registry::new();
        let receiver = registry.insert(running_result("9".into(), "a.b"));
        let waiter = tokio::spawn(wait_finished(receiver));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        registry.update(async_result("9".into(), "a.b", Ok(json!(1))));
        let result = waiter.await.expect("join");
        assert_eq!(result.command_status, CommandStatus::Succeeded);
        assert!(registry.subscribe("9").is_some());
        assert!(registry.subscribe("10").is_none());
    }
}
