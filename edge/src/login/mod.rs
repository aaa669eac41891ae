//! oauth and openid-connect on the edge: the authorization-code flow with PKCE, `state` and
//! `nonce` (the `oauth2` crate), ID tokens checked against the JWKS cache, sessions in sealed
//! cookies, and the reserved callback and logout paths on every endpoint's own host, or on one
//! edge-wide auth host that hands sessions to endpoints with one-time codes.

mod auth_host;
mod cookies;
mod flow;
mod handoff;
mod id_token;
mod provider;
mod revocations;
mod sealer;

pub use auth_host::AuthHost;
pub use revocations::{Revocations, REVOKED_FILE};
pub use sealer::{SessionKeyError, SessionKeys, KEY_FILE};

use crate::jwks::JwksCache;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, Uri};
use sluice_policy::codes;
use sluice_policy::identity::{Authenticator, LoginFuture, LoginRequest};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where the provider sends the browser back (register `<endpoint URL>` + this).
pub const CALLBACK_PATH: &str = "/_sluice/oauth/callback";
/// Ends the session.
pub const LOGOUT_PATH: &str = "/_sluice/oauth/logout";
/// On the auth host: where an endpoint sends the browser with its sealed sign-in request.
pub const START_PATH: &str = "/_sluice/oauth/start";
/// On an endpoint: where the auth host sends the browser with a one-time code.
pub const SESSION_PATH: &str = "/_sluice/oauth/session";

/// Whole request to the provider (discovery, token, user info), connect included.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The edge's [`Authenticator`], shared by every endpoint's engine.
pub struct LoginService {
    keys: SessionKeys,
    providers: provider::Providers,
    /// For the token exchange: never follows redirects (the oauth2 crate's advice).
    http: reqwest::Client,
    jwks: Arc<JwksCache>,
    /// Sessions ended by logout, until they would have expired anyway (kept in the state dir).
    revoked: Revocations,
    /// The edge-wide auth host, when configured: every sign-in runs there.
    auth: Option<AuthHost>,
    /// Finished sign-ins waiting on the auth host for their endpoint to swap the code.
    handoffs: handoff::Handoffs<flow::Handed>,
}

impl LoginService {
    /// A service sealing cookies with `keys`, refusing the sessions in `revoked`, and
    /// verifying ID tokens with `jwks`; with `auth`, sign-ins run on that edge-wide host
    /// instead of each endpoint's own.
    pub fn new(
        keys: SessionKeys,
        revoked: Revocations,
        jwks: Arc<JwksCache>,
        auth: Option<AuthHost>,
    ) -> Result<Self, reqwest::Error> {
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
            revoked,
            auth,
            handoffs: handoff::Handoffs::default(),
        })
    }

    fn revoke(&self, session_id: String, until: u64) {
        self.revoked.revoke(session_id, until);
    }

    fn is_revoked(&self, session_id: &str) -> bool {
        self.revoked.contains(session_id)
    }

    /// Whether the proxy should hand this request to [`Self::answer_auth_host`]: it is for
    /// the configured auth host (lowercase, no port) and one of its two paths.
    pub fn is_auth_host_request(&self, host: &str, path: &str) -> bool {
        self.auth
            .as_ref()
            .is_some_and(|a| a.is(host) && (path == START_PATH || path == CALLBACK_PATH))
    }

    /// Answers a request on the auth host (see [`Self::is_auth_host_request`]). `serves`
    /// tells whether this edge serves a hostname (lowercase, no port): sign-ins only ever
    /// return to such hosts.
    pub async fn answer_auth_host(
        &self,
        req: AuthHostRequest,
        serves: &(dyn Fn(&str) -> bool + Sync),
    ) -> Response<Bytes> {
        match &self.auth {
            Some(auth) => auth_host::answer(self, auth, req, serves).await,
            None => codes::html_page(StatusCode::NOT_FOUND, "Not found", "", None),
        }
    }
}

/// A request on the auth host, as the proxy passes it on.
#[derive(Debug)]
pub struct AuthHostRequest {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    /// The `Cookie` header values.
    pub cookies: Vec<HeaderValue>,
    /// Now.
    pub now: SystemTime,
}

impl Authenticator for LoginService {
    fn login<'a>(&'a self, req: &'a LoginRequest) -> LoginFuture<'a> {
        Box::pin(flow::decide(self, req))
    }
}
