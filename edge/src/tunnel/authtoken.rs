//! Agent authtokens: known by their SHA-256 digests ([`TokenId`]), compared in constant time.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Identity of an accepted authtoken: its digest. Hostnames are owned by a token, so the same
/// token can reclaim its hostname after a reconnect.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId([u8; 32]);

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tok_{}", self.short())
    }
}

/// The SHA-256 digest of a token: what the edge keeps instead of the token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl TokenId {
    /// A short digest prefix in hex: enough to tell tokens apart in logs and audit records, and
    /// reveals nothing of the token.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// The whole digest in hex, as the cluster store records an endpoint's owner.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The identity of the token whose digest is `digest`.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// The id [`TokenId::hex`] wrote, if `hex` is one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex, &mut digest).ok()?;
        Some(Self::from_digest(digest))
    }

    /// The digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &[u8; 32]) -> bool {
        bool::from(self.0.ct_eq(presented))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_only_their_token_and_show_no_secret() {
        let a = TokenId::from_digest(digest("alpha-token"));
        assert!(a.matches(&digest("alpha-token")));
        assert!(!a.matches(&digest("alpha-toke")));
        assert!(!format!("{a:?}").contains("alpha"));
    }
}
