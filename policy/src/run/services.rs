//! The edge's services an action may use: JWKS documents, sign-in verdicts, http-request's
//! calls and shared rate-limit counts (waited for), and the internal endpoints a forward may
//! reach (looked up at once).

use crate::counters::RateLimitStore;
use crate::forward::InternalEndpoints;
use crate::identity::Authenticator;
use crate::keys::KeySource;
use crate::outbound::HttpCaller;
use std::sync::Arc;

/// What the engine was given with [`Engine::with_key_source`](crate::Engine::with_key_source),
/// [`Engine::with_authenticator`](crate::Engine::with_authenticator) and
/// [`Engine::with_http_caller`](crate::Engine::with_http_caller) and
/// [`Engine::with_rate_limit_store`](crate::Engine::with_rate_limit_store); empty in offline
/// evaluation, where the actions that need them answer as documented.
#[derive(Clone, Default)]
pub(crate) struct Services {
    pub keys: Option<Arc<dyn KeySource>>,
    pub login: Option<Arc<dyn Authenticator>>,
    pub internal: Option<Arc<dyn InternalEndpoints>>,
    pub http: Option<Arc<dyn HttpCaller>>,
    pub rate_limits: Option<Arc<dyn RateLimitStore>>,
}
