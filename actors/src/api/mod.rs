//! The agent's HTTP API (IPA's `/v1` REST API), served by actix-web.

mod actor;

pub use actor::{
    ApiServer, ApiSettings, InstallAgentToken, StartServing, StopServing, TlsFiles, TokenStore,
};
