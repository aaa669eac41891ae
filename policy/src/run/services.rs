//! The edge's services an action may use: JWKS documents and sign-in verdicts (waited for), and
//! the internal endpoints a forward may reach (looked up at once).

use crate::forward::InternalEndpoints;
use crate::identity::Authenticator;
use crate::keys::KeySource;
use std::sync::Arc;

/// What the engine was given with [`Engine::with_key_source`](crate::Engine::with_key_source)
/// and [`Engine::with_authenticator`](crate::Engine::with_authenticator); empty in offline
/// evaluation, where the actions that need them answer as documented.
#[derive(Clone, Default)]
pub(crate) struct Services {
    pub keys: Option<Arc<dyn KeySource>>,
    pub login: Option<Arc<dyn Authenticator>>,
    pub internal: Option<Arc<dyn InternalEndpoints>>,
}
