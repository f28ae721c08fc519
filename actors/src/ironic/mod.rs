//! Ironic client: lookup, heartbeat, auto-TLS and the inspection callback.

mod actor;

pub use actor::{ForceHeartbeat, IronicClient};
