//! The phases a rule can run in.

use std::fmt;

/// A phase of a connection or an HTTP exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `on_tcp_connect`: once per client connection, before any byte is read from it (and
    /// before TLS is terminated); only `conn.*`-style variables exist there.
    TcpConnect,
    /// `on_http_request`: before the upstream is called.
    Request,
    /// `on_http_response`: on the upstream's (or a policy-generated) response.
    Response,
    /// `on_event_stream_message`: on each server-sent event of a `text/event-stream`
    /// response, as it streams.
    EventStream,
}

impl Phase {
    /// The document key of the phase.
    pub fn key(self) -> &'static str {
        match self {
            Phase::TcpConnect => "on_tcp_connect",
            Phase::Request => "on_http_request",
            Phase::Response => "on_http_response",
            Phase::EventStream => "on_event_stream_message",
        }
    }

    /// Whether the phase has an HTTP message (`req.*`, and `res.*` in the response phases):
    /// every phase but on_tcp_connect.
    pub fn has_message(self) -> bool {
        self != Phase::TcpConnect
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}
