//! The agent's side of the link to the edge: `session.rs` runs the agent's life on the edge
//! (serving streams, reconnecting, moving back to QUIC); `dial.rs` makes a link over QUIC or
//! TLS over TCP (`auto` races them); `handshake.rs` is the `Hello`/`Welcome` exchange; `error.rs` why a try or the agent stops;
//! `fallback.rs` decides when `auto` prefers TCP and when it probes QUIC; `control.rs` holds
//! the session's control stream (liveness pings, leaving); `tls.rs` holds the link's TLS
//! client settings.

pub(crate) mod control;
pub(crate) mod dial;
pub(crate) mod error;
pub(crate) mod fallback;
pub(crate) mod handshake;
pub(crate) mod session;
pub mod tls;
