//! Builds the `http_request_complete.v0` event of one finished request: ngrok's envelope and
//! field names (docs/events.md) plus Sluice's own fields.

use crate::ids::new_id;
use crate::record::{ConnectionRecord, RequestRecord};
use http::HeaderMap;
use serde_json::{json, Map, Value};
use sluice_policy::Decision;
use std::time::SystemTime;

/// The event type of a completed HTTP request.
pub const HTTP_REQUEST_COMPLETE: &str = "http_request_complete.v0";

/// The event type of a finished connection to a TCP endpoint.
pub const TCP_CONNECTION_CLOSED: &str = "tcp_connection_closed.v0";

/// Header values never exported: credentials and session cookies.
const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// The event's `object`: what filters (`ev`) and field selections see.
pub fn object(req: &RequestRecord<'_>) -> Value {
    let mut obj = Map::new();
    obj.insert("conn".into(), conn(req));
    if let Some(version) = req.tls_version {
        obj.insert("tls".into(), json!({ "version": version }));
    }
    obj.insert(
        "http".into(),
        json!({ "request": request(req), "response": response(req) }),
    );
    // A forwarded request ran several policies; the later endpoint's decision wins where
    // two decided the same thing, and the logs are all kept, in order.
    let mut logs = Vec::new();
    for state in &req.policies {
        if let Some((user, decision)) = state.basic_auth() {
            obj.insert(
                "basic_auth".into(),
                json!({ "decision": allow_or_block(decision), "username": user.unwrap_or_default() }),
            );
        }
        if let Some(decision) = state.ip_policy() {
            obj.insert(
                "ip_policy".into(),
                json!({ "decision": allow_or_block(decision) }),
            );
        }
        if let Some(decision) = state.webhook_verification() {
            obj.insert(
                "webhook_verification".into(),
                json!({ "decision": allow_or_block(decision) }),
            );
        }
        if let Some(algorithm) = state.compression() {
            obj.insert("compression".into(), json!({ "algorithm": algorithm }));
        }
        logs.extend_from_slice(state.logs());
        if let Some((decision, client_id)) = state.login() {
            let user = state.identity();
            obj.insert(
                "oauth".into(),
                json!({
                    "app_client_id": client_id.unwrap_or_default(),
                    "decision": allow_or_block(decision),
                    "user": {
                        "id": user.map(|u| u.id.as_str()).unwrap_or_default(),
                        "name": user.and_then(|u| u.name.as_deref()).unwrap_or_default(),
                    },
                }),
            );
        }
    }
    if !req.policies.is_empty() {
        obj.insert("traffic_policy".into(), json!({ "logs": logs }));
    }
    sluice_fields(req, &mut obj);
    Value::Object(obj)
}

/// The `tcp_connection_closed.v0` event's `object`: ngrok's fields, then Sluice's own.
pub fn connection_object(conn: &ConnectionRecord<'_>) -> Value {
    let end = conn.start + conn.duration;
    let mut obj = Map::new();
    obj.insert(
        "conn".into(),
        json!({
            "bytes_in": conn.bytes_in,
            "bytes_out": conn.bytes_out,
            "client_ip": conn.client_addr.ip().to_string(),
            "client_port": conn.client_addr.port(),
            "server_ip": conn.server_addr.ip().to_string(),
            "server_port": conn.server_addr.port(),
            "server_name": conn.endpoint.map(|e| e.host.as_str()).unwrap_or_default(),
            "start_ts": humantime::format_rfc3339_millis(conn.start).to_string(),
            "end_ts": humantime::format_rfc3339_millis(end).to_string(),
        }),
    );
    if let Some(policy) = conn.policy {
        if let Some(decision) = policy.ip_policy() {
            obj.insert(
                "ip_policy".into(),
                json!({ "decision": allow_or_block(decision) }),
            );
        }
        obj.insert("traffic_policy".into(), json!({ "logs": policy.logs() }));
    }
    if let Some(edge) = conn.forwarded_to_edge {
        obj.insert("forwarded_to_edge".into(), json!(edge));
    }
    obj.insert(
        "sluice".into(),
        json!({
            "connection_id": conn.connection_id,
            "endpoint_id": conn.endpoint.map(|e| e.id.as_str()),
            "endpoint_url": conn.endpoint_url,
            "session_id": conn.agent.map(|a| a.session_id),
            "transport": conn.agent.map(|a| a.transport),
            "outcome": conn.outcome,
            "duration_ms": conn.duration.as_secs_f64() * 1000.0,
        }),
    );
    Value::Object(obj)
}

/// Wraps an object (possibly narrowed by a field selection) in the envelope of `event_type`.
pub fn envelope(
    event_type: &str,
    event_id: &str,
    timestamp: SystemTime,
    principal: &Value,
    object: Value,
) -> Value {
    json!({
        "event_id": event_id,
        "event_type": event_type,
        "event_timestamp": humantime::format_rfc3339_millis(timestamp).to_string(),
        "principal": principal,
        "object": object,
    })
}

/// A new event id, `ev_…`.
pub fn new_event_id() -> String {
    new_id("ev")
}

/// ngrok reports allow/block; a basic-auth challenge or a CORS preflight let through are
/// reported as what happened to the request.
fn allow_or_block(d: Decision) -> &'static str {
    match d {
        Decision::Allow | Decision::Preflight => "allow",
        _ => "block",
    }
}

fn conn(req: &RequestRecord<'_>) -> Value {
    json!({
        "client_ip": req.client_addr.map(|a| a.ip().to_string()),
        "client_port": req.client_addr.map(|a| a.port()),
        "server_ip": req.server_addr.map(|a| a.ip().to_string()),
        "server_port": req.server_addr.map(|a| a.port()),
        "server_name": req.host,
        "start_ts": humantime::format_rfc3339_millis(req.start).to_string(),
    })
}

fn request(req: &RequestRecord<'_>) -> Value {
    let head = req.request;
    let uri = &head.uri;
    json!({
        "method": head.method.as_str().to_ascii_lowercase(),
        "url": {
            "host": req.host,
            "path": uri.path(),
            "query": uri.query().unwrap_or_default(),
            "raw": uri.path_and_query().map_or("/", |p| p.as_str()),
            "scheme": req.scheme,
        },
        "headers": headers(&head.headers),
        "user_agent": head.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
        "body_length": req.request_body_bytes,
        "version": format!("{:?}", head.version),
    })
}

fn response(req: &RequestRecord<'_>) -> Value {
    json!({
        "status_code": req.status,
        "headers": req.response.map(|r| headers(&r.headers)).unwrap_or_else(|| json!({})),
        "body_length": req.response_body_bytes,
    })
}

/// Sluice's additions: which endpoint and agent session, how long, which error code.
fn sluice_fields(req: &RequestRecord<'_>, obj: &mut Map<String, Value>) {
    if let Some(ep) = req.endpoint {
        obj.insert(
            "endpoint".into(),
            json!({ "id": ep.id, "url": ep.url, "name": req.endpoint_label }),
        );
    }
    if !req.forwarded_to.is_empty() {
        let targets: Vec<Value> = req
            .forwarded_to
            .iter()
            .map(|ep| json!({ "id": ep.id, "url": ep.url }))
            .collect();
        obj.insert("forwarded_to".into(), Value::Array(targets));
    }
    if let Some(edge) = req.forwarded_to_edge {
        obj.insert("forwarded_to_edge".into(), json!(edge));
    }
    if let Some(agent) = req.agent {
        obj.insert(
            "agent".into(),
            json!({ "session_id": agent.session_id, "transport": agent.transport }),
        );
    }
    obj.insert("request_id".into(), json!(req.request_id));
    obj.insert(
        "duration_ms".into(),
        json!(req.duration.as_secs_f64() * 1000.0),
    );
    obj.insert("error_code".into(), json!(req.error_code));
}

/// `map[string][]string` with ngrok's capitalised keys (`User-Agent`); credential headers'
/// values are replaced by `[redacted]`.
fn headers(map: &HeaderMap) -> Value {
    let mut out: Map<String, Value> = Map::new();
    for (name, value) in map {
        let value = if REDACTED_HEADERS.contains(&name.as_str()) {
            "[redacted]".to_string()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        let entry = out
            .entry(capitalize(name.as_str()))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::String(value));
        }
    }
    Value::Object(out)
}

/// `x-forwarded-for` → `X-Forwarded-For`.
fn capitalize(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_capitalised_and_credentials_redacted() {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", "1.2.3.4".parse().expect("value"));
        map.insert("authorization", "Basic c2VjcmV0".parse().expect("value"));
        let v = headers(&map);
        assert_eq!(v["X-Forwarded-For"], json!(["1.2.3.4"]));
        assert_eq!(v["Authorization"], json!(["[redacted]"]));
    }
}
