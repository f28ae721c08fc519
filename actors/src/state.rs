//! Restart recovery: the minimal state an agent needs to continue after its process
//! (or container) was restarted mid-operation — beyond IPA, which loses its agent token.
//!
//! Two files under `paths.state_dir`, both 0600 and written atomically (write to a
//! temporary file, fsync, rename, fsync the directory):
//! - `session.json`: boot id, node UUID, agent token, callback URL, whether the
//!   auto-TLS certificate (`agent.crt`/`agent.key`, same directory) is in use;
//! - `commands.json`: boot id and the command history with each command's outcome,
//!   plus a label (e.g. `deploy step test_sleep`) for the running one.
//!
//! State written during another boot (`<proc_root>/sys/kernel/random/boot_id` differs)
//! is ignored: the host's `/run` is a tmpfs, so this only matters when the state
//! directory is configured on persistent storage.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::command::{CommandResult, CommandStatus};
use crate::config::Secret;
use crate::errors::AgentError;

/// The session file's name.
pub const SESSION_FILE: &str = "session.json";
/// The command history file's name.
pub const COMMANDS_FILE: &str = "commands.json";

/// The current boot id (`<proc_root>/sys/kernel/random/boot_id`), or `""` when unreadable.
pub fn boot_id(proc_root: &Path) -> String {
    std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}

/// What the start-up sequence keeps between runs.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// The boot this was written in.
    pub boot_id: String,
    /// The node from the lookup.
    pub node_uuid: String,
    /// The agent token (never logged: [`Session`]'s `Debug` hides it).
    pub agent_token: Option<String>,
    /// The URL sent in heartbeats.
    pub callback_url: String,
    /// Whether `agent.crt`/`agent.key` in the state directory are served.
    #[serde(default)]
    pub auto_tls: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("boot_id", &self.boot_id)
            .field("node_uuid", &self.node_uuid)
            .field(
                "agent_token",
                &self.agent_token.as_ref().map(|_| Secret::REDACTED),
            )
            .field("callback_url", &self.callback_url)
            .field("auto_tls", &self.auto_tls)
            .finish()
    }
}

impl Session {
    /// The held token as a [`Secret`].
    pub fn token(&self) -> Option<Secret> {
        self.agent_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Secret::new)
    }
}

/// The persisted command history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    /// The boot this was written in.
    pub boot_id: String,
    /// Every command result, in order.
    pub commands: Vec<CommandResult>,
    /// Labels of commands by id (`deploy step test_sleep`), for the restart message.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl History {
    /// Marks a command left RUNNING by a previous process as FAILED with
    /// "agent restarted during <label>". Returns how many were marked.
    pub fn fail_interrupted(&mut self) -> usize {
        let mut marked = 0;
        for result in &mut self.commands {
            if result.command_status == CommandStatus::Running {
                let label = self
                    .labels
                    .get(&result.id)
                    .cloned()
                    .unwrap_or_else(|| result.command_name.clone());
                result.command_status = CommandStatus::Failed;
                result.command_error = Some(restarted_error(&label));
                result.command_result = None;
                result.command_progress = None;
                marked += 1;
            }
        }
        marked
    }
}

/// The error reported for a command the agent was running when it was restarted.
pub fn restarted_error(label: &str) -> AgentError {
    AgentError::new(
        "AgentRestarted",
        500,
        "Command interrupted",
        format!("agent restarted during {label}"),
    )
}

/// A readable label for a command: `deploy step <name>` for step commands,
/// else the short command name.
pub fn command_label(
    full_name: &str,
    params: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let short = full_name.split_once('.').map_or(full_name, |(_, s)| s);
    let kind = short
        .strip_prefix("execute_")
        .and_then(|rest| rest.strip_suffix("_step"));
    let step = params
        .get("step")
        .and_then(|s| s.get("step"))
        .and_then(|s| s.as_str());
    match (kind, step) {
        (Some(kind), Some(step)) => format!("{kind} step {step}"),
        _ => short.to_string(),
    }
}

/// Reading or writing state failed.
#[derive(Debug, thiserror::Error)]
#[error("state file {path}: {source}")]
pub struct StateError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Writes `contents` to `path` atomically with mode 0600: a temporary file in the same
/// directory, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), StateError> {
    let wrap = |source| StateError {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(wrap)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(wrap)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "state file unreadable; ignoring");
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "state file corrupt; ignoring");
            None
        }
    }
}

/// The state directory of one agent.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    boot_id: String,
}

impl StateStore {
    /// A store in `dir` for the boot read from `proc_root`.
    pub fn new(dir: &Path, proc_root: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            boot_id: boot_id(proc_root),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The session of this boot, if one was saved.
    pub fn load_session(&self) -> Option<Session> {
        let session: Session = read_json(&self.dir.join(SESSION_FILE))?;
        if session.boot_id != self.boot_id {
            tracing::info!("agent state from another boot; ignoring it");
            return None;
        }
        Some(session)
    }

    /// Saves the session (stamped with this boot).
    pub fn save_session(&self, session: &Session) -> Result<(), StateError> {
        let mut session = session.clone();
        session.boot_id = self.boot_id.clone();
        let text = serde_json::to_vec(&session).expect("a session serializes");
        write_atomic(&self.dir.join(SESSION_FILE), &text)
    }

    /// The command history of this boot, if one was saved.
    pub fn load_history(&self) -> Option<History> {
        let history: History = read_json(&self.dir.join(COMMANDS_FILE))?;
        (history.boot_id == self.boot_id).then_some(history)
    }

    /// Saves the command history (stamped with this boot).
    pub fn save_history(
        &self,
        commands: Vec<CommandResult>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StateError> {
        let history = History {
            boot_id: self.boot_id.clone(),
            commands,
            labels: labels.clone(),
        };
        let text = serde_json::to_vec(&history).expect("a history serializes");
        write_atomic(&self.dir.join(COMMANDS_FILE), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn store(root: &Path, boot: &str) -> StateStore {
        let proc_root = root.join("proc");
        std::fs::create_dir_all(proc_root.join("sys/kernel/random")).unwrap();
        std::fs::write(
            proc_root.join("sys/kernel/random/boot_id"),
            format!("{boot}\n"),
        )
        .unwrap();
        StateStore::new(&root.join("state"), &proc_root)
    }

    fn session() -> Session {
        Session {
            boot_id: String::new(),
            node_uuid: "n1".into(),
            agent_token: Some("t".repeat(40)),
            callback_url: "https://192.0.2.1:9999".into(),
            auto_tls: true,
        }
    }

    #[test]
    fn session_round_trips_0600_and_same_boot_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "boot-a");
        assert!(a.load_session().is_none());
        a.save_session(&session()).unwrap();
        let loaded = a.load_session().expect("same boot");
        assert_eq!(loaded.node_uuid, "n1");
        assert_eq!(loaded.boot_id, "boot-a");
        let mode = std::fs::metadata(a.dir().join(SESSION_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(a.dir()).unwrap().count(), 1);
        let b = store(dir.path(), "boot-b");
        assert!(b.load_session().is_none());
        assert!(!format!("{loaded:?}").contains("tttt"));
    }

    #[test]
    fn corrupt_state_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "x");
        std::fs::create_dir_all(a.dir()).unwrap();
        std::fs::write(a.dir().join(SESSION_FILE), b"{not json").unwrap();
        std::fs::write(a.dir().join(COMMANDS_FILE), [0xff, 0xfe]).unwrap();
        assert!(a.load_session().is_none());
        assert!(a.load_history().is_none());
    }

    #[test]
    fn interrupted_command_becomes_failed_with_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), "x");
        let mut params = serde_json::Map::new();
        params.insert("step".into(), serde_json::json!({"step": "test_sleep"}));
        let label = command_label("deploy.execute_deploy_step", &params);
        assert_eq!(label, "deploy step test_sleep");
        assert_eq!(command_label("standby.sync", &params), "sync");
        let running =
            crate::coordinator::registry::running_result("7".into(), "deploy.execute_deploy_step");
        let labels = BTreeMap::from([("7".to_string(), label)]);
        a.save_history(vec![running], &labels).unwrap();
        let mut history = a.load_history().unwrap();
        assert_eq!(history.fail_interrupted(), 1);
        let result = &history.commands[0];
        assert_eq!(result.command_status, CommandStatus::Failed);
        assert_eq!(
            result.command_error.as_ref().unwrap().details,
            "agent restarted during deploy step test_sleep"
        );
        assert_eq!(history.fail_interrupted(), 0);
    }
}
