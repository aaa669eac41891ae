//! Sluice's public edge: a pingora HTTP proxy that routes each request by `Host` to the agent
//! holding that hostname, over one QUIC stream per request.
//!
//! Start one with [`start`]; the request path is in [`proxy`], the agent side in [`tunnel`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acme;
pub mod auth;
pub mod certs;
pub mod completed;
pub mod config;
pub mod endpoint_policy;
pub mod error_response;
pub mod events;
pub mod fetch;
pub mod forwarding;
pub mod hostname;
pub mod jwks;
pub mod key_file;
pub mod login;
pub mod metrics;
pub mod policy_heads;
pub mod policy_run;
pub mod proxy;
pub mod request_body;
pub mod request_guard;
pub mod routes;
mod server;
pub mod state;
pub mod tls;
pub mod tunnel;

pub use config::{EdgeArgs, EdgeConfig};
pub use server::{start, DevToken, EdgeHandle, StartError};
