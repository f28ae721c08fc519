//! Figures the reliability tests leave for `scripts/reliability-report.py`, which writes
//! `docs/reliability.md` from them: `target/reliability/<name>.json` of the workspace.
//! Also included by the actors crate's tests (`#[path]`), hence no other dependency.

use std::path::{Path, PathBuf};

/// `target/reliability/` of the workspace (the directory holding `Cargo.lock`).
pub fn records_dir() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        dir = dir.parent().expect("a workspace root above the crate");
    }
    dir.join("target/reliability")
}

/// Writes one case's figures to `target/reliability/<name>.json`.
pub fn record(name: &str, figures: &serde_json::Value) {
    let dir = records_dir();
    std::fs::create_dir_all(&dir).expect("mkdir target/reliability");
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(figures).expect("json"),
    )
    .expect("write the figures");
}
