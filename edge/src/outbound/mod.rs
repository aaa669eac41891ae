//! Calls and fetches whose URLs policies choose (http-request, JWKS, sign-in providers): HTTP
//! clients that keep them away from the edge's own networks unless the operator allows them
//! (`outbound:` in edge.yaml).

pub(crate) mod caller;
pub(crate) mod config;
pub(crate) mod guarded;
pub(crate) mod internal;
pub(crate) mod rules;

pub use caller::PolicyCaller;
pub use config::OutboundConfig;
pub use guarded::GuardedClient;
pub use internal::InternalCalls;
pub use rules::AddressRules;
