//! Sluice's agent: dials the edge over QUIC, brings endpoints online, and forwards each
//! request arriving on its own QUIC stream to the local app.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice_agent::AgentError> {
//! use sluice_agent::{AgentConfig, EndpointConfig};
//! let endpoint = EndpointConfig::new("8080".parse().expect("upstream"));
//! let config = AgentConfig::new("127.0.0.1:4443", "my-token", endpoint);
//! let (_stop, stop_rx) = tokio::sync::watch::channel(false);
//! sluice_agent::run(config, None, stop_rx).await
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod forward;
pub mod inspect;
pub mod observe;
pub mod policy_input;
pub mod session;
pub mod tls;
pub mod upstream;
pub mod upstream_tls;

pub use config::{AgentConfig, EndpointConfig, HostHeader};
pub use session::{run, AgentError, AgentEvent};
pub use upstream::Upstream;
