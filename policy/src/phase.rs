//! The phases a rule can run in.

use std::fmt;

/// A phase of an HTTP exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
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
            Phase::Request => "on_http_request",
            Phase::Response => "on_http_response",
            Phase::EventStream => "on_event_stream_message",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}
