//! The `agent_token` check of the three command routes (spec §2.3).

use std::sync::{Arc, RwLock};

use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The agent token the command routes check; set by config or by lookup.
pub type TokenStore = Arc<RwLock<Option<Secret>>>;

/// A new store holding `token`.
pub fn new_store(token: Option<Secret>) -> TokenStore {
    Arc::new(RwLock::new(token))
}

/// The token held now (a poisoned lock still yields its value).
pub fn held_token(store: &TokenStore) -> Option<Secret> {
    match store.read() {
        Ok(slot) => slot.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Replaces the held token.
pub fn install_token(store: &TokenStore, token: Secret) {
    match store.write() {
        Ok(mut slot) => *slot = Some(token),
        Err(poisoned) => *poisoned.into_inner() = Some(token),
    }
}

/// IPA's rule: the given token is non-empty, a non-empty token is held, and the two are
/// equal. The bytes are compared in constant time.
pub fn token_valid(held: Option<&Secret>, given: Option<&str>) -> bool {
    let Some(given) = given.filter(|token| !token.is_empty()) else {
        return false;
    };
    let Some(held) = held.filter(|token| !token.is_empty()) else {
        return false;
    };
    bool::from(held.expose().as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_tokens_pass() {
        let held = Secret::new("678123");
        assert!(token_valid(Some(&held), Some("678123")));
    }

    #[test]
    fn wrong_missing_or_empty_tokens_fail() {
        let held = Secret::new("678123");
        assert!(!token_valid(Some(&held), Some("678124")));
        assert!(!token_valid(Some(&held), Some("6781234")));
        assert!(!token_valid(Some(&held), Some("67812")));
        assert!(!token_valid(Some(&held), None));
        assert!(!token_valid(Some(&held), Some("")));
    }

    #[test]
    fn no_held_token_rejects_everything() {
        assert!(!token_valid(None, Some("678123")));
        assert!(!token_valid(Some(&Secret::new("")), Some("")));
        assert!(!token_valid(Some(&Secret::new("")), Some("x")));
    }

    #[test]
    fn store_install_replaces_token() {
        let store = new_store(None);
        assert!(held_token(&store).is_none());
        install_token(&store, Secret::new("abc"));
        assert_eq!(
            held_token(&store).map(|t| t.expose().to_string()),
            Some("abc".into())
        );
    }
}
