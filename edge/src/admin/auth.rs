//! Who may call the admin API: bearer admin tokens from the `Authorization` header only, checked
//! against their digests in constant time, with failed attempts limited per address.

use super::api::Actor;
use crate::tunnel::admission::AuthFailures;
use crate::tunnel::authtoken::{digest, TokenId};
use http::header::AUTHORIZATION;
use http::HeaderMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;
use tracing::warn;

/// The admin tokens an edge accepts, held as SHA-256 digests (the plaintext is dropped once
/// hashed). `Debug` shows only how many there are.
pub struct AdminTokens(Vec<TokenId>);

impl AdminTokens {
    /// Digests of `tokens`.
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self(
            tokens
                .into_iter()
                .map(|t| TokenId::from_digest(digest(t)))
                .collect(),
        )
    }

    /// The token `presented` is, checked against every digest without early exit, so timing
    /// reveals neither which token matched nor how much of it.
    fn verify(&self, presented: &str) -> Option<TokenId> {
        let d = digest(presented);
        let mut found = None;
        for known in &self.0 {
            if known.matches(&d) {
                found = Some(*known);
            }
        }
        found
    }
}

impl fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminTokens({} tokens)", self.0.len())
    }
}

/// Why a request was not let in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization` header: not counted as a failure (nothing was guessed).
    Missing,
    /// A credential that is not an accepted admin token (or not a bearer token at all).
    Invalid,
    /// The address used up its failures; it may try again after this long.
    LockedOut(Duration),
}

/// The admin listener's door: the accepted tokens and the failures per address.
pub(crate) struct Gate {
    tokens: AdminTokens,
    failures: AuthFailures,
}

impl Gate {
    /// A gate for `tokens`, with no failures recorded yet.
    pub(crate) fn new(tokens: AdminTokens) -> Self {
        Self {
            tokens,
            failures: AuthFailures::default(),
        }
    }

    /// The caller behind `headers` from `remote`, or why it is refused. A locked-out address is
    /// refused before its token is looked at, so guessing stops for the whole window even with
    /// the right token. The query string is never read: tokens there end up in logs.
    pub(crate) fn admit(&self, headers: &HeaderMap, remote: IpAddr) -> Result<Actor, Refusal> {
        self.failures.check(remote).map_err(Refusal::LockedOut)?;
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(Refusal::Missing);
        };
        let verified = value
            .to_str()
            .ok()
            .and_then(bearer)
            .and_then(|token| self.tokens.verify(token));
        match verified {
            Some(id) => Ok(Actor {
                token_id: format!("adm_{}", id.short()),
                remote,
            }),
            None => {
                let failures = self.failures.record(remote);
                warn!(%remote, failures, "admin API: wrong admin token (the token is not logged)");
                Err(Refusal::Invalid)
            }
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme is case-insensitive,
/// RFC 7235); `None` for any other scheme.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::admission::MAX_AUTH_FAILURES;
    use http::HeaderValue;

    const TOKEN: &str = "adm-0123456789abcdef";

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn only_bearer_admin_tokens_get_in() {
        let gate = Gate::new(AdminTokens::new([TOKEN]));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let actor = gate
            .admit(&with(&format!("bearer  {TOKEN} ")), ip)
            .expect("admitted");
        assert!(actor.token_id.starts_with("adm_") && actor.token_id.len() == 12);
        assert!(!actor.token_id.contains(TOKEN));
        assert_eq!(
            gate.admit(&HeaderMap::new(), ip).err(),
            Some(Refusal::Missing)
        );
        for wrong in [&format!("Basic {TOKEN}"), "Bearer nope", "Bearer", TOKEN] {
            assert_eq!(
                gate.admit(&with(wrong), ip).err(),
                Some(Refusal::Invalid),
                "{wrong}"
            );
        }
        assert!(!format!("{:?}", gate.tokens).contains(TOKEN));
    }

    #[test]
    fn an_address_out_of_failures_is_refused_even_with_the_right_token() {
        let gate = Gate::new(AdminTokens::new([TOKEN]));
        let (bad, other): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("ip"),
            "192.0.2.2".parse().expect("ip"),
        );
        for _ in 0..MAX_AUTH_FAILURES {
            assert_eq!(
                gate.admit(&with("Bearer guess"), bad).err(),
                Some(Refusal::Invalid)
            );
        }
        let right = with(&format!("Bearer {TOKEN}"));
        assert!(matches!(
            gate.admit(&right, bad),
            Err(Refusal::LockedOut(d)) if d > Duration::ZERO
        ));
        assert!(gate.admit(&right, other).is_ok());
    }
}
