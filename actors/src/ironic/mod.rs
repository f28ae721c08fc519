//! Ironic client: lookup, heartbeat, auto-TLS and the inspection callback.
//!
//! Logic modules (`client`, `timing`, `token`, `tls`, `callback`) are plain code;
//! `actor` holds the actor and its messages; `startup` is the start-up sequence.

mod actor;
pub mod callback;
pub mod client;
pub mod startup;
pub mod timing;
pub mod tls;
pub mod token;

pub use actor::{
    ForceHeartbeat, GetApiVersion, GetHeartbeatStats, HeartbeatStats, Inspect, IronicClient,
    Lookup, SharedJitter, StartHeartbeating, StopHeartbeating, TokenRenewal,
};
pub use client::{ApiVersion, IronicError, LookupConfig, LookupResult};
