//! [`LoginService`]: the edge's sign-in service, shared by every endpoint's engine: its
//! cookie keys, provider documents, HTTP client, JWKS cache, revoked sessions, the auth host
//! and the one-time codes waiting there; in a cluster, the store that shares the last two
//! with the other edges.

use super::auth_host::AuthHost;
use super::handoff::Handoffs;
use super::jwks::JwksCache;
use super::paths::{CALLBACK_PATH, START_PATH};
use super::provider::Providers;
use super::revocations::Revocations;
use super::sealed::Handed;
use super::sealer::SessionKeys;
use super::shared::SharedSignIn;
use crate::outbound::{AddressRules, GuardedClient};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq as _;

/// Whole request to the provider (discovery, token, user info), connect included.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The edge's [`Authenticator`], shared by every endpoint's engine.
pub struct LoginService {
    /// Seal and open cookies and start requests.
    pub(super) keys: SessionKeys,
    /// Providers' endpoints (presets and discovery) and user info.
    pub(super) providers: Providers,
    /// For the token exchange: never follows redirects (the oauth2 crate's advice), and
    /// reaches only what the outbound rules allow (the provider comes from a policy).
    pub(super) http: GuardedClient,
    /// ID-token keys.
    pub(super) jwks: Arc<JwksCache>,
    /// Sessions ended by logout, until they would have expired anyway (kept in the state dir;
    /// in a cluster, the other edges' logouts too).
    revoked: Arc<Revocations>,
    /// The edge-wide auth host, when configured: every sign-in runs there.
    pub(super) auth: Option<AuthHost>,
    /// Finished sign-ins waiting on the auth host for their endpoint to swap the code.
    handoffs: Handoffs<Handed>,
    /// In a cluster: logouts and one-time codes shared with the other edges.
    shared: Option<Arc<dyn SharedSignIn>>,
}

/// The sealing name of a one-time code's sign-in kept in a cluster's store.
const SHARED_CODE: &str = "sluice_code";

/// A finished sign-in kept in a cluster's store under a one-time code, sealed with the session
/// keys every edge shares (the store never reads the session).
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedCode {
    /// The code's secret half, compared in constant time when it is swapped.
    secret: String,
    handed: Handed,
}

/// The digest of a code's secret half the store compares (never the secret itself).
fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl LoginService {
    /// The keys it seals cookies with (a cluster checks every edge has the same).
    pub fn session_keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// A service sealing cookies with `keys`, refusing the sessions in `revoked`, and
    /// verifying ID tokens with `jwks`; with `auth`, sign-ins run on that edge-wide host
    /// instead of each endpoint's own. Providers are reached only where `rules` allow.
    pub fn new(
        keys: SessionKeys,
        revoked: Arc<Revocations>,
        jwks: Arc<JwksCache>,
        auth: Option<AuthHost>,
        rules: &AddressRules,
    ) -> Result<Self, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .user_agent("sluice-edge");
        let http = GuardedClient::new(rules, builder, 0)?;
        Ok(Self {
            keys,
            providers: Providers::new(http.clone()),
            http,
            jwks,
            revoked,
            auth,
            handoffs: Handoffs::default(),
            shared: None,
        })
    }

    /// Shares logouts and one-time codes with the other edges of a cluster through `shared`.
    pub fn with_shared(mut self, shared: Arc<dyn SharedSignIn>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Refuses `session_id` from now on, until `until` (Unix seconds): here at once, and on
    /// the other edges of a cluster once the store has told them.
    pub(super) async fn revoke(&self, session_id: String, until: u64) {
        self.revoked.revoke(session_id.clone(), until);
        if let Some(shared) = &self.shared {
            shared.revoke(&session_id, until).await;
        }
    }

    /// Keeps a finished sign-in under a new one-time code and returns the code. In a cluster
    /// it goes to the store, so any edge can swap it (once); when the store does not take it,
    /// into this edge's memory, where only this edge can.
    pub(super) async fn issue_code(&self, handed: Handed) -> String {
        let (id, secret) = (self.keys.random_token(9), self.keys.random_token(24));
        let Some(shared) = &self.shared else {
            return self.handoffs.issue(id, secret, handed);
        };
        let code = SharedCode { secret, handed };
        if let Some(sealed) = self.keys.seal(SHARED_CODE, &code) {
            let digest = secret_digest(&code.secret);
            if shared.keep_code(&id, &digest, sealed).await {
                return format!("{id}.{}", code.secret);
            }
        }
        self.handoffs.issue(id, code.secret, code.handed)
    }

    /// The sign-in behind a one-time code, which no edge can have again; `None` when it is
    /// unknown, already taken, expired, or its secret is wrong. In a cluster the store is
    /// asked first, then this edge's memory (codes issued while the store was unreachable).
    pub(super) async fn take_code(&self, code: &str) -> Option<Handed> {
        if let (Some(shared), Some((id, secret))) = (&self.shared, code.split_once('.')) {
            let sealed = shared.take_code(id, &secret_digest(secret)).await;
            let kept = sealed.and_then(|s| self.keys.open::<SharedCode>(SHARED_CODE, &s));
            if let Some(kept) = kept {
                let same = kept.secret.as_bytes().ct_eq(secret.as_bytes());
                return bool::from(same).then_some(kept.handed);
            }
        }
        self.handoffs.take(code)
    }

    /// Whether `session_id` was ended (logout, provider refusal).
    pub(super) fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.contains(session_id)
    }

    /// Whether the proxy should hand this request to `answer_auth_host`: it is for
    /// the configured auth host (lowercase, no port) and one of its two paths.
    pub fn is_auth_host_request(&self, host: &str, path: &str) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|a| a.is(host) && (path == START_PATH || path == CALLBACK_PATH))
    }
}
