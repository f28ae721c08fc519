//! Progress of the running write or erase (bytes done / total).
//!
//! The installer runs one long step at a time, so one slot per installer is
//! enough: the step modules update it, the coordinator asks for it with
//! [`crate::installer::GetProgress`] and copies it into the RUNNING command's
//! `command_progress` when results are read, and the log shows it at most
//! every [`LOG_EVERY`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::command::CommandProgress;

/// Shortest gap between two progress log lines.
pub const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    current: Option<CommandProgress>,
    last_log: Instant,
}

/// A shared progress slot. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ProgressSink(Arc<Mutex<State>>);

impl Default for ProgressSink {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(State {
            current: None,
            last_log: Instant::now(),
        })))
    }
}

impl ProgressSink {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking a new piece of work.
    pub fn start(&self, message: impl Into<String>, total: Option<u64>) {
        let message = message.into();
        tracing::info!(total = ?total, "{message}");
        let mut state = self.lock();
        state.current = Some(CommandProgress {
            done: 0,
            total,
            message: Some(message),
        });
        state.last_log = Instant::now();
    }

    /// Records `done` units; logs at most every [`LOG_EVERY`].
    pub fn update(&self, done: u64) {
        let mut state = self.lock();
        let now = Instant::now();
        let due = now.duration_since(state.last_log) >= LOG_EVERY;
        if let Some(current) = state.current.as_mut() {
            current.done = done;
            if due {
                let pct = current
                    .total
                    .filter(|t| *t > 0)
                    .map(|t| format!(" ({}%)", done * 100 / t))
                    .unwrap_or_default();
                tracing::info!(
                    "{}: {done} of {} bytes{pct}",
                    current.message.as_deref().unwrap_or("progress"),
                    current
                        .total
                        .map_or_else(|| "?".to_string(), |t| t.to_string())
                );
            }
        }
        if due {
            state.last_log = now;
        }
    }

    /// Replaces the whole progress (a source that reports done, total and message at
    /// once, e.g. coreos-installer's progress lines); not logged.
    pub fn replace(&self, progress: CommandProgress) {
        self.lock().current = Some(progress);
    }

    /// Ends tracking.
    pub fn finish(&self) {
        self.lock().current = None;
    }

    /// The current progress, if work is running.
    pub fn snapshot(&self) -> Option<CommandProgress> {
        self.lock().current.clone()
    }
}

/// The slot of one installer instance (one per agent process; several in tests).
pub fn for_instance(instance: usize) -> ProgressSink {
    static SLOTS: OnceLock<Mutex<HashMap<usize, ProgressSink>>> = OnceLock::new();
    SLOTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(instance)
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_visible_until_finished() {
        let sink = ProgressSink::default();
        assert!(sink.snapshot().is_none());
        sink.start("writing", Some(10));
        sink.update(4);
        assert_eq!(
            sink.snapshot().map(|p| (p.done, p.total)),
            Some((4, Some(10)))
        );
        sink.finish();
        assert!(sink.snapshot().is_none());
    }
}
