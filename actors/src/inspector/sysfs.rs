//! Small readers for sysfs/procfs files, all tolerant of missing files.

use std::path::Path;

/// The file's content with surrounding whitespace trimmed; `None` when unreadable or empty.
pub fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The basename of a symlink's target (`device` → `0000:00:03.0`, `driver` → `i40e`).
pub fn link_basename(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
}

/// The names in a directory, sorted; empty when it cannot be read.
pub fn list_dir(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
