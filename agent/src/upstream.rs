//! The local upstream address: ngrok's normalisation of `8080`, `host:port` and URLs.

use http::uri::{Authority, Scheme, Uri};
use std::fmt;
use std::str::FromStr;

/// Where the agent forwards requests: scheme and authority of the local app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
}

/// Why an upstream string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream '{input}': {reason} (expected PORT, HOST:PORT, http://HOST[:PORT] or https://HOST[:PORT])")]
pub struct UpstreamError {
    input: String,
    reason: &'static str,
}

impl Upstream {
    /// The URI scheme (`http` or `https`).
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// `host:port` (port omitted when it is the scheme's default).
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The upstream URI for a request path (`/a?b`).
    pub fn uri_for(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    /// - `8080` → `http://localhost:8080`
    /// - `example:443` → `https://example:443` (port 443 means TLS), other `host:port` → http
    /// - `http://…` / `https://…` as given (no path allowed)
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| UpstreamError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if let Ok(port) = s.parse::<u16>() {
            if port == 0 {
                return Err(err("port 0"));
            }
            return Self::from_str(&format!("http://localhost:{port}"));
        }
        let (scheme, rest) = match s.split_once("://") {
            Some(("http", rest)) => (Scheme::HTTP, rest),
            Some(("https", rest)) => (Scheme::HTTPS, rest),
            Some(_) => return Err(err("unsupported scheme")),
            None => {
                let authority: Authority = s.parse().map_err(|_| err("not host:port"))?;
                let scheme = if authority.port_u16() == Some(443) {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                };
                return Ok(Upstream { scheme, authority });
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(err("paths are not supported"));
        }
        let authority: Authority = rest.parse().map_err(|_| err("bad host"))?;
        if authority.host().is_empty() {
            return Err(err("missing host"));
        }
        Ok(Upstream { scheme, authority })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        for (input, want) in [
            ("8080", "http://localhost:8080"),
            ("example.com:8080", "http://example.com:8080"),
            ("example.com:443", "https://example.com:443"),
            ("http://127.0.0.1:3000", "http://127.0.0.1:3000"),
            ("https://api.local", "https://api.local"),
            ("http://app.local/", "http://app.local"),
        ] {
            assert_eq!(input.parse::<Upstream>().expect(input).to_string(), want);
        }
        for bad in ["0", "ftp://x", "http://x/path", "http://", "no port"] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }
}
