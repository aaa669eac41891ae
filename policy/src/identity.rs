//! The interface through which oauth and openid-connect sign browsers in: the edge runs the
//! redirect flow and keeps sessions (network I/O, cookies, keys); this crate only asks it for a
//! verdict per request and exposes the identity to later rules, the upstream and the event.

use bytes::Bytes;
use http::{HeaderValue, Method, Response, Uri};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// The headers the upstream receives after a sign-in, in order: provider, user id, email,
/// name. The edge strips every header starting with [`IDENTITY_HEADER_PREFIX`] from client
/// requests before any rule runs, so clients cannot forge them.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "sluice-auth-provider",
    "sluice-auth-user-id",
    "sluice-auth-user-email",
    "sluice-auth-user-name",
];

/// The prefix of [`IDENTITY_HEADERS`].
pub const IDENTITY_HEADER_PREFIX: &str = "sluice-auth-";

/// Where the identity provider's endpoints come from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Provider {
    /// `openid-connect`: any OpenID provider, endpoints from `<issuer>/.well-known/openid-configuration`.
    Oidc {
        /// The issuer URL, exactly as the provider names itself in its ID tokens.
        issuer_url: String,
    },
    /// `oauth`: one of the edge's presets (`google`, `github`, `gitlab`, `microsoft`).
    OAuth {
        /// The preset's name.
        name: String,
    },
}

impl Provider {
    /// The `actions.ngrok.<key>` results key: `oidc` or `oauth`.
    pub fn results_key(&self) -> &'static str {
        match self {
            Provider::Oidc { .. } => "oidc",
            Provider::OAuth { .. } => "oauth",
        }
    }
}

/// One login action's configuration, its `${}` fields already rendered for this request.
/// Serializable so the edge can seal it into a sign-in that finishes on another host (the
/// edge-wide auth host); never serialized in the clear.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoginConfig {
    /// The provider.
    pub provider: Provider,
    /// The application's client id at the provider.
    pub client_id: String,
    /// The application's client secret (masked in `Debug`).
    pub client_secret: String,
    /// Scopes asked for (the provider's defaults when empty).
    pub scopes: Vec<String>,
    /// Extra query parameters for the authorization URL (`authz_url_params`).
    pub authz_url_params: Vec<(String, String)>,
    /// A session ends this long after sign-in.
    pub max_session_duration: Duration,
    /// A session ends after this long without a request.
    pub idle_session_timeout: Duration,
    /// The user info is read again from the provider when a session's copy is this old
    /// (`userinfo_refresh_interval`); `None`: read once at sign-in.
    pub userinfo_refresh_interval: Option<Duration>,
    /// `Domain` of the session cookie (host-only when `None`).
    pub auth_cookie_domain: Option<String>,
}

impl fmt::Debug for LoginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginConfig")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("scopes", &self.scopes)
            .field("max_session_duration", &self.max_session_duration)
            .field("idle_session_timeout", &self.idle_session_timeout)
            .field("userinfo_refresh_interval", &self.userinfo_refresh_interval)
            .finish_non_exhaustive()
    }
}

/// What the edge needs to decide about one request.
#[derive(Clone, Debug)]
pub struct LoginRequest {
    /// The action's configuration.
    pub config: LoginConfig,
    /// The request method.
    pub method: Method,
    /// The request target (path and query).
    pub uri: Uri,
    /// The `Host` the client used (the callback and cookies live on it).
    pub host: String,
    /// `http` or `https`: the endpoint's protocol (cookies are `Secure` on https).
    pub scheme: String,
    /// The request's `Cookie` header values.
    pub cookies: Vec<HeaderValue>,
    /// The engine's now.
    pub now: SystemTime,
}

/// A signed-in user, as the session holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `oidc` or `oauth` (which action signed the user in).
    pub kind: &'static str,
    /// The provider: the issuer URL or the preset name.
    pub provider: String,
    /// The application's client id.
    pub client_id: String,
    /// The user's id at the provider (`sub` for OpenID).
    pub id: String,
    /// The user's email, when the provider gave one.
    pub email: Option<String>,
    /// The user's display name, when the provider gave one.
    pub name: Option<String>,
    /// The session's id (random, per sign-in).
    pub session_id: String,
    /// When the session ends at the latest (`max_session_duration`).
    pub expires_at: SystemTime,
}

/// The edge's verdict on one request.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A valid session: the request goes on. `set_cookie` renews the session cookie (idle
    /// timeout) on the response.
    SignedIn {
        /// Who.
        identity: Identity,
        /// A `Set-Cookie` value for the response, when the session was renewed.
        set_cookie: Option<HeaderValue>,
    },
    /// Answer the request: a redirect to the provider, the end of the callback, the logout
    /// page, or an error page (with `sluice-error-code`).
    Respond(Response<Bytes>),
}

/// What [`Authenticator::login`] returns.
pub type LoginFuture<'a> = Pin<Box<dyn Future<Output = LoginOutcome> + Send + 'a>>;

/// The edge side of oauth / openid-connect, given to the engine with
/// [`Engine::with_authenticator`](crate::Engine::with_authenticator).
pub trait Authenticator: Send + Sync {
    /// Decides `req`: a session cookie for this configuration lets it through, the reserved
    /// callback and logout paths are answered, anything else starts the sign-in.
    fn login<'a>(&'a self, req: &'a LoginRequest) -> LoginFuture<'a>;
}
