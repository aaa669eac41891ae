//! The upstream an endpoint forwards to: ngrok's normalisation of `8080`, `host:port` and
//! URLs, `file://` directories, in-process services (the SDK), and the TCP address of a
//! `tcp://` or `tls://` endpoint.

use crate::forward::app_service::AppService;
use http::uri::{Authority, Scheme, Uri};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the agent sends an endpoint's requests.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// An HTTP or HTTPS app at `scheme://authority`.
    Http {
        /// `http` or `https`.
        scheme: Scheme,
        /// `host[:port]`.
        authority: Authority,
    },
    /// The built-in static file server on this directory (`file:///abs` or `file://relative`;
    /// a relative path is resolved against the working directory when the agent starts).
    Files {
        /// The served directory.
        root: PathBuf,
    },
    /// A service inside this process (see [`crate::sdk`]).
    Service(AppService),
    /// A TCP address (`host:port`) a `tcp://` or `tls://` endpoint's connections go to, byte
    /// for byte.
    Tcp {
        /// `host:port`.
        address: Authority,
    },
}

/// Why an upstream string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid upstream '{input}': {reason} (expected PORT, HOST:PORT, http://HOST[:PORT], https://HOST[:PORT], tcp://HOST:PORT or file:///DIR)")]
pub struct UpstreamError {
    input: String,
    reason: &'static str,
}

impl Upstream {
    /// An upstream for an in-process service.
    pub fn service(service: AppService) -> Self {
        Upstream::Service(service)
    }

    /// The URI scheme of an HTTP(S) upstream.
    pub fn scheme(&self) -> Option<&Scheme> {
        match self {
            Upstream::Http { scheme, .. } => Some(scheme),
            _ => None,
        }
    }

    /// `host:port` of an HTTP(S) upstream (port omitted when it is the scheme's default).
    pub fn authority(&self) -> Option<&Authority> {
        match self {
            Upstream::Http { authority, .. } => Some(authority),
            _ => None,
        }
    }

    /// The directory of a `file://` upstream.
    pub fn file_root(&self) -> Option<&Path> {
        match self {
            Upstream::Files { root } => Some(root),
            _ => None,
        }
    }

    /// The upstream URI for a request path (`/a?b`); `None` for non-HTTP upstreams.
    pub(crate) fn uri_for(&self, path_and_query: &str) -> Option<Result<Uri, http::Error>> {
        let Upstream::Http { scheme, authority } = self else {
            return None;
        };
        Some(
            Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query(path_and_query)
                .build(),
        )
    }

    /// The `host:port` of a TCP upstream.
    pub fn tcp_address(&self) -> Option<&Authority> {
        match self {
            Upstream::Tcp { address } => Some(address),
            _ => None,
        }
    }

    /// The same upstream as a TCP address, for a `tcp://` or `tls://` endpoint: `22` is
    /// `localhost:22`, `HOST:PORT` and `tcp://HOST:PORT` are taken as they are; a URL naming
    /// another scheme, a directory or a service is refused.
    pub(crate) fn into_tcp(self, input: &str) -> Result<Self, UpstreamError> {
        let err = |reason| UpstreamError {
            input: input.to_string(),
            reason,
        };
        match self {
            Upstream::Tcp { .. } => Ok(self),
            Upstream::Http { authority, .. } if !input.contains("://") => {
                if authority.port_u16().is_none() {
                    return Err(err("a TCP upstream needs a port"));
                }
                Ok(Upstream::Tcp { address: authority })
            }
            _ => Err(err(
                "a tcp:// or tls:// endpoint forwards to PORT, HOST:PORT or tcp://HOST:PORT",
            )),
        }
    }

    /// Resolves a relative `file://` root against `base` (the config file's directory); other
    /// upstreams are returned unchanged.
    pub(crate) fn relative_to(self, base: &Path) -> Self {
        match self {
            Upstream::Files { root } if root.is_relative() => Upstream::Files {
                root: base.join(root),
            },
            other => other,
        }
    }
}

impl FromStr for Upstream {
    type Err = UpstreamError;

    /// - `8080` → `http://localhost:8080`
    /// - `example:443` → `https://example:443` (port 443 means TLS), other `host:port` → http
    /// - `http://…` / `https://…` as given (no path allowed)
    /// - `file:///abs/dir`, `file://relative/dir`
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
            Some(("file", "")) => return Err(err("missing directory")),
            Some(("file", path)) => {
                return Ok(Upstream::Files {
                    root: PathBuf::from(path),
                })
            }
            Some(("tcp", rest)) => {
                let address: Authority = rest
                    .trim_end_matches('/')
                    .parse()
                    .map_err(|_| err("not host:port"))?;
                if address.host().is_empty() || address.port_u16().is_none() {
                    return Err(err("a TCP upstream is HOST:PORT"));
                }
                return Ok(Upstream::Tcp { address });
            }
            Some(_) => return Err(err("unsupported scheme")),
            None => {
                let authority: Authority = s.parse().map_err(|_| err("not host:port"))?;
                let scheme = if authority.port_u16() == Some(443) {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                };
                return Ok(Upstream::Http { scheme, authority });
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
        Ok(Upstream::Http { scheme, authority })
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Http { scheme, authority } => write!(f, "{scheme}://{authority}"),
            Upstream::Files { root } => write!(f, "file://{}", root.display()),
            Upstream::Service(svc) => write!(f, "app://{}", svc.name()),
            Upstream::Tcp { address } => write!(f, "tcp://{address}"),
        }
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
            ("file:///srv/www", "file:///srv/www"),
            ("file://site", "file://site"),
            ("tcp://db:5432", "tcp://db:5432"),
        ] {
            assert_eq!(input.parse::<Upstream>().expect(input).to_string(), want);
        }
        for bad in [
            "0",
            "ftp://x",
            "http://x/path",
            "http://",
            "no port",
            "file://",
            "tcp://db",
        ] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tcp_endpoints_take_addresses_only() {
        for (input, want) in [
            ("22", "tcp://localhost:22"),
            ("db.local:5432", "tcp://db.local:5432"),
            ("tcp://10.0.0.2:6379", "tcp://10.0.0.2:6379"),
        ] {
            let up: Upstream = input.parse().expect(input);
            assert_eq!(up.into_tcp(input).expect(input).to_string(), want);
        }
        for bad in ["http://app:80", "file:///srv", "db.local"] {
            let up: Upstream = bad.parse().expect(bad);
            assert!(up.into_tcp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_file_roots_follow_the_base() {
        let up: Upstream = "file://site".parse().expect("parses");
        let up = up.relative_to(Path::new("/etc/sluice"));
        assert_eq!(up.file_root(), Some(Path::new("/etc/sluice/site")));
        let abs: Upstream = "file:///srv".parse().expect("parses");
        assert_eq!(
            abs.relative_to(Path::new("/x")).file_root(),
            Some(Path::new("/srv"))
        );
    }
}
