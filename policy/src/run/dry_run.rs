//! Offline evaluation of one request, for `agent policy test FILE --request 'GET /path' -H 'k: v'`.
//! The report shows `<secret>` wherever a value the policy read with `secrets.get` appears.

use crate::run::engine::{ConnectVerdict, Engine, RequestVerdict, ResponseVerdict};
use crate::run::facts::{ConnInfo, EndpointInfo};
use crate::run::outcome::{ActionOutcome, TraceEntry};
use crate::secrets::REDACTED;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

/// A request to try a policy on.
#[derive(Clone, Debug)]
pub struct DryRunRequest {
    /// Method, e.g. `GET`.
    pub method: Method,
    /// Origin-form target (`/path?q`) or absolute URL.
    pub target: String,
    /// Request headers, in order.
    pub headers: Vec<(String, String)>,
    /// The client address `conn.client_ip` and restrict-ips see.
    pub client_ip: IpAddr,
    /// The status of the pretend upstream response the response phase runs on.
    pub upstream_status: u16,
}

/// A problem with the dry-run request itself.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    /// `--request` is not `METHOD TARGET`.
    #[error("--request `{0}`: expected `METHOD /path`")]
    BadRequestLine(String),
    /// A header is not `name: value` or has invalid characters.
    #[error("header `{0}`: expected `name: value`")]
    BadHeader(String),
    /// The target is not a valid URI.
    #[error("invalid request target `{0}`")]
    BadTarget(String),
}

impl DryRunRequest {
    /// Builds a request from CLI text: `'GET /path'`, `['k: v', ...]` and the client IP.
    pub fn parse(
        request_line: &str,
        headers: &[String],
        client_ip: IpAddr,
    ) -> Result<Self, DryRunError> {
        let mut it = request_line.split_whitespace();
        let (Some(m), Some(t), None) = (it.next(), it.next(), it.next()) else {
            return Err(DryRunError::BadRequestLine(request_line.to_string()));
        };
        let method = Method::from_bytes(m.as_bytes())
            .map_err(|_| DryRunError::BadRequestLine(request_line.to_string()))?;
        let headers = headers
            .iter()
            .map(|h| {
                h.split_once(':')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| DryRunError::BadHeader(h.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            method,
            target: t.to_string(),
            headers,
            client_ip,
            upstream_status: 200,
        })
    }
}

/// What the engine did with the request.
#[derive(Debug)]
pub struct DryRunReport {
    /// The request as the client sent it (`GET http://host/path`).
    pub request: String,
    /// The response the policy generated, if it answered itself.
    pub response: Option<(StatusCode, HeaderMap, String)>,
    /// The request as the upstream would receive it, if it was forwarded.
    pub upstream_request: Option<(Method, Uri, HeaderMap)>,
    /// The upstream response's headers after on_http_response, if forwarded.
    pub upstream_response: Option<(StatusCode, HeaderMap)>,
    /// Which rules matched and what each action did.
    pub trace: Vec<TraceEntry>,
    /// Every action's decision.
    pub outcomes: Vec<ActionOutcome>,
    /// The `log` actions' metadata.
    pub logs: Vec<BTreeMap<String, String>>,
    /// Expressions that failed to evaluate.
    pub errors: Vec<String>,
    /// The internal endpoint forward-internal handed the request to (unchecked: the dry run
    /// knows no endpoints, and the target's own policy is not run).
    pub forwarded_to: Option<String>,
    /// Whether close-connection ended the request (no response at all).
    pub closed: bool,
}

/// Runs both phases of `engine` on `req` with a pretend upstream answering `upstream_status`.
pub fn run(engine: &Engine, req: &DryRunRequest) -> Result<DryRunReport, DryRunError> {
    let uri: Uri = req
        .target
        .parse()
        .map_err(|_| DryRunError::BadTarget(req.target.clone()))?;
    let mut builder = Request::builder()
        .method(req.method.clone())
        .uri(uri.clone());
    for (k, v) in &req.headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| DryRunError::BadHeader(k.clone()))?;
        let value = HeaderValue::from_str(v).map_err(|_| DryRunError::BadHeader(v.clone()))?;
        builder = builder.header(name, value);
    }
    let (mut parts, ()) = builder
        .body(())
        .map_err(|_| DryRunError::BadTarget(req.target.clone()))?
        .into_parts();
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    let host = host
        .or_else(|| uri.host().map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string());
    if !parts.headers.contains_key(HOST) {
        if let Ok(h) = HeaderValue::from_str(&host) {
            parts.headers.insert(HOST, h);
        }
    }
    let scheme = uri.scheme_str().unwrap_or("http").to_string();
    let endpoint = Arc::new(EndpointInfo {
        id: "dry-run".to_string(),
        url: format!("{scheme}://{host}"),
        host: host.clone(),
        port: if scheme == "https" { 443 } else { 80 },
        protocol: scheme.clone(),
    });
    let mut conn = ConnInfo::new(
        SocketAddr::new(req.client_ip, 50_000),
        endpoint.port,
        SystemTime::now(),
    );
    conn.tls.version = (scheme == "https").then(|| "1.3".to_string());
    let mut st = engine.new_request(conn, endpoint);
    st.enable_trace();
    let request = format!(
        "{} {scheme}://{host}{}",
        req.method,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut report = DryRunReport {
        request,
        response: None,
        upstream_request: None,
        upstream_response: None,
        trace: Vec::new(),
        outcomes: Vec::new(),
        logs: Vec::new(),
        errors: Vec::new(),
        forwarded_to: None,
        closed: false,
    };
    // The connection phase first, as the edge runs it: a closed or forwarded connection
    // never reaches the HTTP phases.
    let verdict = match engine.on_tcp_connect(&mut st) {
        ConnectVerdict::Continue { .. } => engine.on_http_request(&mut st, &mut parts),
        ConnectVerdict::Close => RequestVerdict::Close,
        ConnectVerdict::Forward(url) => {
            report.forwarded_to = Some(engine.redact(url.to_string()));
            RequestVerdict::Close
        }
    };
    if let RequestVerdict::Forward(url) = &verdict {
        report.forwarded_to = Some(engine.redact(url.to_string()));
    }
    match verdict {
        RequestVerdict::Close => report.closed = report.forwarded_to.is_none(),
        RequestVerdict::Respond(r) => report.response = Some(summarize(engine, r)),
        RequestVerdict::Continue | RequestVerdict::Forward(_) => {
            report.upstream_request = Some((
                parts.method.clone(),
                redact_uri(engine, &parts.uri),
                redact_headers(engine, &parts.headers),
            ));
            let status = StatusCode::from_u16(req.upstream_status).unwrap_or(StatusCode::OK);
            let (mut res, ()) = Response::builder()
                .status(status)
                .body(())
                .unwrap_or_default()
                .into_parts();
            res.headers
                .insert("content-type", HeaderValue::from_static("text/plain"));
            match engine.on_http_response(&mut st, &parts, &mut res) {
                ResponseVerdict::Replace(r) => report.response = Some(summarize(engine, r)),
                ResponseVerdict::Continue => {
                    report.upstream_response =
                        Some((res.status, redact_headers(engine, &res.headers)))
                }
            }
        }
    }
    report.trace = st.trace().map(<[_]>::to_vec).unwrap_or_default();
    report.outcomes = st.outcomes().to_vec();
    report.logs = st.logs().to_vec();
    report.errors = st.errors().to_vec();
    Ok(report)
}

fn summarize(engine: &Engine, r: Response<bytes::Bytes>) -> (StatusCode, HeaderMap, String) {
    let (parts, body) = r.into_parts();
    (
        parts.status,
        redact_headers(engine, &parts.headers),
        engine.redact(String::from_utf8_lossy(&body).into_owned()),
    )
}

/// The headers with secret values replaced (a value that is not text is kept as it is).
fn redact_headers(engine: &Engine, headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
        let redacted = engine.redact(text.clone());
        let value = if redacted == text {
            v.clone()
        } else {
            HeaderValue::from_str(&redacted).unwrap_or_else(|_| HeaderValue::from_static(REDACTED))
        };
        out.append(k.clone(), value);
    }
    out
}

/// The URI with secret values replaced (a rewritten target may carry one).
fn redact_uri(engine: &Engine, uri: &Uri) -> Uri {
    let text = uri.to_string();
    let redacted = engine.redact(text.clone());
    if redacted == text {
        return uri.clone();
    }
    // `<` and `>` are not allowed in a URI: show the placeholder percent-encoded.
    redacted
        .replace(REDACTED, "%3Csecret%3E")
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/%3Csecret%3E"))
}

fn write_headers(f: &mut fmt::Formatter<'_>, headers: &HeaderMap) -> fmt::Result {
    for (k, v) in headers {
        writeln!(f, "    {k}: {}", String::from_utf8_lossy(v.as_bytes()))?;
    }
    Ok(())
}

impl fmt::Display for DryRunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "request: {}", self.request)?;
        writeln!(f, "trace:")?;
        if self.trace.is_empty() {
            writeln!(f, "  (no rules)")?;
        }
        for t in &self.trace {
            writeln!(f, "  {} | {} | {}", t.phase, t.rule, t.event)?;
        }
        if let Some((status, headers, body)) = &self.response {
            writeln!(f, "result: the policy answers {status}")?;
            write_headers(f, headers)?;
            if !body.is_empty() {
                writeln!(
                    f,
                    "    body: {}",
                    body.trim_end().replace('\n', "\n          ")
                )?;
            }
        }
        if self.closed {
            writeln!(f, "result: the policy closes the connection (no response)")?;
        }
        if let Some(url) = &self.forwarded_to {
            writeln!(
                f,
                "result: forward-internal to {url} (its own policy runs there; the response below \
                 is what this policy makes of its answer)"
            )?;
        }
        if let Some((method, uri, headers)) = &self.upstream_request {
            writeln!(f, "result: forwarded upstream as {method} {uri}")?;
            write_headers(f, headers)?;
        }
        if let Some((status, headers)) = &self.upstream_response {
            writeln!(f, "upstream response ({status}) after on_http_response:")?;
            write_headers(f, headers)?;
        }
        for log in &self.logs {
            writeln!(f, "log: {log:?}")?;
        }
        for e in &self.errors {
            writeln!(f, "error: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::parse::Policy;

    #[test]
    fn report_shows_trace_and_result() {
        let p = Policy::parse(
            "on_http_request:\n  - name: admin only from office\n    expressions: [\"req.url.path.startsWith('/admin')\"]\n    actions: [{type: restrict-ips, config: {allow: ['10.0.0.0/8']}}]\n",
            "p.yml",
        )
        .unwrap();
        let engine = Engine::new(vec![p]);
        let r = DryRunRequest::parse(
            "GET /admin",
            &["X-A: 1".to_string()],
            "8.8.8.8".parse().unwrap(),
        )
        .unwrap();
        let text = run(&engine, &r).unwrap().to_string();
        assert!(
            text.contains("on_http_request | admin only from office | matched"),
            "{text}"
        );
        assert!(text.contains("restrict-ips: Deny"), "{text}");
        assert!(
            text.contains("result: the policy answers 403 Forbidden"),
            "{text}"
        );
        let r = DryRunRequest::parse("GET /public", &[], "8.8.8.8".parse().unwrap()).unwrap();
        let text = run(&engine, &r).unwrap().to_string();
        assert!(
            text.contains("result: forwarded upstream as GET /public"),
            "{text}"
        );
        assert!(DryRunRequest::parse("GET", &[], "8.8.8.8".parse().unwrap()).is_err());
    }
}
