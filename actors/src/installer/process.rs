//! A streaming subprocess runner for long installers.
//!
//! Unlike [`crate::host::CommandRunner`], which captures the output until the process
//! ends, [`run_streaming`] hands every output line to a callback as it arrives, so an
//! operator sees a hanging installer in the log while it hangs. Like the original agent
//! (`stderr=STDOUT`), stdout and stderr share one pipe, so lines keep the order the child
//! wrote them in and "the last line" is really the last one. Lines end at `\n` or `\r` (a
//! program that redraws a progress line in place with `\r` still yields one line per
//! redraw).
//!
//! The child is spawned with `kill_on_drop`: dropping the future kills it, and a cancel
//! signal kills it and waits for it, so no installer is ever left orphaned.

use std::io;
use std::process::Stdio;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// How a streamed process ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamedExit {
    /// The exit code, when the process exited normally.
    pub code: Option<i32>,
    /// The terminating signal, when a signal killed it.
    pub signal: Option<i32>,
    /// The last non-empty output line, trimmed.
    pub last_line: Option<String>,
    /// How many non-empty lines were seen.
    pub lines: usize,
    /// Whether the run was cancelled (the child was killed on request).
    pub cancelled: bool,
}

impl StreamedExit {
    /// Whether the process exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The exit code as the original agent reports it: the code, or `-<signal>` like
    /// Python's `Popen.returncode` for a signalled child.
    pub fn returncode(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => code,
            (None, Some(signal)) => -signal,
            (None, None) => -1,
        }
    }

    /// `code <returncode>`, plus the signal's name for a signalled child
    /// (`code -9 (killed by signal SIGKILL)`).
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (None, Some(signal)) => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| signal.to_string());
                format!("code {} (killed by signal {name})", self.returncode())
            }
            _ => format!("code {}", self.returncode()),
        }
    }
}

/// Splits a byte stream into lines at `\n` and `\r`, keeping a partial tail.
#[derive(Debug, Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Adds bytes, returning every completed line (without the terminator).
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in bytes {
            if byte == b'\n' || byte == b'\r' {
                lines.push(String::from_utf8_lossy(&self.pending).into_owned());
                self.pending.clear();
            } else {
                self.pending.push(byte);
            }
        }
        lines
    }

    /// The unterminated tail at end of stream, if any.
    fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            None
        } else {
            let line = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            Some(line)
        }
    }
}

/// Runs `command` to completion, calling `on_line` for every output line as it arrives.
///
/// Empty lines (for example the empty half of a `\r\n`) are not passed on. The command's
/// stdin is `/dev/null`; stdout and stderr both go to one pipe read here (whatever the
/// caller set). When `cancel` changes (any new value), the child is killed, reaped, and the
/// result has `cancelled` set. A spawn failure (e.g. the program does not exist) is the
/// `Err`.
pub async fn run_streaming<F>(
    mut command: tokio::process::Command,
    cancel: Option<watch::Receiver<u64>>,
    mut on_line: F,
) -> io::Result<StreamedExit>
where
    F: FnMut(&str),
{
    let (writer, mut reader) = tokio::net::unix::pipe::pipe()?;
    let writer = writer.into_blocking_fd()?;
    command
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .kill_on_drop(true);
    let mut cancel = cancel;
    if let Some(cancel) = cancel.as_mut() {
        // Only changes after the start count as a cancel request.
        cancel.borrow_and_update();
    }
    let spawned = command.spawn();
    // The command holds our copies of the pipe's write end: without dropping it, the
    // reader would never see end-of-file.
    drop(command);
    let mut child = spawned?;
    let mut split = LineSplitter::default();
    let mut buf = vec![0u8; 8192];
    let mut open = true;
    let mut exit = StreamedExit::default();

    let mut emit = |line: String, exit: &mut StreamedExit| {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return;
        }
        exit.lines += 1;
        exit.last_line = Some(trimmed.to_string());
        on_line(trimmed);
    };

    let cancelled = async move {
        match cancel {
            Some(mut cancel) => {
                if cancel.changed().await.is_err() {
                    // The sender is gone: nobody can cancel any more.
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(cancelled);

    while open {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    open = false;
                    if let Some(line) = split.finish() {
                        emit(line, &mut exit);
                    }
                }
                Ok(n) => {
                    for line in split.push(&buf[..n]) {
                        emit(line, &mut exit);
                    }
                }
            },
            () = &mut cancelled => {
                exit.cancelled = true;
                // start_kill fails only when the child was already reaped.
                let _ = child.start_kill();
                break;
            }
        }
    }

    let status = if exit.cancelled {
        child.wait().await?
    } else {
        tokio::select! {
            status = child.wait() => status?,
            () = &mut cancelled => {
                exit.cancelled = true;
                let _ = child.start_kill();
                child.wait().await?
            }
        }
    };
    exit.code = status.code();
    exit.signal = std::os::unix::process::ExitStatusExt::signal(&status);
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn exits_are_described_with_the_signal_name() {
        let exited = StreamedExit {
            code: Some(3),
            ..StreamedExit::default()
        };
        assert_eq!(exited.describe(), "code 3");
        let killed = StreamedExit {
            signal: Some(9),
            ..StreamedExit::default()
        };
        assert_eq!(killed.describe(), "code -9 (killed by signal SIGKILL)");
        let segv = StreamedExit {
            signal: Some(11),
            ..StreamedExit::default()
        };
        assert_eq!(segv.describe(), "code -11 (killed by signal SIGSEGV)");
    }

    fn sh(script: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn splitter_handles_cr_lf_and_partial_tails() {
        let mut split = LineSplitter::default();
        assert_eq!(split.push(b"a\nb"), ["a"]);
        assert_eq!(split.push(b"c\r\nd\re"), ["bc", "", "d"]);
        assert_eq!(split.finish().as_deref(), Some("e"));
        assert_eq!(split.finish(), None);
    }

    #[actix_rt::test]
    async fn lines_arrive_before_the_process_ends() {
        // The second line is only printed after the test saw the first one: a runner
        // that buffers to the end would deadlock here (and hit the timeout).
        let dir = tempfile::tempdir().expect("tempdir");
        let flag = dir.path().join("seen");
        let script = format!(
            "echo first; while [ ! -e {flag} ]; do sleep 0.05; done; echo second >&2; exit 4",
            flag = flag.display()
        );
        let mut seen = Vec::new();
        let run = run_streaming(sh(&script), None, |line| {
            if line == "first" {
                std::fs::write(&flag, b"").expect("flag");
            }
            seen.push(line.to_string());
        });
        let exit = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("streamed in time")
            .expect("spawn");
        assert_eq!(exit.code, Some(4));
        assert_eq!(exit.returncode(), 4);
        assert_eq!(exit.last_line.as_deref(), Some("second"));
        assert_eq!(seen, ["first", "second"]);
    }

    #[actix_rt::test]
    async fn last_line_skips_blank_lines_and_keeps_unterminated_tail() {
        let exit = run_streaming(sh("printf 'one\\n\\n  \\ntwo  \\r\\n\\n'"), None, |_| {})
            .await
            .expect("spawn");
        assert!(exit.success());
        assert_eq!(exit.last_line.as_deref(), Some("two"));
        assert_eq!(exit.lines, 2);
        let exit = run_streaming(sh("printf 'x\\ntail'; exit 1"), None, |_| {})
            .await
            .expect("spawn");
        assert_eq!(exit.last_line.as_deref(), Some("tail"));
        assert_eq!(exit.code, Some(1));
    }

    #[actix_rt::test]
    async fn stdout_and_stderr_keep_the_written_order() {
        // Both streams ready at once must not be reordered: "the last line" of a failed
        // installer is the one it wrote last, whichever stream it used.
        let script = "for i in 1 2 3 4 5 6 7 8; do echo out$i; echo err$i >&2; done; echo last >&2";
        let mut seen = Vec::new();
        let exit = run_streaming(sh(script), None, |line| seen.push(line.to_string()))
            .await
            .expect("spawn");
        let mut expected: Vec<String> = (1..=8)
            .flat_map(|i| [format!("out{i}"), format!("err{i}")])
            .collect();
        expected.push("last".to_string());
        assert_eq!(seen, expected);
        assert_eq!(exit.last_line.as_deref(), Some("last"));
    }

    #[actix_rt::test]
    async fn cancel_kills_and_reaps_the_child() {
        let (tx, rx) = watch::channel(0u64);
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!(
            "echo $$ > {}; echo started; exec sleep 60",
            pidfile.display()
        );
        let started = Instant::now();
        let run = run_streaming(sh(&script), Some(rx), |line| {
            if line == "started" {
                tx.send_modify(|generation| *generation += 1);
            }
        });
        let exit = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("cancel is prompt")
            .expect("spawn");
        assert!(exit.cancelled);
        assert_eq!(exit.signal, Some(9));
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pidfile).expect("pid");
        assert!(
            !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "the killed child was reaped"
        );
    }

    #[actix_rt::test]
    async fn dropping_the_future_kills_the_child() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
        let run = run_streaming(sh(&script), None, |_| {});
        let timed_out = tokio::time::timeout(Duration::from_millis(500), run).await;
        assert!(timed_out.is_err());
        let pid = std::fs::read_to_string(&pidfile).expect("pid");
        let proc_dir = format!("/proc/{}", pid.trim());
        // kill_on_drop sends SIGKILL; the reaper may take a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
            let gone_or_zombie = state.is_empty() || state.contains(") Z ");
            if gone_or_zombie {
                break;
            }
            assert!(Instant::now() < deadline, "child still running: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[actix_rt::test]
    async fn missing_program_is_a_spawn_error() {
        let command = tokio::process::Command::new("/nonexistent/coreos-installer");
        let err = run_streaming(command, None, |_| {}).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
