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
//!
//! # Public API
//!
//! What the `agent` binary, SDK users and the end-to-end tests need, and nothing more:
//!
//! - Running an agent: [`run`] with an [`AgentConfig`] of [`EndpointConfig`]s (their
//!   [`Upstream`], [`HostHeader`], [`UpstreamProtocol`], [`UpstreamTlsVerify`]), linked to one
//!   edge or several ([`AgentConfig::more_edges`], [`AgentConfig::ha_connections`]), reporting
//!   [`AgentEvent`]s (each link's [`EdgeLink`]) and stopping with an [`AgentError`].
//! - [`sdk`]: the same from a program that serves some endpoints itself ([`AppService`]),
//!   with the [`body`] type requests and responses carry.
//! - [`observe`]: watchers of every forwarded exchange and TCP connection (the status
//!   screen is one);
//!   [`inspect`]: the request inspector the binary starts.
//! - Reading what users write: [`agent_file`] (`agent.yml`), [`endpoint_spec`] (one endpoint,
//!   from flags or the file) and [`policy_input`] (traffic-policy layers).
//! - [`tls`]: the link's TLS client settings, for tests that dial the edge by hand.
//!
//! # Layout
//!
//! The modules follow a request: `link/` holds the links to the edges, `forward/` one
//! request from its QUIC stream to the upstream, `config/` what the agent runs and how it is
//! read, `inspect/` the request inspector; `trust.rs` loads the trust roots `link/` and
//! `forward/` share. The binary's own modules (`main.rs`, `cli/`, `status/`) use this crate
//! through the API above. See `docs/architecture.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod forward;
pub mod inspect;
mod link;
pub mod sdk;
mod trust;

pub use config::agent::{
    edge_list, ha_connections, AgentConfig, EdgeListError, HaConnectionsError, TransportChoice,
    DEFAULT_HA_CONNECTIONS, MAX_HA_CONNECTIONS,
};
pub use config::endpoint::{
    EndpointConfig, HostHeader, ProxyProtocol, UnknownProtocol, UnknownProxyProtocol,
    UpstreamProtocol, UpstreamTlsVerify,
};
pub use config::upstream::{Upstream, UpstreamError};
pub use config::{agent_file, endpoint_spec, policy_input};
pub use forward::app_service::AppService;
pub use forward::file_server::FileServerError;
pub use forward::handler::HandlerError;
pub use forward::{body, observe};
pub use link::error::AgentError;
pub use link::events::{AgentEvent, EdgeLink};
pub use link::supervisor::run;
pub use link::tls;
pub use sluice_proto::link::Transport;
pub use trust::TlsError;
