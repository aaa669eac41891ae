//! [`Credentials`]: the authtokens this edge accepts and what each may do (`bind:` rules,
//! limits). `edge.yaml`'s tokens and the admin API's credentials in one snapshot, which
//! admission reads without a lock and the control plane replaces whole after each change.

use super::acl::Acl;
use super::authtoken::{digest, TokenId};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Where a credential was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `edge.yaml`, flags or env (and the dev token): read-only to the admin API.
    Config,
    /// The admin API; kept in the store.
    Api,
}

/// One accepted authtoken and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `cr_…`: stable across restarts (a configured token's comes from its digest).
    pub id: String,
    /// The token's identity.
    pub token: TokenId,
    /// Where it was defined.
    pub source: CredentialSource,
    /// Which names and addresses its agents may bring online.
    pub acl: Acl,
    /// Sessions at once; `None`: the edge's `max_agents_per_token`.
    pub max_sessions: Option<usize>,
    /// Endpoints at once over all its sessions; `None`: no limit.
    pub max_endpoints: Option<usize>,
}

impl Credential {
    /// A configured token: every name allowed, the edge's limits.
    pub fn configured(token: &str) -> Self {
        let token = TokenId::from_digest(digest(token));
        Self {
            id: format!("cr_cfg_{}", hex::encode(&token.digest()[..8])),
            token,
            source: CredentialSource::Config,
            acl: Acl::default(),
            max_sessions: None,
            max_endpoints: None,
        }
    }
}

/// The accepted credentials.
#[derive(Debug, Default)]
pub struct Credentials {
    current: ArcSwap<Vec<Arc<Credential>>>,
}

impl Credentials {
    /// The credentials of `tokens` (configured ones).
    pub fn configured<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        let list = Self::default();
        list.replace(tokens.into_iter().map(Credential::configured).collect());
        list
    }

    /// Replaces the whole set (configured first, then the API's).
    pub fn replace(&self, all: Vec<Credential>) {
        self.current
            .store(Arc::new(all.into_iter().map(Arc::new).collect()));
    }

    /// The credential whose token is `presented`. Every digest is compared, without early
    /// exit, so timing reveals neither which credential matched nor how much of it.
    pub fn verify(&self, presented: &str) -> Option<Arc<Credential>> {
        let d = digest(presented);
        let mut found = None;
        for c in self.current.load().iter() {
            if c.token.matches(&d) {
                found = Some(c.clone());
            }
        }
        found
    }

    /// The credential with id `id`.
    pub fn by_id(&self, id: &str) -> Option<Arc<Credential>> {
        self.current.load().iter().find(|c| c.id == id).cloned()
    }

    /// The credential of token `token`.
    pub fn by_token(&self, token: TokenId) -> Option<Arc<Credential>> {
        self.current
            .load()
            .iter()
            .find(|c| c.token == token)
            .cloned()
    }

    /// The one configured token, when `edge.yaml` has exactly one (the common self-hosted
    /// case, where cloud endpoints need not name theirs). The API's credentials do not count:
    /// creating one must not change whose namespace `edge.yaml`'s cloud endpoints use.
    pub fn only_configured(&self) -> Option<TokenId> {
        let all = self.current.load();
        let mut configured = all.iter().filter(|c| c.source == CredentialSource::Config);
        match (configured.next(), configured.next()) {
            (Some(only), None) => Some(only.token),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_known_tokens_and_keeps_ids_stable() {
        let set = Credentials::configured(["alpha-token", "beta-token"]);
        let a = set.verify("alpha-token").expect("alpha");
        let b = set.verify("beta-token").expect("beta");
        assert_ne!(a.token, b.token);
        assert!(set.verify("alpha-toke").is_none());
        assert!(set.verify("").is_none());
        assert_eq!(a.id, Credential::configured("alpha-token").id);
        assert!(!format!("{a:?}{set:?}").contains("alpha"));
        assert_eq!(set.only_configured(), None);
        assert_eq!(
            Credentials::configured(["one"]).only_configured(),
            Some(Credential::configured("one").token)
        );
    }
}
