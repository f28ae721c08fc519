//! The command result model shared by the coordinator and the API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::errors::AgentError;

/// The life-cycle state of a command, as Ironic reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandStatus {
    /// Still running (async commands only).
    #[serde(rename = "RUNNING")]
    Running,
    /// Finished successfully.
    #[serde(rename = "SUCCEEDED")]
    Succeeded,
    /// Finished with an error in `command_error`.
    #[serde(rename = "FAILED")]
    Failed,
    /// A step was requested with hardware-manager versions this agent does not have.
    #[serde(rename = "CLEAN_VERSION_MISMATCH")]
    CleanVersionMismatch,
}

/// Progress of a long-running command (bytes written, installer percentage).
///
/// Serialized as the extra `command_progress` key, which Ironic ignores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandProgress {
    /// Units done so far (bytes for writes and erases).
    pub done: u64,
    /// Total units, when known.
    pub total: Option<u64>,
    /// A short human-readable description, e.g. the last installer line.
    pub message: Option<String>,
}

/// One entry of `GET /v1/commands/`: IPA's serialized command result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// Random UUID assigned when the command was accepted.
    pub id: String,
    /// Short name (`execute_clean_step`), or the dotted name for a failed sync command.
    pub command_name: String,
    /// Current status.
    pub command_status: CommandStatus,
    /// The error, when the command failed.
    pub command_error: Option<AgentError>,
    /// The command-specific payload.
    pub command_result: Option<Value>,
    /// Progress while a long command runs; omitted when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_progress: Option<CommandProgress>,
}

impl CommandResult {
    /// Whether the command has finished (any status but RUNNING).
    pub fn is_finished(&self) -> bool {
        self.command_status != CommandStatus::Running
    }
}

/// Wraps a bare string result the way IPA does.
///
/// Sync commands yield `{"result": "<text>"}`; async ones prefix the short
/// command name: `{"result": "<short>: <text>"}`. Other values pass through.
pub fn wrap_string_result(value: Value, short_name: &str, is_async: bool) -> Value {
    match value {
        Value::String(text) if is_async => {
            serde_json::json!({ "result": format!("{short_name}: {text}") })
        }
        Value::String(text) => serde_json::json!({ "result": text }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_uses_ipa_literals() {
        let text = serde_json::to_string(&CommandStatus::CleanVersionMismatch).expect("json");
        assert_eq!(text, "\"CLEAN_VERSION_MISMATCH\"");
    }

    #[test]
    fn string_results_are_wrapped_by_mode() {
        assert_eq!(
            wrap_string_result(json!("done"), "prepare_image", true),
            json!({"result": "prepare_image: done"})
        );
        assert_eq!(
            wrap_string_result(json!("done"), "sync", false),
            json!({"result": "done"})
        );
        assert_eq!(
            wrap_string_result(json!({"a": 1}), "x", true),
            json!({"a": 1})
        );
    }

    #[test]
    fn progress_is_omitted_when_absent() {
        let result = CommandResult {
            id: "1".into(),
            command_name: "sync".into(),
            command_status: CommandStatus::Succeeded,
            command_error: None,
            command_result: None,
            command_progress: None,
        };
        let json = serde_json::to_value(&result).expect("json");
        assert!(json.get("command_progress").is_none());
        assert_eq!(json["command_error"], Value::Null);
    }
}
