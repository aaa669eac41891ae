//! The edge <-> agent wire format shared by `sluice-edge` and `sluice-agent`.
//!
//! One QUIC connection per agent (ALPN [`ALPN`]). The agent opens the first bidirectional
//! stream as the *control stream* and sends a [`control::Hello`]; the edge answers with a
//! [`control::HelloReply`]. After that the edge opens one bidirectional stream per proxied HTTP
//! request: it writes a [`stream::StreamHeader`] frame, then raw HTTP/1.1 bytes follow in both
//! directions. Frames are length-prefixed JSON ([`codec`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod control;
pub mod error_code;
pub mod headers;
pub mod quic_io;
pub mod stream;
pub mod transport;

/// ALPN protocol id negotiated on the agent's QUIC connection.
pub const ALPN: &[u8] = b"sluice/1";

/// Version of the control protocol spoken in [`control::Hello`].
pub const PROTOCOL_VERSION: u32 = 1;

/// QUIC application close codes used by both sides.
pub mod close_code {
    /// Clean shutdown (agent Ctrl-C, edge shutdown).
    pub const NORMAL: u32 = 0;
    /// The handshake was refused (bad token, hostname taken, invalid policy).
    pub const REJECTED: u32 = 1;
    /// Protocol violation (bad frame, unexpected stream).
    pub const PROTOCOL: u32 = 2;
    /// Another session with the same authtoken took over this session's hostnames.
    pub const REPLACED: u32 = 3;
}

/// QUIC stream reset codes.
pub mod reset_code {
    /// The stream was abandoned before its data was complete; the peer must not treat what it
    /// received as a whole message.
    pub const ABORTED: u32 = 1;
}
