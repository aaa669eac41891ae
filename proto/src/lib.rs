//! The edge <-> agent wire format shared by `sluice-edge` and `sluice-agent`.
//!
//! One QUIC connection per agent (ALPN [`ALPN`]). The agent opens the first bidirectional
//! stream as the *control stream* and sends a [`control::Hello`]; the edge answers with a
//! [`control::HelloReply`], and both sides then exchange [`control::ControlFrame`]s on it
//! (liveness probes, and the agent saying it is leaving). Control messages are length-prefixed JSON ([`codec`]).
//!
//! Requests travel on bidirectional streams the edge opens: binary [`frame::Frame`]s carry the
//! request head, body chunks and trailers one way and the response the other ([`frame`] is the
//! sans-IO codec, [`framed`] the QUIC halves). A stream whose exchange completed carries the
//! agent session's next request. A stream for a TCP or TLS endpoint's connection starts with a
//! connect frame and then carries the connection's raw bytes ([`splice`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod control;
pub mod error_code;
pub mod frame;
pub mod framed;
pub mod headers;
pub mod key_proof;
pub mod link;
pub mod scheme;
pub mod splice;
pub mod transport;

/// ALPN protocol id negotiated on the agent's QUIC connection.
pub const ALPN: &[u8] = b"sluice/1";

/// ALPN protocol id negotiated on the agent's TLS-over-TCP connection (HTTP/2 inside,
/// [`link::tcp`]); distinct from QUIC's so a TLS port shared with HTTPS can tell them apart.
pub const ALPN_TCP: &[u8] = b"sluice-tcp/1";

/// Version of the protocol spoken in [`control::Hello`]. Version 2 carries requests as frames
/// (version 1 wrote HTTP/1.1 on each stream) and probes liveness on the control stream.
pub const PROTOCOL_VERSION: u32 = 2;

/// Link close codes used by both sides (QUIC application close codes; over TCP, the close
/// message on the link's own stream).
pub mod close_code {
    /// Clean shutdown (agent Ctrl-C, edge shutdown).
    pub const NORMAL: u32 = 0;
    /// The handshake was refused (bad token, hostname taken, invalid policy).
    pub const REJECTED: u32 = 1;
    /// Protocol violation (bad frame, unexpected stream).
    pub const PROTOCOL: u32 = 2;
    /// Another session with the same authtoken took over this session's hostnames.
    pub const REPLACED: u32 = 3;
    /// The edge probed the agent while requests waited on it and heard nothing back.
    pub const UNRESPONSIVE: u32 = 4;
    /// The edge's operator stopped the session (admin API): the agent exits and does not
    /// reconnect.
    pub const STOPPED: u32 = 5;
    /// The edge's operator deleted the session's credential: the agent exits and does not
    /// reconnect.
    pub const CREDENTIAL_DELETED: u32 = 6;
}

/// Stream reset codes (QUIC; HTTP/2 resets with `CANCEL`).
pub mod reset_code {
    /// The stream was abandoned before its data was complete; the peer must not treat what it
    /// received as a whole message.
    pub const ABORTED: u32 = 1;
}
