//! [`Scheme`]: how a client reached the edge.

use serde::{Deserialize, Serialize};

/// Public scheme the client used to reach the edge: an endpoint's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS terminated at the edge.
    Https,
    /// Raw TCP on one of the edge's TCP ports.
    Tcp,
    /// TLS routed by SNI on the edge's HTTPS port and passed through (or terminated by a
    /// `terminate-tls` action).
    Tls,
}

impl Scheme {
    /// `"http"`, `"https"`, `"tcp"` or `"tls"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
        }
    }

    /// Whether requests are HTTP (http and https endpoints), rather than raw connections.
    pub fn is_http(self) -> bool {
        matches!(self, Scheme::Http | Scheme::Https)
    }

    /// The scheme a URL's `scheme://` names, if Sluice has it.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            _ => return None,
        })
    }
}
