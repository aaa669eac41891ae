//! Why the agent stops for good ([`AgentError`]), and how one try at a session went wrong
//! ([`Attempt`]).

use crate::forward::handler::HandlerError;
use crate::trust::TlsError;
use sluice_proto::control::Rejection;

/// Why the agent stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The edge refused the session (bad token, hostname taken, invalid policy, …).
    #[error("edge refused the session: {0}")]
    Rejected(Rejection),
    /// Another agent with the same authtoken took over the hostname.
    #[error("another agent with the same authtoken took over this endpoint")]
    Replaced,
    /// The edge's operator stopped this session, or deleted its authtoken: reconnecting would
    /// undo the operator's decision.
    #[error("{0}")]
    Stopped(String),
    /// The edge's certificate is not trusted (see `--edge-ca`).
    #[error(
        "the edge's TLS certificate was refused: {0} (pass the edge's certificate with --edge-ca)"
    )]
    Untrusted(String),
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The edge address is unusable.
    #[error("edge address '{0}': {1}")]
    EdgeAddress(String, String),
    /// An endpoint's upstream cannot be used (unreadable CA file, missing directory).
    #[error(transparent)]
    Upstream(#[from] HandlerError),
    /// The local UDP socket could not be set up.
    #[error("local QUIC socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// How one try at a session went wrong.
pub(crate) enum Attempt {
    /// Retrying cannot help.
    Fatal(AgentError),
    /// Worth retrying after a backoff.
    Transient(String),
}
