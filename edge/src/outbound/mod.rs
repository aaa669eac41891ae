//! Calls policies make to other servers (http-request): one HTTP client that keeps them away
//! from the edge's own networks unless the operator allows them (`outbound:` in edge.yaml).

pub(crate) mod caller;
pub(crate) mod config;
pub(crate) mod rules;

pub use caller::PolicyCaller;
pub use config::OutboundConfig;
