//! oauth and openid-connect on the edge: the authorization-code flow with PKCE, `state` and
//! `nonce` (the `oauth2` crate), ID tokens checked against the JWKS cache, sessions in sealed
//! cookies, and the reserved callback and logout paths on every endpoint's own host, or on one
//! edge-wide auth host that hands sessions to endpoints with one-time codes.
//!
//! Leaves first: `paths`, `clock`, `cookies`, `failure`, `sealed` (the states a sign-in passes
//! through), `sealer`, `handoff`, `revocations`, `shared` (what a cluster's store shares),
//! `fetch`, `jwks`, `id_token`, `provider`, `auth_host`; then [`LoginService`] (`service`), the provider round trip (`provider_flow`),
//! and the two entry points: `flow` (requests to endpoints, the engine's `Authenticator`) and
//! `auth_host_flow` (requests on the auth host).

mod auth_host;
mod auth_host_flow;
mod clock;
mod cookies;
mod failure;
mod fetch;
mod flow;
mod handoff;
mod id_token;
pub(crate) mod jwks;
mod paths;
mod provider;
mod provider_flow;
mod revocations;
mod sealed;
mod sealer;
mod service;
mod shared;

pub use auth_host::{AuthHost, AuthHostRequest};
pub use handoff::CODE_TTL;
pub use paths::CALLBACK_PATH;
pub use revocations::{Revocations, REVOKED_FILE};
pub use sealer::{SessionKeyError, SessionKeys};
pub use service::LoginService;
pub use shared::{SharedFuture, SharedSignIn};
