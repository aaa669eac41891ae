//! The phases a rule can run in.

use std::fmt;

/// A phase of an HTTP exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `on_http_request`: before the upstream is called.
    Request,
    /// `on_http_response`: on the upstream's (or a policy-generated) response.
    Response,
}

impl Phase {
    /// The document key of the phase.
    pub fn key(self) -> &'static str {
        match self {
            Phase::Request => "on_http_request",
            Phase::Response => "on_http_response",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}
