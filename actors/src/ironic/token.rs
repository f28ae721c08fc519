//! Which agent token to hold after a lookup (`ipa-protocol.md` §2.3).

use crate::config::Secret;

/// What Ironic sends instead of the token once it has handed it out.
pub const REDACTED_TOKEN: &str = "******";

/// The shortest lookup token the agent accepts.
pub const MIN_TOKEN_LEN: usize = 32;

/// The outcome of applying a lookup's `config.agent_token`.
#[derive(Debug, Clone)]
pub enum TokenDecision {
    /// Hold this token from now on (the lookup handed out a new one).
    Use(Secret),
    /// `******` while a token is already held: keep it (logged as a warning).
    KeepHeld(Secret),
    /// `******` and no token held: fatal. IPA stops serving and locks the node down.
    Lockdown,
    /// A token shorter than 32 characters, or none: ignored; keep what is held
    /// (maybe nothing).
    Ignored(Option<Secret>),
}

impl TokenDecision {
    /// The token to hold afterwards, if any.
    pub fn token(&self) -> Option<&Secret> {
        match self {
            TokenDecision::Use(token) | TokenDecision::KeepHeld(token) => Some(token),
            TokenDecision::Ignored(held) => held.as_ref(),
            TokenDecision::Lockdown => None,
        }
    }
}

/// Applies IPA's rules to the lookup token `received` given the token already `held`
/// (from `ipa-agent-token` or an earlier lookup). Empty tokens count as absent.
pub fn decide(received: Option<&str>, held: Option<&Secret>) -> TokenDecision {
    let held = held.filter(|token| !token.is_empty()).cloned();
    match received.filter(|token| !token.is_empty()) {
        Some(REDACTED_TOKEN) => match held {
            Some(token) => TokenDecision::KeepHeld(token),
            None => TokenDecision::Lockdown,
        },
        Some(token) if token.chars().count() >= MIN_TOKEN_LEN => {
            TokenDecision::Use(Secret::new(token))
        }
        _ => TokenDecision::Ignored(held),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "an7dLO4r3mP-2KgfYhpFmMVB9jyzmPMsZXBIaOUqR9s";

    fn exposed(decision: &TokenDecision) -> Option<&str> {
        decision.token().map(Secret::expose)
    }

    #[test]
    fn token_of_32_or_more_characters_is_used() {
        let d = decide(Some(LONG), None);
        assert!(matches!(d, TokenDecision::Use(_)));
        assert_eq!(exposed(&d), Some(LONG));
        let exactly_32 = "a".repeat(32);
        assert_eq!(
            exposed(&decide(Some(&exactly_32), None)),
            Some(exactly_32.as_str())
        );
        // A fresh lookup token replaces a configured one.
        let held = Secret::new("678123");
        assert_eq!(exposed(&decide(Some(LONG), Some(&held))), Some(LONG));
    }

    #[test]
    fn short_token_is_ignored_and_held_one_kept() {
        let d = decide(Some(&"a".repeat(31)), None);
        assert!(matches!(d, TokenDecision::Ignored(None)));
        let held = Secret::new("678123");
        let d = decide(Some("short"), Some(&held));
        assert_eq!(exposed(&d), Some("678123"));
        assert!(matches!(decide(None, None), TokenDecision::Ignored(None)));
        assert!(matches!(
            decide(Some(""), None),
            TokenDecision::Ignored(None)
        ));
    }

    #[test]
    fn redacted_token_keeps_held_or_locks_down() {
        let held = Secret::new("678123");
        let d = decide(Some(REDACTED_TOKEN), Some(&held));
        assert!(matches!(d, TokenDecision::KeepHeld(_)));
        assert_eq!(exposed(&d), Some("678123"));
        assert!(matches!(
            decide(Some(REDACTED_TOKEN), None),
            TokenDecision::Lockdown
        ));
        // An empty held token counts as none.
        assert!(matches!(
            decide(Some(REDACTED_TOKEN), Some(&Secret::new(""))),
            TokenDecision::Lockdown
        ));
        assert_eq!(exposed(&TokenDecision::Lockdown), None);
    }
}
