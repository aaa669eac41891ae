//! HTTP-01 answers: the ACME client publishes a token's key authorization here while the CA
//! validates, and the proxy serves it at `/.well-known/acme-challenge/TOKEN` on plain HTTP.

use parking_lot::RwLock;
use std::collections::HashMap;

/// Where HTTP-01 challenge tokens live (RFC 8555 §8.3).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 challenges: token → key authorization.
#[derive(Debug, Default)]
pub struct Http01Challenges {
    pending: RwLock<HashMap<String, String>>,
}

impl Http01Challenges {
    /// Publishes `key_authorization` for `token` until [`Http01Challenges::remove`].
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.pending
            .write()
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// Withdraws `token` once its authorization is decided.
    pub fn remove(&self, token: &str) {
        self.pending.write().remove(token);
    }

    /// The body to answer a request for `path` with, when it asks for a pending token. Other
    /// paths (and unknown tokens) go on to the endpoint as usual.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        self.pending.read().get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_pending_tokens() {
        let c = Http01Challenges::default();
        c.insert("tok", "tok.thumb");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(c.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(c.answer("/tok"), None);
        c.remove("tok");
        assert_eq!(c.answer("/.well-known/acme-challenge/tok"), None);
    }
}
