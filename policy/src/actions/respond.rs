//! custom-response and deny: the actions that answer in place of the upstream.

use super::action::{Action, Exec, Flow};
use super::config::{header_templates, status, template, Cfg};
use crate::cel::template::Template;
use crate::codes;
use crate::load::check::Cx;
use crate::run::outcome::Decision;
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
            .and_then(|(s, p, pos)| template(cx, &s, &p, pos, c.names));
        let headers = header_templates(cx, &obj, "headers", c.names);
        (cx.errors.len() == before).then_some(Self {
            status,
            body,
            headers,
        })
    }
}

impl Action for CustomResponse {
    fn can_answer(&self) -> bool {
        true
    }

    fn run(&self, ex: &mut Exec) -> Flow {
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
}

impl Action for Deny {
    fn can_answer(&self) -> bool {
        true
    }

    fn run(&self, ex: &mut Exec) -> Flow {
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
