//! Proxy header semantics: hop-by-hop removal, `x-forwarded-*`, and response sanitising.

use crate::coded_error::edge_error;
use pingora::http::{RequestHeader, ResponseHeader};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::error_code::{AGENT_ERROR_HEADER, ERROR_CODE_HEADER};
use sluice_proto::headers::{hop_by_hop, is_upgrade, HOP_BY_HOP};
use std::net::IpAddr;

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
/// - connection-specific fields go (`hop_by_hop`): the websocket upgrade pair and
///   `te: trailers` stay;
/// - `x-forwarded-for` and `x-forwarded-proto` get the client's address and scheme appended;
///   `x-forwarded-host` keeps a client-sent value, otherwise it is set to `host`;
/// - the authority moves into `host` (HTTP/2 clients send only `:authority`) and the target
///   becomes origin-form (`/path?query`).
pub fn prepare_upstream_request(
    req: &mut RequestHeader,
    client_ip: Option<IpAddr>,
    scheme: &str,
    host: &str,
) -> pingora::Result<()> {
    let rule = hop_by_hop(&req.headers, is_upgrade(&req.headers));
    for name in &rule.remove {
        req.remove_header(name.as_str());
    }
    if rule.connection_upgrade {
        req.insert_header(http::header::CONNECTION, "upgrade")?;
    }
    if rule.te_trailers {
        req.insert_header(http::header::TE, "trailers")?;
    }
    if let Some(ip) = client_ip {
        append_list(req, "x-forwarded-for", &ip.to_string())?;
    }
    append_list(req, "x-forwarded-proto", scheme)?;
    if !req.headers.contains_key("x-forwarded-host") {
        req.insert_header("x-forwarded-host", host)?;
    }
    if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_string()) {
        if !req.headers.contains_key(http::header::HOST) {
            req.insert_header(http::header::HOST, authority)?;
        }
        let origin_form = req
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let uri = origin_form
            .parse()
            .map_err(|_| edge_error(ErrorCode::BadRequest, "bad uri"))?;
        req.set_uri(uri);
    }
    Ok(())
}

/// Cleans the agent's response head before it reaches the client.
///
/// A `sluice-error-code` (or the agent's internal marker) from upstream is always removed, so
/// the header can only ever mean the edge produced the response: failures in the agent arrive
/// as error frames, never as headers.
pub fn sanitize_upstream_response(resp: &mut ResponseHeader) -> pingora::Result<()> {
    resp.remove_header(AGENT_ERROR_HEADER);
    resp.remove_header(ERROR_CODE_HEADER);
    if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        // The agent's hop may have added tokens such as `close` (hyper does when its per-stream
        // connection is not kept alive); the client's hop is being upgraded, nothing else.
        // Strict websocket clients (tungstenite) refuse `Connection: upgrade, close`.
        resp.insert_header("connection", "upgrade")?;
    } else {
        for name in &HOP_BY_HOP {
            if resp.headers.contains_key(name) {
                resp.remove_header(name);
            }
        }
    }
    Ok(())
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
        assert!(!req.headers.contains_key("connection"));
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
        resp.insert_header(AGENT_ERROR_HEADER, "ERR_SLUICE_8012")
            .expect("h");
        sanitize_upstream_response(&mut resp).expect("ok");
        assert!(!resp.headers.contains_key(ERROR_CODE_HEADER));
        assert!(!resp.headers.contains_key(AGENT_ERROR_HEADER));
        assert!(!resp.headers.contains_key("connection"));
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
