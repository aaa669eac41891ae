//! http-request: calls another server from a policy and keeps its answer for later rules
//! (`actions.ngrok.http_request.*`); retried while `retry_condition` holds, within one
//! `timeout`; on failure the rule goes on (`on_error: continue`) or answers with the error.

use super::action::{Action, Exec, Flow};
use super::config::{
    halts_on_error, header_templates, parse_duration, template, url_template, Cfg,
};
use crate::cel::expr::Expr;
use crate::cel::names::Names;
use crate::cel::template::Template;
use crate::cel::values::header_map;
use crate::codes;
use crate::forward::InternalUrl;
use crate::load::check::{list, Cx, Obj};
use crate::outbound::{Answer, Call, CallError};
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use bytes::Bytes;
use cel::Value;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACTION: &str = "http-request";
const RESULT: &str = "http_request";

/// Counts the http-request calls a request has passed through, so a policy whose call comes
/// back to an endpoint that calls again stops (ngrok stops such a loop after 3 hops).
pub const HOPS_HEADER: &str = "sluice-http-request-hops";
/// A request that already passed this many calls may not make another one.
const MAX_HOPS: u32 = 3;
/// Retries after the first attempt, at most (ngrok's).
const MAX_RETRIES: usize = 3;
/// The names `retry_condition` may use besides the request's variables.
const RETRY_LOCALS: &[&str] = &["attempts", "last_attempt"];
/// ngrok's limits on `query_params`.
const MAX_QUERY_PARAMS: usize = 32;
const MAX_QUERY_KEY: usize = 128;
const MAX_QUERY_VALUE: usize = 8192;

/// `http-request`.
#[derive(Debug)]
pub(crate) struct HttpRequest {
    url: Template,
    method: Method,
    query: Vec<(Template, Template)>,
    headers: Vec<(HeaderName, Template)>,
    body: Option<Template>,
    max_redirects: u32,
    timeout: Duration,
    retry: Option<Expr>,
    /// `on_error: halt`: a failed call answers the request with its error.
    halt: bool,
}

/// The call in progress for the action that is running: kept in the request state between
/// its attempts, and taken out when the action finishes, so the next http-request starts
/// afresh.
struct Progress {
    call: Call,
    started: Instant,
    attempts: Vec<Result<Answer, CallError>>,
}

impl HttpRequest {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(
            cx,
            &[
                "url",
                "method",
                "query_params",
                "headers",
                "body",
                "max_redirects",
                "timeout",
                "retry_condition",
                "on_error",
            ],
        )?;
        let before = cx.errors.len();
        let url = url_template(cx, &obj, "url", c.names, check_url);
        let method = method(cx, &obj);
        let query = query_params(cx, &obj, c.names);
        let headers = header_templates(cx, &obj, "headers", c.names);
        let body = obj
            .string(cx, "body")
            .and_then(|(s, p, pos)| template(cx, &s, &p, pos, c.names));
        let max_redirects = obj
            .int(cx, "max_redirects", 0..=100)
            .map_or(10, |n| n as u32);
        let timeout = timeout(cx, &obj);
        let retry = retry_condition(cx, &obj, c.names);
        let halt = halts_on_error(cx, &obj, false);
        (cx.errors.len() == before).then_some(Self {
            url: url?,
            method,
            query,
            headers,
            body,
            max_redirects,
            timeout,
            retry,
            halt,
        })
    }

    /// Renders the call; a failed interpolation is the usual 500.
    fn render(&self, ex: &mut Exec) -> Result<Call, Flow> {
        let mut url = url::Url::parse(&ex.render(ACTION, &self.url)?)
            .map_err(|e| ex.fail(ACTION, codes::INTERPOLATION_FAILED, &format!("url: {e}")))?;
        for (k, v) in &self.query {
            let (k, v) = (ex.render(ACTION, k)?, ex.render(ACTION, v)?);
            if k.len() > MAX_QUERY_KEY || v.len() > MAX_QUERY_VALUE {
                let msg = format!("query parameter `{k}` is longer than ngrok's limits (key 128, value 8192 bytes)");
                return Err(ex.fail(ACTION, codes::INTERPOLATION_FAILED, &msg));
            }
            url.query_pairs_mut().append_pair(&k, &v);
        }
        let mut headers = HeaderMap::new();
        for (name, t) in &self.headers {
            let value = ex.render(ACTION, t)?;
            match HeaderValue::from_str(&value) {
                Ok(v) => headers.append(name.clone(), v),
                Err(_) => {
                    let msg = format!("header `{name}` is not a valid header value");
                    return Err(ex.fail(ACTION, codes::INTERPOLATION_FAILED, &msg));
                }
            };
        }
        self.add_edge_headers(ex, &mut headers);
        let body = match &self.body {
            Some(t) => Bytes::from(ex.render(ACTION, t)?),
            None => Bytes::new(),
        };
        Ok(Call {
            method: self.method.clone(),
            url: url.into(),
            headers,
            body,
            max_redirects: self.max_redirects,
            timeout: self.timeout,
        })
    }

    /// The headers every call carries: who calls, for whom, and after how many calls.
    fn add_edge_headers(&self, ex: &Exec, headers: &mut HeaderMap) {
        if !headers.contains_key(http::header::USER_AGENT) {
            let agent = concat!("sluice/", env!("CARGO_PKG_VERSION"));
            headers.insert(http::header::USER_AGENT, HeaderValue::from_static(agent));
        }
        if let Ok(ip) = HeaderValue::from_str(&ex.st.client_ip_text) {
            headers.insert("x-forwarded-for", ip);
        }
        headers.insert(HOPS_HEADER, HeaderValue::from(incoming_hops(ex) + 1));
    }

    /// Whether `retry_condition` asks for another attempt after `progress`'s last one.
    fn wants_retry(&self, ex: &mut Exec, progress: &Progress) -> bool {
        let Some(retry) = &self.retry else {
            return false;
        };
        if progress.attempts.len() > MAX_RETRIES || progress.started.elapsed() >= self.timeout {
            return false;
        }
        let last = progress
            .attempts
            .last()
            .map(|a| attempt_value(&progress.call, a));
        ex.st.locals = vec![
            ("attempts", Value::Int(progress.attempts.len() as i64)),
            ("last_attempt", last.unwrap_or(Value::Null)),
        ];
        let verdict = retry.eval_bool(&ex.scope());
        ex.st.locals.clear();
        match verdict {
            Ok(again) => again,
            Err(e) => {
                ex.st
                    .push_error(format!("{ACTION}: retry_condition failed: {e}"));
                false
            }
        }
    }

    /// Ends the action with the last attempt's outcome.
    fn finish(&self, ex: &mut Exec, progress: Progress) -> Flow {
        let last = progress.attempts.last().cloned();
        let error = match &last {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        };
        ex.set_result(RESULT, || results(&progress));
        match error {
            None => {
                ex.record(ACTION, Decision::Allow, true);
                Flow::Next
            }
            Some(e) => {
                let message = ex.st.redact(format!("{ACTION}: {e}"));
                ex.st.push_error(message.clone());
                ex.record(ACTION, Decision::Error, self.halt);
                if self.halt {
                    Flow::respond(codes::error_response(e.status(), e.code(), &message))
                } else {
                    Flow::Next
                }
            }
        }
    }
}

impl Action for HttpRequest {
    fn run(&self, ex: &mut Exec) -> Flow {
        let progress = match ex.st.scratch.take::<Progress>() {
            Some(p) => p,
            None => {
                let call = match self.render(ex) {
                    Ok(c) => c,
                    Err(flow) => return flow,
                };
                let progress = Progress {
                    call,
                    started: Instant::now(),
                    attempts: Vec::new(),
                };
                if let Err(problem) = check_url(&progress.call.url) {
                    let e = CallError::Failed(problem);
                    return self.finish(ex, with_attempt(progress, Err(e)));
                }
                if incoming_hops(ex) >= MAX_HOPS {
                    let e = CallError::Loop(format!(
                        "the request already passed {MAX_HOPS} http-request calls"
                    ));
                    return self.finish(ex, with_attempt(progress, Err(e)));
                }
                return attempt(progress, self.timeout);
            }
        };
        if self.wants_retry(ex, &progress) {
            return attempt(progress, self.timeout);
        }
        self.finish(ex, progress)
    }
}

/// Suspends the action for one attempt of `progress`'s call, with what is left of `timeout`.
fn attempt(mut progress: Progress, timeout: Duration) -> Flow {
    Flow::wait(move |services, st: &mut RequestState| {
        Box::pin(async move {
            let left = timeout.saturating_sub(progress.started.elapsed());
            let got = match (&services.http, left.is_zero()) {
                (_, true) => Err(CallError::Timeout(timeout)),
                (None, false) => Err(CallError::Failed(
                    "no outbound HTTP in offline evaluation".into(),
                )),
                (Some(http), false) => {
                    let mut call = progress.call.clone();
                    call.timeout = left;
                    http.call(call).await
                }
            };
            progress.attempts.push(got);
            st.scratch.put(progress);
        })
    })
}

fn with_attempt(mut progress: Progress, got: Result<Answer, CallError>) -> Progress {
    progress.attempts.push(got);
    progress
}

/// The hop count the request arrived with (0 when it did not come from a call).
fn incoming_hops(ex: &Exec) -> u32 {
    ex.req()
        .headers()
        .get(HOPS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A URL a call may go to: absolute http(s); an internal endpoint's must be one
/// (`NAME.internal`, as forward-internal takes it). A literal one is checked at load, an
/// interpolated one per request.
fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if u.host_str().is_some_and(|h| h.ends_with(".internal")) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let endpoint = format!(
                "{}://{}{port}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            );
            InternalUrl::parse(&endpoint).map(|_| ())
        }
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!("`{url}`: expected an http:// or https:// URL")),
        Err(e) => Err(format!("`{url}`: {e}")),
    }
}

fn method(cx: &mut Cx, obj: &Obj) -> Method {
    let Some((text, path, pos)) = obj.string(cx, "method") else {
        return Method::GET;
    };
    const ALLOWED: &[Method] = &[
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    match ALLOWED
        .iter()
        .find(|m| m.as_str() == text.to_ascii_uppercase())
    {
        Some(m) => m.clone(),
        None => {
            cx.err(
                &path,
                pos,
                format!(
                    "unknown method `{text}`, expected GET, POST, PUT, PATCH, DELETE or OPTIONS"
                ),
            );
            Method::GET
        }
    }
}

/// `query_params`: a list of `{key, value}` templates.
fn query_params(cx: &mut Cx, obj: &Obj, names: Names) -> Vec<(Template, Template)> {
    let Some((node, path)) = obj.get("query_params") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (item, ipath) in list(cx, node, &path, Some(MAX_QUERY_PARAMS)) {
        let Some(entry) = Obj::open(cx, item, &ipath, &["key", "value"]) else {
            continue;
        };
        let field = |cx: &mut Cx, key: &str| {
            entry.require(cx, key)?;
            let (s, p, pos) = entry.string(cx, key)?;
            template(cx, &s, &p, pos, names)
        };
        if let (Some(k), Some(v)) = (field(cx, "key"), field(cx, "value")) {
            out.push((k, v));
        }
    }
    out
}

/// `timeout`: 1s to 30s, 3s by default.
fn timeout(cx: &mut Cx, obj: &Obj) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(3);
    let Some((text, path, pos)) = obj.string(cx, "timeout") else {
        return DEFAULT;
    };
    match parse_duration(&text) {
        Some(s @ 1..=30) => Duration::from_secs(s),
        _ => {
            cx.err(
                &path,
                pos,
                format!("expected a duration from 1s to 30s, got `{text}`"),
            );
            DEFAULT
        }
    }
}

/// `retry_condition`: a bool expression over the request's variables, `attempts` and
/// `last_attempt`; `false` (never retry) when absent.
fn retry_condition(cx: &mut Cx, obj: &Obj, names: Names) -> Option<Expr> {
    let (source, path, pos) = obj.string(cx, "retry_condition")?;
    let names = Names {
        locals: RETRY_LOCALS,
        ..names
    };
    match Expr::compile_condition(&source, names) {
        Ok(e) => Some(e),
        Err(problems) => {
            for p in problems {
                cx.err(&path, pos, p);
            }
            None
        }
    }
}

/// The call as a CEL value (`req`, `last_attempt.req`).
fn call_value(call: &Call) -> Value {
    map([
        ("method", Value::from(call.method.as_str())),
        ("url", Value::from(call.url.as_str())),
        ("header", header_map(&call.headers)),
        (
            "body",
            Value::from(String::from_utf8_lossy(&call.body).into_owned()),
        ),
    ])
}

/// An answer as a CEL value (`res`, `last_attempt.res`); ngrok gives the time as a string.
fn answer_value(a: &Answer) -> Value {
    map([
        ("status_code", Value::Int(i64::from(a.status.as_u16()))),
        ("header", header_map(&a.headers)),
        (
            "body",
            Value::from(String::from_utf8_lossy(&a.body).into_owned()),
        ),
        ("resolved_ip", ip_value(a)),
        ("time_ms", Value::from(a.elapsed.as_millis().to_string())),
    ])
}

fn ip_value(a: &Answer) -> Value {
    Value::from(a.resolved_ip.map(|ip| ip.to_string()).unwrap_or_default())
}

fn error_value(e: &CallError) -> Value {
    map([
        ("code", Value::from(codes::code_text(e.code()))),
        ("message", Value::from(e.to_string())),
    ])
}

/// One attempt for `retry_condition`'s `last_attempt`: `req`, and `res` or `error`.
fn attempt_value(call: &Call, got: &Result<Answer, CallError>) -> Value {
    let mut m = vec![("req", call_value(call))];
    match got {
        Ok(a) => m.push(("res", answer_value(a))),
        Err(e) => m.push(("error", Value::from(e.to_string()))),
    }
    map(m)
}

/// `actions.ngrok.http_request`: `req`, `res` (the last answer, with its body), `attempts`
/// (one entry per attempt, without bodies) and `error` when the call failed.
fn results(progress: &Progress) -> Value {
    let attempts: Vec<Value> = progress
        .attempts
        .iter()
        .map(|got| match got {
            Ok(a) => map([
                ("resolved_ip", ip_value(a)),
                ("response_header", header_map(&a.headers)),
                (
                    "response_status_code",
                    Value::Int(i64::from(a.status.as_u16())),
                ),
                (
                    "response_time_ms",
                    Value::from(a.elapsed.as_millis().to_string()),
                ),
            ]),
            Err(e) => map([("error", error_value(e))]),
        })
        .collect();
    let mut m = vec![
        ("req", call_value(&progress.call)),
        ("attempts", Value::List(Arc::new(attempts))),
    ];
    match progress.attempts.last() {
        Some(Ok(a)) => m.push(("res", answer_value(a))),
        Some(Err(e)) => m.push(("error", error_value(e))),
        None => {}
    }
    map(m)
}

fn map(entries: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<HashMap<_, _>>()
        .into()
}
