//! Agent authtokens: stored as SHA-256 digests, checked in constant time.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Identity of an accepted authtoken: its digest. Hostnames are owned by a token, so the same
/// token can reclaim its hostname after a reconnect.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId([u8; 32]);

impl TokenId {
    /// A short digest prefix in hex: enough to tell tokens apart in logs and audit records, and
    /// reveals nothing of the token.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tok_{}", self.short())
    }
}

/// The set of authtokens this edge accepts.
#[derive(Clone, Default)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenSet({} tokens)", self.digests.len())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenSet {
    /// Builds the set from plaintext tokens.
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            digests: tokens.into_iter().map(digest).collect(),
        }
    }

    /// Checks `presented` against every token without early exit, so timing reveals neither
    /// which token matched nor how much of it.
    pub fn verify(&self, presented: &str) -> Option<TokenId> {
        let d = digest(presented);
        let mut found = None;
        for known in &self.digests {
            if bool::from(known.ct_eq(&d)) {
                found = Some(TokenId(*known));
            }
        }
        found
    }

    /// The one accepted token's identity, when the edge accepts exactly one (the common
    /// self-hosted case, where cloud endpoints need not name theirs).
    pub fn only(&self) -> Option<TokenId> {
        match self.digests.as_slice() {
            [only] => Some(TokenId(*only)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_known_tokens() {
        let set = TokenSet::new(["alpha-token", "beta-token"]);
        let a = set.verify("alpha-token").expect("alpha");
        let b = set.verify("beta-token").expect("beta");
        assert_ne!(a, b);
        assert!(set.verify("alpha-toke").is_none());
        assert!(set.verify("").is_none());
        assert!(!format!("{a:?}{set:?}").contains("alpha"));
    }
}
