//! Coordinator: owns the command registry, sequences steps and forwards results.

mod actor;

pub use actor::{
    CacheNode, Coordinator, DrainCommands, GetCommand, ListCommands, Peers, ProbeAll, RunCommand,
};
