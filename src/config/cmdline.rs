//! Kernel command line parsing (`/proc/cmdline`).
//!
//! IPA splits on whitespace, ignores tokens without `=`, and splits each token on the
//! first `=`, with no quote handling. We follow the kernel's own quoting on top of that:
//! a double quote toggles "inside quotes", where whitespace does not split, and the quote
//! characters themselves are dropped. So `ipa-api-url="http://a,http://b"` gives
//! `http://a,http://b`, and `"foo=a b"` or `foo="a b"` give `foo` = `a b`. Single quotes
//! are ordinary characters, as for the kernel. An unterminated quote runs to the end of
//! the line (and is reported).

/// The result of splitting a kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelParams {
    /// `(name, value)` for every token holding `=`, in command-line order; the value may
    /// be empty.
    pub params: Vec<(String, String)>,
    /// Whether a double quote was left open.
    pub unterminated_quote: bool,
}

/// Splits the command line into tokens, honouring double quotes.
fn tokens(cmdline: &str) -> (Vec<String>, bool) {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut started = false;
    let mut in_quote = false;
    for ch in cmdline.chars() {
        if ch == '"' {
            in_quote = !in_quote;
            started = true;
        } else if ch.is_whitespace() && !in_quote {
            if started {
                tokens.push(std::mem::take(&mut current));
                started = false;
            }
        } else {
            current.push(ch);
            started = true;
        }
    }
    if started {
        tokens.push(current);
    }
    (tokens, in_quote)
}

/// Parses a kernel command line into `name=value` parameters. Tokens without `=` (and
/// with an empty name) are ignored.
pub fn parse(cmdline: &str) -> KernelParams {
    // /proc/cmdline ends in a newline; it must not end up inside an unterminated quote.
    let (tokens, unterminated_quote) = tokens(cmdline.trim_end());
    let params = tokens
        .into_iter()
        .filter_map(|token| {
            let (name, value) = token.split_once('=')?;
            (!name.is_empty()).then(|| (name.to_string(), value.to_string()))
        })
        .collect();
    KernelParams {
        params,
        unterminated_quote,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(cmdline: &str) -> Vec<(String, String)> {
        parse(cmdline).params
    }

    fn p(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn config_cmdline_plain() {
        assert_eq!(
            pairs("BOOT_IMAGE=/vmlinuz ro quiet ipa-api-url=http://192.0.2.1:6385 ipa-debug=1\n"),
            vec![
                p("BOOT_IMAGE", "/vmlinuz"),
                p("ipa-api-url", "http://192.0.2.1:6385"),
                p("ipa-debug", "1"),
            ]
        );
    }

    #[test]
    fn config_cmdline_splits_on_first_equals_and_keeps_empty_values() {
        assert_eq!(
            pairs("ip=dhcp6 a=b=c empty= =novalue -- single"),
            vec![p("ip", "dhcp6"), p("a", "b=c"), p("empty", "")]
        );
    }

    #[test]
    fn config_cmdline_quotes() {
        assert_eq!(
            pairs(r#"ipa-api-url="http://a:6385,http://b:6385" x=1"#),
            vec![p("ipa-api-url", "http://a:6385,http://b:6385"), p("x", "1")]
        );
        assert_eq!(
            pairs(r#"dyndbg="file foo.c +p"   "ipa-global-request-id=req-1 2" tail"#),
            vec![
                p("dyndbg", "file foo.c +p"),
                p("ipa-global-request-id", "req-1 2")
            ]
        );
        // Single quotes are ordinary characters, as for the kernel.
        assert_eq!(pairs("a='x y'"), vec![p("a", "'x")]);
        // An empty quoted value.
        assert_eq!(pairs(r#"a="" b"#), vec![p("a", "")]);
    }

    #[test]
    fn config_cmdline_unterminated_quote_runs_to_the_end() {
        let parsed = parse("a=1 b=\"x y z\n");
        assert!(parsed.unterminated_quote);
        assert_eq!(parsed.params, vec![p("a", "1"), p("b", "x y z")]);
    }

    #[test]
    fn config_cmdline_whitespace_variants() {
        assert_eq!(pairs("\t a=1\t\tb=2  \n"), vec![p("a", "1"), p("b", "2")]);
        assert!(pairs("").is_empty());
        assert!(pairs("   \n").is_empty());
    }
}
