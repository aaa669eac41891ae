//! Who may talk to the inspector: the `Host` header must name an allowed host (DNS-rebinding
//! defence), and a state-changing request must not come from a foreign web page (CSRF).

use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, Method, StatusCode};

/// Why a request may not talk to the inspector: the status to answer with, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{1}")]
pub struct Refused(pub StatusCode, pub String);

/// The allowed `Host` names (ports are not compared: the listener already fixes the port).
#[derive(Debug, Clone)]
pub struct HostAllowList(Vec<String>);

impl HostAllowList {
    /// `localhost`, `127.0.0.1`, `::1` and `extra` (e.g. `--inspect-allow-host`).
    pub fn new(extra: impl IntoIterator<Item = String>) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_string)
            .collect();
        hosts.extend(extra.into_iter().map(|h| h.to_ascii_lowercase()));
        Self(hosts)
    }

    fn allows(&self, host_port: &str) -> bool {
        let host = host_of(host_port).to_ascii_lowercase();
        self.0.contains(&host)
    }

    /// Checks one request; `Err` carries the status and the reason to answer with.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refused> {
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Refused(StatusCode::BAD_REQUEST, "missing Host header".to_string()))?;
        if !self.allows(host) {
            return Err(Refused(
                StatusCode::FORBIDDEN,
                format!("Host '{host}' is not allowed for the inspector (allow it with --inspect-allow-host)"),
            ));
        }
        if method == Method::GET || method == Method::HEAD {
            return Ok(());
        }
        if let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            if !self.allows(origin_host) {
                return Err(Refused(
                    StatusCode::FORBIDDEN,
                    format!("Origin '{origin}' is not allowed"),
                ));
            }
        }
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if method == Method::POST && !json {
            // Only a script that passed CORS, not a plain cross-site form, can send JSON.
            return Err(Refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST needs Content-Type: application/json".to_string(),
            ));
        }
        Ok(())
    }
}

/// `host` from `host:port`, `[v6]:port`, `[v6]` or `host`.
fn host_of(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn loopback_names_pass_foreign_hosts_fail() {
        let allow = HostAllowList::new(["inspect.test".to_string()]);
        for ok in [
            "localhost:4040",
            "127.0.0.1:4040",
            "[::1]:4040",
            "LOCALHOST",
            "inspect.test:1",
        ] {
            assert!(
                allow.check(&Method::GET, &headers(&[("host", ok)])).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "evil.example:4040",
            "localhost.evil.example",
            "127.0.0.2:4040",
        ] {
            let err = allow
                .check(&Method::GET, &headers(&[("host", bad)]))
                .expect_err(bad);
            assert_eq!(err.0, StatusCode::FORBIDDEN);
        }
        assert_eq!(
            allow
                .check(&Method::GET, &HeaderMap::new())
                .expect_err("no host")
                .0,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn posts_need_json_and_a_local_origin() {
        let allow = HostAllowList::new([]);
        let ok = headers(&[
            ("host", "127.0.0.1:4040"),
            ("content-type", "application/json"),
            ("origin", "http://127.0.0.1:4040"),
        ]);
        assert!(allow.check(&Method::POST, &ok).is_ok());
        let form = headers(&[("host", "127.0.0.1:4040"), ("content-type", "text/plain")]);
        assert_eq!(
            allow.check(&Method::POST, &form).expect_err("form").0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        let foreign = headers(&[
            ("host", "127.0.0.1:4040"),
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(
            allow.check(&Method::POST, &foreign).expect_err("origin").0,
            StatusCode::FORBIDDEN
        );
        let delete = headers(&[
            ("host", "localhost:4040"),
            ("origin", "http://evil.example"),
        ]);
        assert!(allow.check(&Method::DELETE, &delete).is_err());
    }
}
