//! The agent's HTTP API (IPA's `/v1` REST API), served by actix-web.
//!
//! The plain logic lives in [`faults`], [`routes`], [`token`] and [`tls`]; `handlers`
//! is the actix glue and `actor` owns the server. Nothing here knows about disks or
//! D-Bus: commands are typed messages to the coordinator.

mod actor;
pub mod faults;
mod handlers;
pub mod routes;
pub mod tls;
pub mod token;

pub use actor::{
    bind_listener, ApiServer, ApiSettings, ApplyTlsSettings, InstallAgentToken, StartServing,
    StopServing, TlsFiles, TokenStore, CLIENT_DISCONNECT_TIMEOUT, CLIENT_REQUEST_TIMEOUT,
    KEEP_ALIVE_TIMEOUT,
};
pub use handlers::BODY_IDLE_TIMEOUT;
pub use tls::static_tls_files;
