//! Proxy header semantics: hop-by-hop removal, `x-forwarded-*`, and response sanitising.

use pingora::http::{RequestHeader, ResponseHeader};
use sluice_proto::error_code::{ErrorCode, AGENT_ERROR_HEADER, ERROR_CODE_HEADER};
use sluice_proto::headers::HOP_BY_HOP;
use std::net::IpAddr;

/// Whether the request asks for a protocol upgrade (websocket).
pub fn is_upgrade(req: &RequestHeader) -> bool {
    req.headers.contains_key("upgrade")
        && connection_tokens(req.headers.get_all("connection")).any(|t| t == "upgrade")
}

fn connection_tokens<'a>(
    values: http::header::GetAll<'a, http::HeaderValue>,
) -> impl Iterator<Item = String> + 'a {
    values
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

fn joined(req: &RequestHeader, name: &str) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn append_list(req: &mut RequestHeader, name: &'static str, value: &str) -> pingora::Result<()> {
    let combined = match joined(req, name) {
        Some(existing) => format!("{existing}, {value}"),
        None => value.to_string(),
    };
    req.insert_header(name, combined).map(|_| ())
}

/// Rewrites the client's request into the one the agent receives.
///
/// - hop-by-hop headers and any header named in `Connection` are dropped, except the
///   websocket upgrade pair;
/// - `x-forwarded-for` and `x-forwarded-proto` get the client's address and scheme appended;
///   `x-forwarded-host` keeps a client-sent value, otherwise it is set to `host`;
/// - the request line uses origin-form (`/path?query`);
/// - `Connection: close` is sent unless upgrading: each request has its own QUIC stream, and
///   the stream must end with the response instead of idling in a pool.
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    client_ip: Option<IpAddr>,
    scheme: &str,
    host: &str,
) -> pingora::Result<()> {
    let upgrade = is_upgrade(req);
    let named: Vec<String> = connection_tokens(req.headers.get_all("connection"))
        .filter(|t| !(upgrade && t == "upgrade"))
        .collect();
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        req.remove_header(name);
    }
    if !upgrade {
        req.remove_header("upgrade");
    }
    if let Some(ip) = client_ip {
        append_list(req, "x-forwarded-for", &ip.to_string())?;
    }
    append_list(req, "x-forwarded-proto", scheme)?;
    if !req.headers.contains_key("x-forwarded-host") {
        req.insert_header("x-forwarded-host", host)?;
    }
    if req.uri.scheme().is_some() || req.uri.authority().is_some() {
        let origin_form = req
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let uri = origin_form
            .parse()
            .map_err(|_| crate::coded_error::edge_error(ErrorCode::BadRequest, "bad uri"))?;
        req.set_uri(uri);
    }
    req.insert_header("connection", if upgrade { "upgrade" } else { "close" })?;
    Ok(())
}

/// Cleans the agent's response head before it reaches the client. Returns the error code when
/// the agent (not the upstream app) produced the response.
///
/// A `sluice-error-code` from upstream is always removed, so the header can only ever mean the
/// edge or agent produced the response.
pub fn sanitize_upstream_response(resp: &mut ResponseHeader) -> pingora::Result<Option<ErrorCode>> {
    let agent_code = resp
        .headers
        .get(AGENT_ERROR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorCode::from_header_value);
    resp.remove_header(AGENT_ERROR_HEADER);
    resp.remove_header(ERROR_CODE_HEADER);
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        // The agent's hop may have added tokens such as `close` (hyper does when its per-stream
        // connection is not kept alive); the client's hop is being upgraded, nothing else.
        // Strict websocket clients (tungstenite) refuse `Connection: upgrade, close`.
        resp.insert_header("connection", "upgrade")?;
    } else {
        for name in HOP_BY_HOP {
            resp.remove_header(name);
        }
    }
    if let Some(code) = agent_code {
        resp.insert_header(ERROR_CODE_HEADER, code.to_string())?;
    }
    Ok(agent_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req =
            RequestHeader::build("GET", b"http://app.localhost/a?b=1", None).expect("req");
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).expect("header");
        }
        req
    }

    #[test]
    fn forwarded_headers_are_appended() {
        let mut req = request(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "drop me"),
            ("keep-alive", "timeout=5"),
        ]);
        prepare_upstream_request(
            &mut req,
            Some("203.0.113.7".parse().expect("ip")),
            "http",
            "app.localhost",
        )
        .expect("prepare");
        assert_eq!(req.headers["x-forwarded-for"], "10.0.0.1, 203.0.113.7");
        assert_eq!(req.headers["x-forwarded-proto"], "https, http");
        assert_eq!(req.headers["x-forwarded-host"], "app.localhost");
        assert_eq!(req.headers["connection"], "close");
        assert!(!req.headers.contains_key("x-secret"));
        assert!(!req.headers.contains_key("keep-alive"));
        assert_eq!(req.uri.to_string(), "/a?b=1");
    }

    #[test]
    fn websocket_upgrade_survives() {
        let mut req = request(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        prepare_upstream_request(&mut req, None, "http", "h").expect("prepare");
        assert_eq!(req.headers["connection"], "upgrade");
        assert_eq!(req.headers["upgrade"], "websocket");
    }

    #[test]
    fn upstream_cannot_forge_error_codes() {
        let mut resp = ResponseHeader::build(200, None).expect("resp");
        resp.insert_header(ERROR_CODE_HEADER, "ERR_SLUICE_3200")
            .expect("h");
        resp.insert_header("connection", "close").expect("h");
        assert_eq!(sanitize_upstream_response(&mut resp).expect("ok"), None);
        assert!(!resp.headers.contains_key(ERROR_CODE_HEADER));
        assert!(!resp.headers.contains_key("connection"));

        let mut resp = ResponseHeader::build(502, None).expect("resp");
        resp.insert_header(AGENT_ERROR_HEADER, "ERR_SLUICE_8012")
            .expect("h");
        assert_eq!(
            sanitize_upstream_response(&mut resp).expect("ok"),
            Some(ErrorCode::UpstreamUnreachable)
        );
        assert_eq!(resp.headers[ERROR_CODE_HEADER], "ERR_SLUICE_8012");
        assert!(!resp.headers.contains_key(AGENT_ERROR_HEADER));
    }

    #[test]
    fn switching_protocols_says_only_upgrade() {
        let mut resp = ResponseHeader::build(101, None).expect("resp");
        resp.append_header("connection", "Upgrade").expect("h");
        resp.append_header("connection", "close").expect("h");
        resp.insert_header("upgrade", "websocket").expect("h");
        sanitize_upstream_response(&mut resp).expect("ok");
        let values: Vec<_> = resp.headers.get_all("connection").iter().collect();
        assert_eq!(values, ["upgrade"]);
        assert_eq!(resp.headers["upgrade"], "websocket");
    }
}
