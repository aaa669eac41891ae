//! The agent's side of the link to the edge: `session.rs` dials over QUIC, does the handshake,
//! accepts the edge's streams and reconnects; `control.rs` holds the session's control stream
//! (liveness pings, leaving); `tls.rs` holds the link's TLS client settings.

pub(crate) mod control;
pub(crate) mod session;
pub mod tls;
