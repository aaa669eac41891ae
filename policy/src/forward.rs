//! Forwarding to internal endpoints: the target's URL, the edge's check that it can take the
//! request, and why a forward fails (each with its `sluice-error-code`).

use crate::codes;
use crate::dns::is_dns_name;
use http::StatusCode;
use std::fmt;

/// How many endpoints one request may pass through: the public endpoint and at most this many
/// minus one forwards. A longer chain is refused as a loop (`ERR_SLUICE_3501`).
pub const MAX_FORWARD_DEPTH: usize = 5;

/// A `forward-internal` target: `scheme://name.internal[:port]`, validated. The scheme defaults
/// to https and the port to the scheme's (443, 80), as for an agent's internal URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InternalUrl {
    scheme: String,
    host: String,
    port: u16,
}

impl InternalUrl {
    /// Parses a target URL; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) => (s.to_ascii_lowercase(), rest),
            None => ("https".to_string(), url),
        };
        let default_port = match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            "tcp" | "tls" => None,
            _ => {
                return Err(format!(
                    "`{url}`: the scheme must be http, https, tcp or tls"
                ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{url}`: an internal endpoint URL has no path, query or user"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("`{url}`: `{p}` is not a port"))?;
                (h, Some(port))
            }
            None => (rest, None),
        };
        let host = host.to_ascii_lowercase();
        let name = host.strip_suffix(".internal").unwrap_or_default();
        if !is_dns_name(name) || !is_dns_name(&host) {
            return Err(format!(
                "`{url}`: forward-internal reaches only internal endpoints, named `NAME.internal`"
            ));
        }
        let port = port
            .or(default_port)
            .ok_or_else(|| format!("`{url}`: a {scheme}:// URL needs a port"))?;
        Ok(Self { scheme, host, port })
    }

    /// `http`, `https`, `tcp` or `tls`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The hostname, `NAME.internal`, lowercase.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether HTTP traffic can be forwarded to it (an http or https endpoint).
    pub fn is_http(&self) -> bool {
        matches!(self.scheme.as_str(), "http" | "https")
    }
}

impl fmt::Display for InternalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.scheme.as_str(), self.port) {
            ("https", 443) | ("http", 80) => write!(f, "{}://{}", self.scheme, self.host),
            _ => write!(f, "{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

/// The edge's side of forward-internal: whether an internal endpoint of the forwarding
/// endpoint's namespace (its authtoken) can take a request now. Given to the engine with
/// [`Engine::with_internal_endpoints`](crate::Engine::with_internal_endpoints), one per endpoint,
/// so a policy can only ever see its own tenant's endpoints.
pub trait InternalEndpoints: Send + Sync {
    /// `Ok` when `target` is online with at least one live member.
    fn check(&self, target: &InternalUrl) -> Result<(), ForwardError>;
}

/// Why a forward-internal did not forward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The URL (after interpolation) is not an internal endpoint URL.
    #[error("{0}")]
    InvalidUrl(String),
    /// No endpoint with this URL is online in the caller's namespace.
    #[error("no internal endpoint {0} is online")]
    NotFound(String),
    /// The endpoint exists but none of its agents can take a request.
    #[error("internal endpoint {0} is online but none of its agents can take the request")]
    Offline(String),
    /// The URL names a protocol the request cannot be forwarded over (tcp:// from HTTP), or the
    /// name is online only under the other scheme.
    #[error("cannot forward this request to {url}: {reason}")]
    SchemeMismatch {
        /// The target.
        url: String,
        /// What is there instead.
        reason: String,
    },
    /// The request already passed [`MAX_FORWARD_DEPTH`] endpoints.
    #[error("forwarding loop: {chain} (at most {MAX_FORWARD_DEPTH} endpoints per request)")]
    TooDeep {
        /// The endpoints the request passed, in order, then the target.
        chain: String,
    },
}

impl ForwardError {
    /// The `ERR_SLUICE_<n>` number.
    pub fn code(&self) -> u32 {
        match self {
            ForwardError::InvalidUrl(_) => codes::FORWARD_URL_INVALID,
            ForwardError::NotFound(_) => codes::FORWARD_TARGET_NOT_FOUND,
            ForwardError::Offline(_) => codes::FORWARD_TARGET_OFFLINE,
            ForwardError::SchemeMismatch { .. } => codes::FORWARD_SCHEME_MISMATCH,
            ForwardError::TooDeep { .. } => codes::FORWARD_LOOP,
        }
    }

    /// The status the client gets when the forward halts the request.
    pub fn status(&self) -> StatusCode {
        match self {
            ForwardError::InvalidUrl(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ForwardError::NotFound(_) | ForwardError::Offline(_) => StatusCode::SERVICE_UNAVAILABLE,
            ForwardError::SchemeMismatch { .. } => StatusCode::BAD_GATEWAY,
            ForwardError::TooDeep { .. } => StatusCode::LOOP_DETECTED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_default_like_an_agents_internal_url() {
        let parse = |s| InternalUrl::parse(s).map(|u| u.to_string());
        assert_eq!(parse("api.internal").as_deref(), Ok("https://api.internal"));
        assert_eq!(
            parse("http://API.internal:80/").as_deref(),
            Ok("http://api.internal")
        );
        assert_eq!(
            parse("https://a.b.internal:8443").as_deref(),
            Ok("https://a.b.internal:8443")
        );
        assert_eq!(
            parse("tcp://db.internal:5432").as_deref(),
            Ok("tcp://db.internal:5432")
        );
        for bad in [
            "https://example.com",
            "https://.internal",
            "internal",
            "https://api.internal/path",
            "ftp://api.internal",
            "tcp://db.internal",
            "https://api.internal:0",
            "https://api.internal:http",
        ] {
            assert!(InternalUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
