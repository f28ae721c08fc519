//! A small INI parser following oslo.config's rules (`oslo_config/iniparser.py`).
//!
//! - `[section]` starts a section; an assignment before any section is an error.
//! - `key = value` or `key: value`, split on whichever of `=` / `:` comes first; key and
//!   value are stripped; a value wholly enclosed in matching `"` or `'` loses them.
//! - Lines starting with `#` or `;` are comments. There are no inline comments: `#` inside
//!   a value is part of the value.
//! - A line starting with a space or a tab continues the previous value (joined with a
//!   newline); a blank line ends it. An indented line with no value to continue is an
//!   error, as in oslo.
//!
//! Errors name the file and the line. They never quote the line itself, because it may
//! hold a secret.
//!
//! (`rust-ini` and `configparser` were considered: neither keeps line numbers for values,
//! which the "bad value names file and line" rule needs, and their comment and
//! continuation rules differ from oslo's.)

use std::path::{Path, PathBuf};

use super::ConfigError;

/// One assignment from an INI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniEntry {
    /// The section it appeared in, verbatim (`DEFAULT`, `mdns`, …).
    pub section: String,
    /// The option name.
    pub key: String,
    /// The value, continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// Reads and parses one INI file.
pub fn read(path: &Path) -> Result<Vec<IniEntry>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        what: "config file",
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line: valid.iter().filter(|b| **b == b'\n').count() + 1,
            message: "not valid UTF-8".to_string(),
        }
    })?;
    parse(&text, path)
}

/// An assignment being collected (it may continue on the next lines).
struct Pending {
    key: String,
    value: Vec<String>,
    line: usize,
}

/// Parses INI text; `path` is only used in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<IniEntry>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let syntax = |line: usize, message: &str| ConfigError::Syntax {
        path: PathBuf::from(path),
        line,
        message: message.to_string(),
    };

    let mut entries = Vec::new();
    let mut section: Option<String> = None;
    let mut pending: Option<Pending> = None;

    let mut flush =
        |pending: &mut Option<Pending>, section: &Option<String>| -> Result<(), ConfigError> {
            if let Some(p) = pending.take() {
                let Some(section) = section else {
                    return Err(syntax(
                        p.line,
                        "option outside any section (add a [DEFAULT] header first)",
                    ));
                };
                entries.push(IniEntry {
                    section: section.clone(),
                    key: p.key,
                    value: p.value.join("\n"),
                    line: p.line,
                });
            }
            Ok(())
        };

    for (index, raw) in text.lines().enumerate() {
        let lineno = index + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            // A blank line ends a multi-line value.
            flush(&mut pending, &section)?;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match pending.as_mut() {
                Some(p) => p.value.push(line.trim_start().to_string()),
                None => return Err(syntax(
                    lineno,
                    "indented line does not continue any option (remove the leading whitespace)",
                )),
            }
            continue;
        }
        flush(&mut pending, &section)?;

        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(syntax(lineno, "section header is missing its closing ']'"));
            };
            if name.is_empty() {
                return Err(syntax(lineno, "empty section name"));
            }
            section = Some(name.to_string());
        } else if line.starts_with(['#', ';']) {
            // Comment.
        } else {
            let (key, value) = split_key_value(line)
                .ok_or_else(|| syntax(lineno, "expected 'key = value' or 'key: value'"))?;
            if key.is_empty() {
                return Err(syntax(lineno, "empty option name"));
            }
            pending = Some(Pending {
                key: key.to_string(),
                value: vec![value.to_string()],
                line: lineno,
            });
        }
    }
    flush(&mut pending, &section)?;
    Ok(entries)
}

/// Splits `key = value` / `key: value` at the first separator, strips both sides and
/// removes matching quotes around the value.
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let at = line.find(['=', ':'])?;
    let key = line[..at].trim();
    let value = line[at + 1..].trim();
    Some((key, unquote(value)))
}

/// Removes one pair of matching `"` or `'` around a whole value.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() == 1 && value.starts_with(quote) {
            return "";
        }
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String, String, usize)> {
        parse(text, Path::new("/t.conf"))
            .expect("parses")
            .into_iter()
            .map(|e| (e.section, e.key, e.value, e.line))
            .collect()
    }

    fn err(text: &str) -> String {
        match parse(text, Path::new("/etc/x/t.conf")) {
            Ok(entries) => panic!("expected an error, got {entries:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn e(section: &str, key: &str, value: &str, line: usize) -> (String, String, String, usize) {
        (section.into(), key.into(), value.into(), line)
    }

    #[test]
    fn config_ini_basic_shapes() {
        let text =
            "\u{feff}# comment\n; other comment\n[DEFAULT]\napi_url = http://192.0.2.1:6385\n\
                    insecure: True\nempty =\nquoted = \"a b\"\nsingle = 'x'\nhash = a#b ; c\n\
                    colon_later = a:b\nequals_later: a=b\n\n[mdns]\nuse_mdns=1\r\n";
        assert_eq!(
            ok(text),
            vec![
                e("DEFAULT", "api_url", "http://192.0.2.1:6385", 4),
                e("DEFAULT", "insecure", "True", 5),
                e("DEFAULT", "empty", "", 6),
                e("DEFAULT", "quoted", "a b", 7),
                e("DEFAULT", "single", "x", 8),
                e("DEFAULT", "hash", "a#b ; c", 9),
                e("DEFAULT", "colon_later", "a:b", 10),
                e("DEFAULT", "equals_later", "a=b", 11),
                e("mdns", "use_mdns", "1", 14),
            ]
        );
    }

    #[test]
    fn config_ini_continuation_lines() {
        let text = "[DEFAULT]\ninspection_collectors = default,\n    logs\n\tlldp\nnext = 1\n";
        assert_eq!(
            ok(text),
            vec![
                e(
                    "DEFAULT",
                    "inspection_collectors",
                    "default,\nlogs\nlldp",
                    2
                ),
                e("DEFAULT", "next", "1", 5),
            ]
        );
        // A blank line ends the value; an indented line after it is an error.
        assert_eq!(err("[DEFAULT]\na = 1\n\n  b\n"), "/etc/x/t.conf:4: indented line does not continue any option (remove the leading whitespace)");
    }

    #[test]
    fn config_ini_errors_name_file_and_line() {
        assert_eq!(
            err("[DEFAULT]\nok = 1\n[broken\n"),
            "/etc/x/t.conf:3: section header is missing its closing ']'"
        );
        assert_eq!(err("[]\n"), "/etc/x/t.conf:1: empty section name");
        assert_eq!(
            err("[DEFAULT]\n\nagent_token s3cret\n"),
            "/etc/x/t.conf:3: expected 'key = value' or 'key: value'"
        );
        assert_eq!(
            err("[DEFAULT]\n= v\n"),
            "/etc/x/t.conf:2: empty option name"
        );
        assert_eq!(
            err("# hi\napi_url = x\n"),
            "/etc/x/t.conf:2: option outside any section (add a [DEFAULT] header first)"
        );
        assert_eq!(
            err("  [DEFAULT]\n"),
            "/etc/x/t.conf:1: indented line does not continue any option (remove the leading whitespace)"
        );
        // A syntax error never echoes the line (it may hold the token).
        assert!(!err("[DEFAULT]\nagent_token s3cret\n").contains("s3cret"));
    }

    #[test]
    fn config_ini_invalid_utf8_names_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.conf");
        std::fs::write(&path, b"[DEFAULT]\nok = 1\nbad = \xff\xfe\n").expect("write");
        let msg = read(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(msg, format!("{}:3: not valid UTF-8", path.display()));
    }

    #[test]
    fn config_ini_unquote() {
        assert_eq!(unquote("\"a\""), "a");
        assert_eq!(unquote("'a'"), "a");
        assert_eq!(unquote("\""), "");
        assert_eq!(unquote("\"a'"), "\"a'");
        assert_eq!(unquote("a\""), "a\"");
    }
}
