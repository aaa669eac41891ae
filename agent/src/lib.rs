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

pub mod agent_file;
pub mod app_service;
pub mod body;
pub mod config;
pub mod endpoint_handler;
pub mod endpoint_spec;
pub mod file_server;
pub mod forward;
pub mod inspect;
pub mod location_rewrite;
pub mod observe;
pub mod policy_input;
pub mod sdk;
pub mod session;
pub mod tls;
pub mod upstream;
pub mod upstream_client;
pub mod upstream_tls;

pub use app_service::AppService;
pub use config::{AgentConfig, EndpointConfig, HostHeader, UpstreamProtocol};
pub use session::{run, AgentError, AgentEvent};
pub use upstream::Upstream;
pub use upstream_tls::UpstreamTlsVerify;
