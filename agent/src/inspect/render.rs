//! Captured exchanges as the inspector API's JSON (ngrok agent API shape, plus a `body` object
//! with a pretty-printed rendering of JSON, form and text bodies).

use super::connections::CapturedConnection;
use super::store::{BodyCapture, Captured};
use crate::forward::observe::ConnectionFailure;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Version};
use serde_json::{json, Map, Value};
use sluice_proto::link::Transport;
use std::time::Instant;

/// One of the agent's links to the edges, for `/api/tunnels`' `links`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The edge's address as the link reaches it.
    pub edge: String,
    /// The edge's id in a cluster; `None` for an edge that runs alone.
    pub edge_id: Option<String>,
    /// The link's transport.
    pub transport: Transport,
    /// The edge's session id.
    pub session_id: String,
}

/// `/api/tunnels`' `links`: each link in slot order.
pub fn links(links: &std::collections::BTreeMap<usize, LinkInfo>) -> Value {
    links
        .iter()
        .map(|(slot, l)| {
            json!({
                "slot": slot,
                "edge": l.edge,
                "edge_id": l.edge_id,
                "transport": l.transport,
                "session_id": l.session_id,
            })
        })
        .collect()
}

/// The name and public URL of each endpoint, for `tunnel_name` and `/api/tunnels`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Tunnel name (the routed hostname once online).
    pub name: String,
    /// Public URL (empty until online).
    pub public_url: String,
    /// The local upstream.
    pub upstream: String,
    /// The transport of the agent's link to the edge, once online.
    pub transport: Option<Transport>,
}

/// One exchange as `/api/requests/http/:id` returns it.
pub fn exchange(e: &Captured, tunnels: &[TunnelInfo]) -> Value {
    let id = e.id();
    let request = &e.request;
    let mut req_head = format!(
        "{} {} {}\r\n",
        request.method,
        request.uri,
        proto(request.version)
    );
    req_head.push_str(&head_lines(&request.headers));
    let response = e.response.as_ref().map(|r| {
        let mut head = format!("{} {}\r\n", proto(r.version), r.status);
        head.push_str(&head_lines(&r.headers));
        json!({
            "status": r.status.to_string(),
            "status_code": r.status.as_u16(),
            "proto": proto(r.version),
            "headers": headers(&r.headers),
            "raw": raw(&head, e.response_body.as_ref()),
            "body": body(&r.headers, e.response_body.as_ref()),
        })
    });
    json!({
        "id": id,
        "uri": format!("/api/requests/http/{id}"),
        "tunnel_name": tunnel_name(e.endpoint, tunnels),
        "remote_addr": e.remote_addr.map(|a| a.to_string()),
        "start": humantime::format_rfc3339_millis(e.start).to_string(),
        "duration": e.duration.map_or(0, |d| d.as_nanos() as u64),
        "replay_of": e.replay_of,
        "request": {
            "method": request.method.as_str(),
            "proto": proto(request.version),
            "headers": headers(&request.headers),
            "uri": request.uri.to_string(),
            "raw": raw(&req_head, e.request_body.as_ref()),
            "body": body(&request.headers, e.request_body.as_ref()),
        },
        "response": response,
    })
}

/// One TCP connection as `/api/connections/:id` returns it; `now` measures an open one.
pub fn connection(c: &CapturedConnection, tunnels: &[TunnelInfo], now: Instant) -> Value {
    let id = c.id();
    let (state, failure) = match c.end.as_ref().map(|e| e.failure.as_ref()) {
        None => ("open", Value::Null),
        Some(None) => ("closed", Value::Null),
        Some(Some(f)) => {
            let kind = match f {
                ConnectionFailure::Unreachable(_) => "upstream_unreachable",
                ConnectionFailure::Broken(_) => "broken",
            };
            ("failed", json!({ "kind": kind, "msg": f.to_string() }))
        }
    };
    let duration = c
        .end
        .as_ref()
        .map_or_else(|| now.saturating_duration_since(c.started), |e| e.duration);
    // Counted as they flow while open; the totals once closed.
    let (bytes_in, bytes_out) = c.end.as_ref().map_or_else(
        || (c.bytes.from_stream(), c.bytes.to_stream()),
        |e| (e.bytes_in, e.bytes_out),
    );
    json!({
        "id": id,
        "uri": format!("/api/connections/{id}"),
        "kind": "tcp",
        "tunnel_name": tunnel_name(c.endpoint, tunnels),
        "connection_id": c.connection_id,
        "remote_addr": c.client_addr.to_string(),
        "start": humantime::format_rfc3339_millis(c.start).to_string(),
        "duration": duration.as_nanos() as u64,
        "state": state,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "failure": failure,
    })
}

fn tunnel_name(endpoint: usize, tunnels: &[TunnelInfo]) -> String {
    tunnels
        .get(endpoint)
        .map_or_else(|| format!("endpoint-{endpoint}"), |t| t.name.clone())
}

fn proto(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn head_lines(h: &HeaderMap) -> String {
    let mut s = String::new();
    for (name, value) in h {
        s.push_str(&canonical(name.as_str()));
        s.push_str(": ");
        s.push_str(&String::from_utf8_lossy(value.as_bytes()));
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s
}

/// Go's canonical header form (`content-type` → `Content-Type`), as ngrok's API shows names.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Headers as `{"Name": ["value", …]}`.
fn headers(h: &HeaderMap) -> Value {
    let mut map = Map::new();
    for (name, value) in h {
        let entry = map
            .entry(canonical(name.as_str()))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::String(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    Value::Object(map)
}

fn raw(head: &str, body: Option<&BodyCapture>) -> String {
    let mut bytes = head.as_bytes().to_vec();
    if let Some(b) = body {
        bytes.extend_from_slice(&b.bytes);
    }
    BASE64.encode(bytes)
}

/// What kind of body, from its content type and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `application/json` or `+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Other UTF-8 text.
    Text,
    /// Not text.
    Binary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Json => "json",
            Kind::Form => "form",
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }
}

fn body(h: &HeaderMap, b: Option<&BodyCapture>) -> Value {
    let Some(b) = b else { return Value::Null };
    let content_type = h
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (kind, pretty) = pretty(content_type, &b.bytes, b.truncated);
    json!({
        "size": b.size,
        "captured": b.bytes.len(),
        "truncated": b.truncated,
        "complete": b.complete,
        "content_type": content_type,
        "kind": kind.as_str(),
        "pretty": pretty,
    })
}

/// Classifies a body and renders it for reading: JSON indented, forms one `name = value` per
/// line (decoded), text as is; `None` for binary. A cut JSON body is shown as text.
pub fn pretty(content_type: &str, bytes: &[u8], truncated: bool) -> (Kind, Option<String>) {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Ok(text) = std::str::from_utf8(bytes) else {
        return (Kind::Binary, None);
    };
    if mime == "application/json" || mime.ends_with("+json") {
        if !truncated {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                let s = serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.to_string());
                return (Kind::Json, Some(s));
            }
        }
        return (Kind::Text, Some(text.to_string()));
    }
    if mime == "application/x-www-form-urlencoded" {
        let lines: Vec<String> = form_urlencoded::parse(bytes)
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        return (Kind::Form, Some(lines.join("\n")));
    }
    let printable = text.chars().all(|c| !c.is_control() || c.is_whitespace());
    if printable {
        (Kind::Text, Some(text.to_string()))
    } else {
        (Kind::Binary, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_indented() {
        let (kind, s) = pretty(
            "application/json; charset=utf-8",
            br#"{"a":[1,2],"b":"x"}"#,
            false,
        );
        assert_eq!(kind, Kind::Json);
        assert_eq!(
            s.as_deref(),
            Some("{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": \"x\"\n}")
        );
    }

    #[test]
    fn cut_or_invalid_json_is_text() {
        assert_eq!(pretty("application/json", br#"{"a":"#, true).0, Kind::Text);
        assert_eq!(
            pretty("application/vnd.api+json", b"nope", false).0,
            Kind::Text
        );
    }

    #[test]
    fn form_is_decoded_per_field() {
        let (kind, s) = pretty(
            "application/x-www-form-urlencoded",
            b"name=J%C3%BCrgen+X&n=1",
            false,
        );
        assert_eq!(kind, Kind::Form);
        assert_eq!(s.as_deref(), Some("name = Jürgen X\nn = 1"));
    }

    #[test]
    fn binary_has_no_rendering() {
        assert_eq!(
            pretty("image/png", &[0x89, b'P', b'N', b'G', 0, 1], false),
            (Kind::Binary, None)
        );
        assert_eq!(pretty("", &[0xff, 0xfe], false), (Kind::Binary, None));
        assert_eq!(pretty("text/plain", b"hi\nthere", false).0, Kind::Text);
    }

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-github-event"), "X-Github-Event");
    }
}
