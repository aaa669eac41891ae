//! `--host-header rewrite`'s response half: a `Location` that points at the upstream's own
//! address is turned back into the public URL, so redirects keep the client on the tunnel.

use http::header::LOCATION;
use http::uri::{Authority, Scheme, Uri};
use http::{HeaderMap, HeaderValue};

/// The origin the client used, e.g. `http://app.example.com:8080`.
#[derive(Debug, Clone)]
pub struct PublicOrigin {
    scheme: &'static str,
    host: String,
}

impl PublicOrigin {
    /// From a scheme and the client's `Host` header.
    pub fn new(scheme: &'static str, host: &str) -> Self {
        Self {
            scheme,
            host: host.to_string(),
        }
    }

    /// From a request the edge forwarded: `Host`, and the scheme the edge appended last to
    /// `x-forwarded-proto` (earlier values came from the client and are not trusted).
    pub fn of(headers: &HeaderMap) -> Option<Self> {
        let host = headers.get(http::header::HOST)?.to_str().ok()?;
        let proto = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .map(str::trim);
        let scheme = if proto == Some("https") {
            "https"
        } else {
            "http"
        };
        Some(Self::new(scheme, host))
    }
}

/// The port a URI names, or its scheme's default.
fn effective_port(scheme: Option<&Scheme>, authority: &Authority) -> Option<u16> {
    authority.port_u16().or_else(|| match scheme?.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    })
}

/// Rewrites `Location` when its scheme, host and port are the upstream's.
pub fn rewrite(
    headers: &mut HeaderMap,
    upstream_scheme: &Scheme,
    upstream: &Authority,
    public: &PublicOrigin,
) {
    let Some(location) = headers.get(LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Ok(uri) = location.parse::<Uri>() else {
        return;
    };
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return; // relative: already resolved against the public URL by the client
    };
    let same = scheme == upstream_scheme
        && authority.host().eq_ignore_ascii_case(upstream.host())
        && effective_port(Some(scheme), authority)
            == effective_port(Some(upstream_scheme), upstream);
    if !same {
        return;
    }
    let rest = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let rewritten = format!("{}://{}{rest}", public.scheme, public.host);
    if let Ok(v) = HeaderValue::from_str(&rewritten) {
        headers.insert(LOCATION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(location: &str) -> String {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_str(location).expect("value"));
        let public = PublicOrigin::new("http", "app.tunnel.test:8080");
        let upstream: Authority = "localhost:3000".parse().expect("authority");
        rewrite(&mut h, &Scheme::HTTP, &upstream, &public);
        h[LOCATION].to_str().expect("ascii").to_string()
    }

    #[test]
    fn only_upstream_locations_change() {
        assert_eq!(
            run("http://localhost:3000/login?next=%2F"),
            "http://app.tunnel.test:8080/login?next=%2F"
        );
        assert_eq!(run("http://LOCALHOST:3000"), "http://app.tunnel.test:8080/");
        assert_eq!(run("/relative"), "/relative");
        assert_eq!(run("http://localhost:3001/x"), "http://localhost:3001/x");
        assert_eq!(run("https://localhost:3000/x"), "https://localhost:3000/x");
        assert_eq!(run("https://example.com/x"), "https://example.com/x");
    }
}
