//! Hostnames: validation, the `Host` header, `--url` normalisation and random names.

use rand::Rng;
use sluice_policy::is_dns_name;
use sluice_proto::scheme::Scheme;
use std::fmt;

/// A validated, lowercase DNS hostname, optionally a wildcard (`*.example.com`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

/// Why a hostname or requested URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    /// Not a valid DNS name.
    #[error("'{0}' is not a valid hostname")]
    Invalid(String),
    /// The URL's scheme is not one this edge serves.
    #[error("unsupported scheme in '{0}': use http:// or https://")]
    Scheme(String),
    /// The hostname is outside the edge's base domain.
    #[error("'{host}' is not under this edge's domain '{domain}'")]
    OutsideDomain {
        /// The requested host.
        host: String,
        /// The edge's base domain.
        domain: String,
    },
    /// The URL has a path, query or port, which endpoints cannot have.
    #[error("'{0}' must be a bare hostname URL (no port, path or query)")]
    Extra(String),
}

impl Hostname {
    /// Validates `s` (case-insensitive) as a hostname; `*.` is allowed as the first label.
    pub fn parse(s: &str) -> Result<Self, HostnameError> {
        let lower = s.trim_end_matches('.').to_ascii_lowercase();
        let body = lower.strip_prefix("*.").unwrap_or(&lower);
        if is_dns_name(body) && lower.len() <= 253 {
            Ok(Hostname(lower))
        } else {
            Err(HostnameError::Invalid(s.to_string()))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a wildcard (`*.…`).
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// Whether this name or pattern covers `host`: equal names, or a wildcard `*.d` and a host
    /// below `d` (at any depth), or a wildcard and a narrower wildcard below it.
    pub fn covers(&self, host: &Hostname) -> bool {
        match self.0.strip_prefix('*') {
            None => self.0 == host.0,
            Some(suffix) => host
                .0
                .strip_prefix('*')
                .unwrap_or(&host.0)
                .ends_with(suffix),
        }
    }

    /// Whether `self` equals `domain` or lies below it.
    pub fn is_within(&self, domain: &Hostname) -> bool {
        let body = self.0.strip_prefix("*.").unwrap_or(&self.0);
        body == domain.0 || body.ends_with(&format!(".{}", domain.0))
    }

    /// A fresh random name directly below `domain`: 16 characters from `[a-z0-9]`, about 82
    /// bits, so names cannot be guessed or enumerated.
    pub fn random_under(domain: &Hostname) -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::thread_rng();
        let name: String = (0..16)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        Hostname(format!("{name}.{}", domain.0))
    }

    /// Turns an agent's `--url` (`NAME`, `NAME.DOMAIN`, `http://NAME.DOMAIN`,
    /// `https://NAME.DOMAIN`, `tls://NAME.DOMAIN`, `*.NAME.DOMAIN`) into the hostname to
    /// route, checking it lies under `domain`. The scheme, if any, is read by
    /// [`requested_scheme`].
    pub fn from_requested_url(url: &str, domain: &Hostname) -> Result<Self, HostnameError> {
        let rest = match url.split_once("://") {
            Some(("http" | "https" | "tls", rest)) => rest,
            Some(_) => return Err(HostnameError::Scheme(url.to_string())),
            None => url,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', ':', '@']) {
            return Err(HostnameError::Extra(url.to_string()));
        }
        let host = if rest.contains('.') {
            Hostname::parse(rest)?
        } else {
            Hostname::parse(&format!("{rest}.{}", domain.0))?
        };
        if host == *domain || !host.is_within(domain) {
            return Err(HostnameError::OutsideDomain {
                host: host.0,
                domain: domain.0.clone(),
            });
        }
        Ok(host)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The scheme an agent's `--url` asks for explicitly (`http://…`, `tcp://…`), if any.
pub fn requested_scheme(url: &str) -> Option<Scheme> {
    Scheme::parse(url.split_once("://")?.0)
}

/// Whether a requested URL names only its scheme (`tls://`, `tcp://`): a random name or port.
pub fn names_only_scheme(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/').is_empty())
}

/// The host part of a `Host` header or URI authority, without port, lowercased.
/// Returns `None` for an empty or malformed value.
pub fn host_without_port(authority: &str) -> Option<String> {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // IPv6 literal: `[::1]:8080`
        rest.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Candidate wildcard patterns for `host`, most specific first:
/// `a.b.example.com` → `*.b.example.com`, `*.example.com`, `*.com`.
pub fn wildcard_candidates(host: &str) -> impl Iterator<Item = String> + '_ {
    host.match_indices('.')
        .map(move |(i, _)| format!("*{}", &host[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> Hostname {
        Hostname::parse("localhost").expect("domain")
    }

    #[test]
    fn requested_url_forms() {
        for (input, want) in [
            ("demo", "demo.localhost"),
            ("Demo.LOCALHOST", "demo.localhost"),
            ("http://demo.localhost", "demo.localhost"),
            ("http://demo.localhost/", "demo.localhost"),
            ("https://demo.localhost", "demo.localhost"),
            ("a.b.localhost", "a.b.localhost"),
            ("*.team.localhost", "*.team.localhost"),
        ] {
            assert_eq!(
                Hostname::from_requested_url(input, &domain())
                    .expect(input)
                    .as_str(),
                want
            );
        }
    }

    #[test]
    fn requested_url_refusals() {
        for bad in [
            "ftp://demo.localhost",
            "demo.example.com",
            "demo.localhost:8080",
            "http://demo.localhost/path",
            "de mo",
            "-demo",
            "",
        ] {
            assert!(
                Hostname::from_requested_url(bad, &domain()).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn requested_schemes() {
        assert_eq!(requested_scheme("https://a.localhost"), Some(Scheme::Https));
        assert_eq!(requested_scheme("http://a.localhost"), Some(Scheme::Http));
        assert_eq!(requested_scheme("a"), None);
    }

    #[test]
    fn host_header_parsing() {
        assert_eq!(
            host_without_port("Demo.Localhost:8080").as_deref(),
            Some("demo.localhost")
        );
        assert_eq!(
            host_without_port("demo.localhost").as_deref(),
            Some("demo.localhost")
        );
        assert_eq!(host_without_port("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(host_without_port(":80"), None);
    }

    #[test]
    fn wildcards_most_specific_first() {
        let got: Vec<_> = wildcard_candidates("a.b.example.com").collect();
        assert_eq!(got, ["*.b.example.com", "*.example.com", "*.com"]);
    }

    #[test]
    fn patterns_cover_hosts() {
        let p = |s| Hostname::parse(s).expect(s);
        assert!(p("*.example.com").covers(&p("a.example.com")));
        assert!(p("*.example.com").covers(&p("a.b.example.com")));
        assert!(p("*.example.com").covers(&p("*.b.example.com")));
        assert!(!p("*.example.com").covers(&p("example.com")));
        assert!(!p("*.example.com").covers(&p("aexample.com")));
        assert!(p("a.example.com").covers(&p("a.example.com")));
        assert!(!p("a.example.com").covers(&p("b.example.com")));
    }

    #[test]
    fn random_names_differ_and_are_valid() {
        let a = Hostname::random_under(&domain());
        let b = Hostname::random_under(&domain());
        assert_ne!(a, b);
        assert_eq!(Hostname::parse(a.as_str()).expect("valid"), a);
        assert!(a.is_within(&domain()));
    }
}
