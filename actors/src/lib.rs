//! Actors, typed messages and the plain logic of ironic-agent.
//!
//! Per subsystem there is a logic module (plain structs and functions,
//! testable without an actor system) and an `actor.rs` holding the actor,
//! its messages and thin handlers. The binary wires the actors together.
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

pub mod api;
pub mod command;
pub mod config;
pub mod coordinator;
pub mod errors;
pub mod hardware;
pub mod host;
pub mod inspector;
pub mod installer;
pub mod ironic;
pub mod logs;
pub mod power;
pub mod probe;
pub mod state;
pub mod systemd;
pub mod tls_client;

/// The agent version reported in `/v1/status` and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
