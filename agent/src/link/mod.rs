//! The agent's side of the links to the edges: `supervisor.rs` keeps the agent's links (up
//! to `ha_connections`, each to another edge) and reports them; `session.rs` runs one link's
//! life (serving streams, leaving, moving back to QUIC); `targets.rs` the edges' addresses,
//! resolved again before each link; `dial.rs` makes a link over QUIC or TLS over TCP (`auto`
//! races them); `handshake.rs` is the `Hello`/`Welcome` exchange; `events.rs` what the agent
//! reports; `error.rs` why a try or the agent stops; `fallback.rs` decides when `auto` prefers
//! TCP and when it probes QUIC; `control.rs` holds the session's control stream (liveness
//! pings, leaving); `tls.rs` holds the link's TLS client settings.

pub(crate) mod control;
pub(crate) mod dial;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod fallback;
pub(crate) mod handshake;
pub(crate) mod session;
pub(crate) mod supervisor;
pub(crate) mod targets;
pub mod tls;
