//! Fixture trees for the inspector's unit tests.

use std::path::{Path, PathBuf};

/// A temporary directory that tests fill with sysfs/procfs/dev files and links.
#[derive(Debug)]
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `<root>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file, creating parents.
    pub fn file(&self, rel: &str, content: &str) {
        self.bytes(rel, content.as_bytes());
    }

    /// Writes a binary file, creating parents.
    pub fn bytes(&self, rel: &str, content: &[u8]) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    /// Creates a directory and its parents.
    pub fn dir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).expect("mkdir");
    }

    /// Creates a symlink `rel` → `target` (target as given, usually relative).
    pub fn link(&self, rel: &str, target: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, path).expect("symlink");
    }
}

/// A [`CommandRunner`](crate::host::CommandRunner) stand-in returning canned output.
///
/// An answer is looked up by the whole command line first, then by the program
/// name; a command with no answer fails to spawn (`NotFound`), like a missing tool.
#[derive(Debug, Default)]
pub struct CannedRunner {
    answers: std::collections::BTreeMap<String, crate::host::CommandOutput>,
    calls: std::sync::Mutex<Vec<String>>,
}

impl CannedRunner {
    /// Adds an answer for a command line or program name.
    pub fn with(mut self, key: &str, code: i32, stdout: &str) -> Self {
        self.answers.insert(
            key.to_string(),
            crate::host::CommandOutput {
                code: Some(code),
                signal: None,
                stdout: stdout.to_string(),
                stderr: String::new(),
            },
        );
        self
    }

    /// Adds an answer with standard error output.
    pub fn with_stderr(mut self, key: &str, code: i32, stderr: &str) -> Self {
        self.answers.insert(
            key.to_string(),
            crate::host::CommandOutput {
                code: Some(code),
                signal: None,
                stdout: String::new(),
                stderr: stderr.to_string(),
            },
        );
        self
    }

    /// The command lines run so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

impl crate::host::CommandRunner for CannedRunner {
    fn run(
        &self,
        spec: crate::host::CommandSpec,
    ) -> crate::host::BoxFuture<'static, std::io::Result<crate::host::CommandOutput>> {
        let line = spec.to_string();
        self.calls.lock().expect("lock").push(line.clone());
        let answer = self
            .answers
            .get(&line)
            .or_else(|| self.answers.get(&spec.program))
            .cloned();
        Box::pin(async move {
            answer.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("{line}: not found"))
            })
        })
    }
}
