//! [`LoginService`]: the edge's sign-in service, shared by every endpoint's engine: its
//! cookie keys, provider documents, HTTP client, JWKS cache, revoked sessions, the auth host
//! and the one-time codes waiting there.

use super::auth_host::AuthHost;
use super::handoff::Handoffs;
use super::jwks::JwksCache;
use super::paths::{CALLBACK_PATH, START_PATH};
use super::provider::Providers;
use super::revocations::Revocations;
use super::sealed::Handed;
use super::sealer::SessionKeys;
use crate::outbound::{AddressRules, GuardedClient};
use std::sync::Arc;
use std::time::Duration;

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
    /// Sessions ended by logout, until they would have expired anyway (kept in the state dir).
    revoked: Revocations,
    /// The edge-wide auth host, when configured: every sign-in runs there.
    pub(super) auth: Option<AuthHost>,
    /// Finished sign-ins waiting on the auth host for their endpoint to swap the code.
    pub(super) handoffs: Handoffs<Handed>,
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
        revoked: Revocations,
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
        })
    }

    /// Refuses `session_id` from now on, until `until` (Unix seconds).
    pub(super) fn revoke(&self, session_id: String, until: u64) {
        self.revoked.revoke(session_id, until);
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
