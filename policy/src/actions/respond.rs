//! custom-response and deny: the actions that answer in place of the upstream.

use super::{header_templates, status, template, Cfg, Exec, Flow};
use crate::cel::expr::Template;
use crate::codes;
use crate::load::check::Cx;
use crate::run::state::Decision;
use bytes::Bytes;
use cel::Value;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use std::collections::HashMap;

/// `custom-response`: a fixed (or interpolated) response.
#[derive(Debug)]
pub(crate) struct CustomResponse {
    status: StatusCode,
    body: Option<Template>,
    headers: Vec<(HeaderName, Template)>,
}

impl CustomResponse {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["status_code", "body", "content", "headers"])?;
        let before = cx.errors.len();
        let status = status(cx, &obj, 100..=599, 200);
        let body = obj
            .string(cx, "body")
            .or_else(|| obj.string(cx, "content"))
            .and_then(|(s, p, pos)| template(cx, &s, &p, pos, c.phase));
        let headers = header_templates(cx, &obj, "headers", c.phase);
        (cx.errors.len() == before).then_some(Self {
            status,
            body,
            headers,
        })
    }

    pub fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "custom-response";
        let body = match &self.body {
            Some(t) => match ex.render(ACTION, t) {
                Ok(b) => b,
                Err(flow) => return flow,
            },
            None => String::new(),
        };
        let mut res = Response::new(Bytes::new());
        *res.status_mut() = self.status;
        for (name, t) in &self.headers {
            let value = match ex.render(ACTION, t) {
                Ok(v) => v,
                Err(flow) => return flow,
            };
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    res.headers_mut().append(name.clone(), v);
                }
                Err(_) => {
                    return ex.fail(
                        ACTION,
                        codes::INTERPOLATION_FAILED,
                        &format!("header `{name}` got an invalid value"),
                    )
                }
            }
        }
        if !body.is_empty() && !res.headers().contains_key(CONTENT_TYPE) {
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(sniff(&body)));
        }
        *res.body_mut() = Bytes::from(body);
        ex.set_result("custom_response", || {
            HashMap::from([(
                "status_code".to_string(),
                Value::Int(i64::from(self.status.as_u16())),
            )])
            .into()
        });
        ex.record(ACTION, Decision::Respond, true);
        Flow::respond(res)
    }
}

/// The content type of a body without one: JSON, HTML or plain text.
fn sniff(body: &str) -> &'static str {
    let t = body.trim_start();
    if (t.starts_with('{') || t.starts_with('[')) && looks_like_json(t) {
        "application/json"
    } else if t.starts_with('<') {
        "text/html; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    }
}

fn looks_like_json(t: &str) -> bool {
    let end = t.trim_end();
    (t.starts_with('{') && end.ends_with('}')) || (t.starts_with('[') && end.ends_with(']'))
}

/// `deny`: an empty response with the configured status (403 by default).
#[derive(Debug)]
pub(crate) struct Deny {
    status: StatusCode,
}

impl Deny {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["status_code"])?;
        let before = cx.errors.len();
        let status = status(cx, &obj, 100..=599, 403);
        (cx.errors.len() == before).then_some(Self { status })
    }

    pub fn run(&self, ex: &mut Exec) -> Flow {
        ex.set_result("deny", || {
            HashMap::from([(
                "status_code".to_string(),
                Value::Int(i64::from(self.status.as_u16())),
            )])
            .into()
        });
        ex.record("deny", Decision::Deny, true);
        Flow::respond(codes::error_response(self.status, codes::DENIED, ""))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::Decision;

    #[test]
    fn custom_response_defaults_and_content_type() {
        let e = engine("on_http_request: [{actions: [{type: custom-response, config: {body: '{\"ok\": true}'}}]}]");
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert_eq!(o.res.status(), 200);
        assert_eq!(header(&o.res, "content-type"), Some("application/json"));
        assert!(!o.forwarded);
        let e = engine("on_http_request: [{actions: [{type: custom-response, config: {content: '<h1>hi</h1>', headers: {x-a: b}}}]}]");
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert_eq!(
            header(&o.res, "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(header(&o.res, "x-a"), Some("b"));
    }

    #[test]
    fn custom_response_in_response_phase_replaces() {
        let e = engine("on_http_response: [{expressions: ['res.status_code == 200'], actions: [{type: custom-response, config: {status_code: 404, body: gone}}]}]");
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert!(o.forwarded);
        assert_eq!(o.res.status(), 404);
        assert_eq!(o.res.body().as_ref(), b"gone");
    }

    #[test]
    fn deny_defaults_to_403_empty_with_code() {
        let e = engine("on_http_request: [{actions: [{type: deny}, {type: add-headers, config: {headers: {x: y}}}]}]");
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert_eq!(o.res.status(), 403);
        assert!(o.res.body().is_empty());
        assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3220"));
        assert!(!o.req.headers.contains_key("x"), "deny ends the phase");
        assert_eq!(o.st.outcomes()[0].decision, Decision::Deny);
        let e = engine("on_http_request: [{actions: [{type: deny, config: {status_code: 404}}]}]");
        assert_eq!(run(&e, req("GET /", &[]), "1.1.1.1").res.status(), 404);
    }

    #[test]
    fn status_code_is_checked() {
        let errs = errors("on_http_request:\n  - actions:\n      - type: deny\n        config:\n          status_code: 42\n");
        assert_eq!(
            errs,
            ["test.yml:5:24: on_http_request[0].actions[0].config.status_code: expected an integer 100..=599, got 42"]
        );
    }
}
