//! `chroot NEWROOT [COMMAND [ARG]...]` when the binary is invoked as `chroot`.
//!
//! The agent runs host tools as `chroot /mnt/coreos <tool> …`. The container image
//! holds a statically linked agent and no C library, so its `/usr/sbin/chroot` is a
//! link to the agent, which then behaves as coreutils' `chroot` does for that use:
//! exit 125 when the chroot itself fails, 126 when the command cannot be run, 127
//! when it does not exist (the installer reads these), and the environment is kept.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Exit status when `chroot` itself fails.
pub const EXIT_CANCELED: u8 = 125;
/// Exit status when the command exists but cannot be run.
pub const EXIT_CANNOT_INVOKE: u8 = 126;
/// Exit status when the command is not found.
pub const EXIT_ENOENT: u8 = 127;

/// Whether the program was invoked under the name `chroot` (a link to the agent).
pub fn invoked_as_chroot(argv0: Option<&OsStr>) -> bool {
    argv0
        .and_then(|arg| Path::new(arg).file_name())
        .is_some_and(|name| name == "chroot")
}

/// Runs the applet with the arguments after argv[0]; returns only on failure (or for
/// `--help`/`--version`), with the exit status to use.
pub fn run(args: Vec<OsString>) -> u8 {
    let mut args = args.into_iter();
    let Some(new_root) = args.next() else {
        eprintln!("chroot: missing operand");
        return EXIT_CANCELED;
    };
    match new_root.to_str() {
        Some("--version") => {
            println!(
                "chroot (ironic-agent {})",
                ironic_agent_actors::AGENT_VERSION
            );
            return 0;
        }
        Some("--help") => {
            println!("Usage: chroot NEWROOT [COMMAND [ARG]...]");
            return 0;
        }
        Some(option) if option.starts_with('-') => {
            eprintln!("chroot: unsupported option '{option}' (only NEWROOT [COMMAND [ARG]...])");
            return EXIT_CANCELED;
        }
        _ => {}
    }
    if let Err(err) = std::os::unix::fs::chroot(&new_root) {
        eprintln!(
            "chroot: cannot change root directory to '{}': {}",
            new_root.to_string_lossy(),
            describe(&err)
        );
        return EXIT_CANCELED;
    }
    if let Err(err) = std::env::set_current_dir("/") {
        eprintln!("chroot: cannot change directory to '/': {}", describe(&err));
        return EXIT_CANCELED;
    }
    let (program, rest): (OsString, Vec<OsString>) = match args.next() {
        Some(program) => (program, args.collect()),
        None => (
            std::env::var_os("SHELL").unwrap_or_else(|| "/bin/sh".into()),
            vec!["-i".into()],
        ),
    };
    let err = Command::new(&program).args(rest).exec();
    eprintln!(
        "chroot: failed to run command '{}': {}",
        program.to_string_lossy(),
        describe(&err)
    );
    if err.kind() == std::io::ErrorKind::NotFound {
        EXIT_ENOENT
    } else {
        EXIT_CANNOT_INVOKE
    }
}

/// The OS error text without Rust's " (os error N)" suffix, as C tools print it.
fn describe(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_its_name_only_as_the_file_name_chroot() {
        assert!(invoked_as_chroot(Some(OsStr::new("/usr/sbin/chroot"))));
        assert!(invoked_as_chroot(Some(OsStr::new("chroot"))));
        assert!(!invoked_as_chroot(Some(OsStr::new(
            "/usr/bin/ironic-agent"
        ))));
        assert!(!invoked_as_chroot(Some(OsStr::new("/chroot/ironic-agent"))));
        assert!(!invoked_as_chroot(None));
    }

    #[test]
    fn usage_errors_are_exit_125_without_touching_the_root() {
        assert_eq!(run(vec![]), EXIT_CANCELED);
        assert_eq!(
            run(vec!["--userspec=1:1".into(), "/".into()]),
            EXIT_CANCELED
        );
        assert_eq!(run(vec!["--version".into()]), 0);
    }

    #[test]
    fn os_error_suffix_is_dropped() {
        let err = std::io::Error::from_raw_os_error(2);
        assert_eq!(describe(&err), "No such file or directory");
    }
}
