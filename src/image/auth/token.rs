//! Bearer tokens from registry token services (the Docker token flow),
//! kept per (registry, scope, identity) for as long as the service said
//! they live, so that every blob of a pull, and the next pull of the same
//! repository, reuses one token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The Docker token specification's default when `expires_in` is absent.
pub(crate) const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(60);
/// A token is dropped this much before it expires (or at half its life
/// when that is shorter), so that a request does not race its expiry.
const MARGIN: Duration = Duration::from_secs(10);
/// Bounds the cache of a long-running worker that sees many repositories.
const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub registry: String,
    pub scope: String,
    /// [`super::Resolved::identity_key`]: tokens of one identity are never
    /// handed to another.
    pub identity: String,
}

#[derive(Default)]
pub(crate) struct TokenCache {
    map: Mutex<HashMap<TokenKey, (String, Instant)>>,
}

impl TokenCache {
    pub fn get(&self, key: &TokenKey) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    pub fn insert(&self, key: TokenKey, token: String, expires_in: Duration) {
        let margin = MARGIN.min(expires_in / 2);
        let until = Instant::now() + expires_in - margin;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            let now = Instant::now();
            map.retain(|_, (_, u)| *u > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(key, (token, until));
    }

    /// Forgets a token the registry no longer accepts.
    pub fn remove(&self, key: &TokenKey) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: &str) -> TokenKey {
        TokenKey {
            registry: "r".into(),
            scope: scope.into(),
            identity: "i".into(),
        }
    }

    #[test]
    fn tokens_expire_and_are_scoped() {
        let c = TokenCache::default();
        c.insert(key("a"), "t1".into(), Duration::from_secs(300));
        assert_eq!(c.get(&key("a")).as_deref(), Some("t1"));
        assert_eq!(c.get(&key("b")), None);
        // A zero lifetime is never served.
        c.insert(key("b"), "t2".into(), Duration::ZERO);
        assert_eq!(c.get(&key("b")), None);
        c.remove(&key("a"));
        assert_eq!(c.get(&key("a")), None);
    }
}
