//! IPA-compatible error objects.
//!
//! Ironic reads two error shapes from the agent: the HTTP fault body
//! (`{"faultcode", "faultstring"}`) and the `command_error` object of a
//! command result (`{"type", "code", "message", "details"}`). [`AgentError`]
//! is the one type behind both.

use serde::{Deserialize, Serialize};

/// An error the agent reports to Ironic, shaped like IPA's `RESTError`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}: {details}")]
pub struct AgentError {
    /// The error class name Ironic sees, e.g. `DeploymentError`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The HTTP-like status code of the error.
    pub code: u16,
    /// A fixed text for the error class.
    pub message: String,
    /// The specific text; Ironic shows this one.
    pub details: String,
}

/// Which family of steps failed, for the step-failure error classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Cleaning steps (`clean.*`).
    Clean,
    /// Deploy steps (`deploy.*`).
    Deploy,
    /// Service steps (`service.*`).
    Service,
}

impl StepKind {
    /// The lower-case word used in command and key names (`clean`, `deploy`, `service`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Clean => "clean",
            StepKind::Deploy => "deploy",
            StepKind::Service => "service",
        }
    }
}

impl AgentError {
    /// Builds an error from its four parts.
    pub fn new(
        error_type: impl Into<String>,
        code: u16,
        message: impl Into<String>,
        details: impl Into<String>,
    ) -> Self {
        Self {
            error_type: error_type.into(),
            code,
            message: message.into(),
            details: details.into(),
        }
    }

    /// 400: the command name or shape is wrong.
    pub fn invalid_command(details: impl Into<String>) -> Self {
        Self::new("InvalidCommandError", 400, "Invalid command", details)
    }

    /// 400: a validator rejected the command parameters.
    pub fn invalid_params(details: impl Into<String>) -> Self {
        Self::new(
            "InvalidCommandParamsError",
            400,
            "Invalid command parameters",
            details,
        )
    }

    /// 404: an extension, command result or other object does not exist.
    pub fn not_found(details: impl Into<String>) -> Self {
        Self::new("RequestedObjectNotFoundError", 404, "Not found", details)
    }

    /// 409: another command is still running.
    pub fn busy(running_command: &str) -> Self {
        Self::new(
            "AgentIsBusy",
            409,
            "Agent is busy",
            format!("executing command {running_command}"),
        )
    }

    /// 500: a command failed in an unexpected way.
    pub fn execution(details: impl Into<String>) -> Self {
        Self::new(
            "CommandExecutionError",
            500,
            "Command execution failed",
            details,
        )
    }

    /// 409: the step versions Ironic sent do not match this agent's managers.
    pub fn version_mismatch(current: &serde_json::Value, ironic: &serde_json::Value) -> Self {
        Self::new(
            "VersionMismatch",
            409,
            "Hardware managers version mismatch, reload agent with correct version",
            format!("Current versions: {current}, versions used by ironic: {ironic}"),
        )
    }

    /// 500: an unexpected failure inside a clean, deploy or service step.
    pub fn step_failed(kind: StepKind, details: impl Into<String>) -> Self {
        let (error_type, message) = match kind {
            StepKind::Clean => ("CleaningError", "Clean step failed"),
            StepKind::Deploy => ("DeploymentError", "Deploy step failed"),
            StepKind::Service => ("ServicingError", "Service step failed"),
        };
        Self::new(error_type, 500, message, details)
    }

    /// 404: no block device fits the root-device rules.
    pub fn device_not_found(details: impl Into<String>) -> Self {
        Self::new(
            "DeviceNotFound",
            404,
            "Error finding the disk or partition device to deploy the image onto",
            details,
        )
    }

    /// 500: no hardware manager has the method (IPA's `HardwareManagerMethodNotFound`).
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            "HardwareManagerMethodNotFound",
            500,
            "No HardwareManager found to handle method",
            format!("Could not find method: {method}"),
        )
    }

    /// 503: the agent is shutting down and accepts no new commands.
    pub fn shutting_down() -> Self {
        Self::new(
            "AgentShuttingDown",
            503,
            "Service unavailable",
            "the agent is shutting down and accepts no new commands",
        )
    }

    /// Whether a validator error is of the "invalid request content" kind
    /// (HTTP 400) rather than a failure stored as a FAILED result.
    pub fn is_invalid_request(&self) -> bool {
        self.code == 400
    }

    /// Whether this is the version-mismatch error (stored as `CLEAN_VERSION_MISMATCH`).
    pub fn is_version_mismatch(&self) -> bool {
        self.error_type == "VersionMismatch"
    }

    /// The `faultstring` of the HTTP fault body: `<message>: <details>`.
    pub fn faultstring(&self) -> String {
        format!("{}: {}", self.message, self.details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_ipa_field_names() {
        let err = AgentError::not_found("Extension with id foo not found.");
        let json = serde_json::to_value(&err).expect("serialize");
        assert_eq!(json["type"], "RequestedObjectNotFoundError");
        assert_eq!(json["code"], 404);
        assert_eq!(
            err.faultstring(),
            "Not found: Extension with id foo not found."
        );
    }

    #[test]
    fn busy_faultstring_contains_ironic_marker() {
        let err = AgentError::busy("execute_clean_step");
        assert!(err.faultstring().contains("Agent is busy"));
        assert_eq!(err.code, 409);
    }
}
