//! Coordinator: owns the command registry, sequences steps and forwards results.
//!
//! - [`registry`] holds stored results, the busy rule and IPA's naming rules;
//! - [`commands`] holds the command table, validators and command bodies;
//! - `log.collect_system_logs` uses [`crate::logs`];
//! - the actor itself, with the messages the API and the wiring send it.

mod actor;
pub mod commands;
pub mod registry;

pub use actor::{
    ApplyLookupConfig, AttachApiControl, CacheNode, Coordinator, DrainCommands,
    EnableStatePersistence, GetCachedNode, GetCommand, ListCommands, Peers, ProbeAll, RedactInLogs,
    RunCommand,
};
pub use commands::rescued_marker_path;
