//! oauth and openid-connect on the edge: the authorization-code flow with PKCE, `state` and
//! `nonce` (the `oauth2` crate), ID tokens checked against the JWKS cache, sessions in sealed
//! cookies, and the reserved callback and logout paths on every endpoint's own host.

mod cookies;
mod flow;
mod id_token;
mod provider;
mod sealer;

pub use sealer::{SessionKeyError, SessionKeys, KEY_FILE};

use crate::jwks::JwksCache;
use parking_lot::Mutex;
use sluice_policy::identity::{Authenticator, LoginFuture, LoginRequest};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where the provider sends the browser back (register `<endpoint URL>` + this).
pub const CALLBACK_PATH: &str = "/_sluice/oauth/callback";
/// Ends the session.
pub const LOGOUT_PATH: &str = "/_sluice/oauth/logout";

/// Whole request to the provider (discovery, token, user info), connect included.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The edge's [`Authenticator`], shared by every endpoint's engine.
pub struct LoginService {
    keys: SessionKeys,
    providers: provider::Providers,
    /// For the token exchange: never follows redirects (the oauth2 crate's advice).
    http: reqwest::Client,
    jwks: Arc<JwksCache>,
    /// Sessions ended by logout, until they would have expired anyway.
    revoked: Mutex<HashMap<String, SystemTime>>,
}

impl LoginService {
    /// A service sealing cookies with `keys` and verifying ID tokens with `jwks`.
    pub fn new(keys: SessionKeys, jwks: Arc<JwksCache>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("sluice-edge")
            .build()?;
        Ok(Self {
            keys,
            providers: provider::Providers::new(http.clone()),
            http,
            jwks,
            revoked: Mutex::new(HashMap::new()),
        })
    }

    fn revoke(&self, session_id: String, until: SystemTime) {
        let mut revoked = self.revoked.lock();
        let now = SystemTime::now();
        revoked.retain(|_, t| *t > now);
        revoked.insert(session_id, until);
    }

    fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.lock().contains_key(session_id)
    }
}

impl Authenticator for LoginService {
    fn login<'a>(&'a self, req: &'a LoginRequest) -> LoginFuture<'a> {
        Box::pin(flow::decide(self, req))
    }
}
