//! [`TunnelState`]: what the agent side of the edge reads while admitting and serving
//! sessions.

use super::admission::{AuthFailures, SessionCounts};
use super::credentials::Credentials;
use super::directory::Directory;
use super::peers::Peers;
use super::ports::TcpPorts;
use super::reservations::Reservations;
use super::routes::RouteRegistry;
use crate::cluster::claims::Claims;
use crate::hostname::Hostname;
use crate::metrics::EdgeMetrics;
use crate::policy::compile::PolicyServices;
use crate::policy::operator::OperatorEndpoints;
use crate::urls::PublicUrls;
use std::sync::Arc;
use std::time::Duration;

/// The agent listener's state, built once at start.
pub struct TunnelState {
    /// Hostname → agent session; the listener writes it, the proxy reads it.
    pub routes: Arc<dyn RouteRegistry>,
    /// Public URLs of the endpoints it brings online.
    pub urls: Arc<PublicUrls>,
    /// The operator's policies, compiled into each matching endpoint's engine.
    pub operators: Arc<OperatorEndpoints>,
    /// The JWKS cache and sign-in service every endpoint's engine uses.
    pub services: PolicyServices,
    /// Accepted authtokens and their rules; the control plane replaces them at run time.
    pub credentials: Arc<Credentials>,
    /// Names reserved for one credential; the control plane replaces them at run time.
    pub reservations: Arc<Reservations>,
    /// The sessions online, for the operator's list and stop.
    pub directory: Arc<Directory>,
    /// Failed authtoken attempts per source address.
    pub auth_failures: AuthFailures,
    /// Live sessions per authtoken, capped by the credential's `max_sessions` or else
    /// `max_agents_per_token`.
    pub sessions_per_token: SessionCounts,
    /// The configured auth host, which no agent may claim.
    pub auth_hostname: Option<Hostname>,
    /// How long an agent has to finish its handshake.
    pub handshake_timeout: Duration,
    /// Session and handshake metrics.
    pub metrics: EdgeMetrics,
    /// Live sessions by address, for unreachable reports.
    pub peers: Arc<Peers>,
    /// The ports `tcp://` endpoints get; `None` when `tcp_ports` is unset.
    pub tcp_ports: Option<Arc<TcpPorts>>,
    /// This edge's endpoint claims in the cluster store; `None` for an edge on its own.
    pub cluster: Option<Arc<Claims>>,
}
