//! Logging set-up: `tracing` to stderr, where journald picks it up.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `debug` lowers the level to DEBUG.
///
/// `RUST_LOG` still wins when set, for ad-hoc filtering.
pub fn init(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
