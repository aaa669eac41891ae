//! Sluice's public edge: a pingora HTTP proxy that routes each request by `Host` to the agent
//! holding that hostname, over QUIC.
//!
//! Start one with [`start`] from an [`EdgeConfig`]. The tree reads in the order a request
//! meets it (docs/architecture.md draws the path, file and function per hop):
//!
//! - [`start`] (`start.rs`) binds every listener and builds each side's state once;
//! - `http/`: the public side, pingora's phases in order (`proxy.rs` is the spine);
//! - `policy/`: glue to the `sluice-policy` engine (compile, operator policies, run, bodies);
//! - `tunnel/`: the agent side (listener, session, admission, routes, namespaces, connector);
//! - `cloud.rs`: the endpoints the edge holds itself (`cloud_endpoints:`), online from start;
//! - `admin/`, `store/`: the operator's control plane (credentials, reservations, sessions,
//!   cloud endpoints at run time) and the SQLite file it keeps them in;
//! - `login/`, `acme/`, `tls/`: sign-ins, certificates;
//! - `facts/`: what policies read beyond the request (region, user-agent data, IP databases);
//! - leaves: `record.rs` (the finished request), `request_trailers.rs`, `metrics/`, `events/`, `urls.rs`,
//!   `hostname.rs`, `ids.rs`, `certs.rs`, `key_file.rs`, `coded_error.rs`, `serde_util.rs`.
//!
//! The public API is what the `edge` binary, embedders and the test kit need: starting and
//! stopping an edge, and the configuration types.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod acme;
mod addrs;
pub mod admin;
mod certs;
mod cloud;
mod cluster;
mod coded_error;
mod config;
mod events;
mod facts;
mod hostname;
mod http;
mod ids;
mod key_file;
mod login;
mod metrics;
mod outbound;
mod policy;
mod record;
mod request_trailers;
mod serde_util;
mod start;
mod store;
mod tcp;
mod tls;
mod tunnel;
mod urls;

pub use acme::config::{AcmeConfig, AcmeConfigError, OnDemandConfig};
pub use cloud::CloudEndpointError;
pub use cluster::config::{ClusterConfig, RateLimitFallback};
pub use config::{
    CloudEndpointSpec, ConfigError, EdgeArgs, EdgeConfig, H1Server, LogFormat, OperatorPolicy,
    SecretVault, TunnelTcp, TunnelTls, VaultSource,
};
pub use events::config::{DestinationError, EventConfigError, EventDestination, Sink};
pub use events::filter::FilterError;
pub use events::http_sink::HttpSink;
pub use facts::config::{FactsConfig, RegexesPath, DEFAULT_REGEXES};
pub use facts::FactsError;
pub use hostname::{Hostname, HostnameError};
pub use login::SessionKeys;
pub use outbound::config::OutboundConfigError;
pub use outbound::OutboundConfig;
pub use policy::body::MAX_BUFFERED_BODY;
pub use start::{start, DevToken, EdgeHandle, StartError};
pub use tls::config::{CertFiles, HttpsConfig};
pub use tls::front::{
    PassthroughTarget, RawTlsConn, SniDecision, SniRoutes, SniTable, TlsOpening,
    HANDSHAKE_TIMEOUT as TLS_HANDSHAKE_TIMEOUT,
};
pub use tunnel::admission::MAX_AUTH_FAILURES;
pub use tunnel::ports::{PortRange, PortRangeError};
pub use tunnel::routes::{Binding, EndpointKey, Member, Route, RouteRegistry, RouteSet};
