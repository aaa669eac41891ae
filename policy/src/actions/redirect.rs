//! redirect and url-rewrite: regex edits of the full request URL.

use super::action::{Action, Exec, Flow, Msg};
use super::config::{header_templates, status, template, Cfg};
use crate::cel::functions;
use crate::cel::names::Names;
use crate::cel::template::Template;
use crate::cel::url::{self, full_url};
use crate::codes;
use crate::load::check::{Cx, Obj};
use crate::run::outcome::Decision;
use bytes::Bytes;
use cel::Value;
use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::{Response, StatusCode, Uri};
use regex::{Captures, Regex};
use std::collections::HashMap;
use std::sync::Arc;

/// A `from` pattern: compiled now when literal, at run time when interpolated.
#[derive(Debug)]
enum Pattern {
    Fixed(Arc<Regex>),
    Dynamic(Template),
}

fn pattern(cx: &mut Cx, obj: &Obj, names: Names<'_>) -> Option<Pattern> {
    let (src, path, pos) = obj.string(cx, "from")?;
    let t = template(cx, &src, &path, pos, names)?;
    match t.literal() {
        Some(lit) => match functions::regex(lit) {
            Ok(re) => Some(Pattern::Fixed(re)),
            Err(e) => {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                cx.err(&path, pos, format!("invalid regex `{lit}`: {first}"));
                None
            }
        },
        None => Some(Pattern::Dynamic(t)),
    }
}

impl Pattern {
    fn resolve(&self, ex: &mut Exec, action: &'static str) -> Result<Arc<Regex>, Flow> {
        match self {
            Pattern::Fixed(re) => Ok(Arc::clone(re)),
            Pattern::Dynamic(t) => {
                let src = ex.render(action, t)?;
                functions::regex(&src).map_err(|e| {
                    ex.fail(
                        action,
                        codes::BAD_INTERPOLATED_REGEX,
                        &format!("interpolated regex does not compile: {e}"),
                    )
                })
            }
        }
    }
}

fn captures(c: &Captures) -> Value {
    let list: Vec<Value> = c
        .iter()
        .map(|m| Value::from(m.map_or("", |m| m.as_str())))
        .collect();
    list.into()
}

fn results(matches: Value, url: &str) -> Value {
    HashMap::from([
        ("matches".to_string(), matches),
        ("url".to_string(), Value::from(url)),
    ])
    .into()
}

/// `redirect`: answer with a 3xx to the edited URL.
#[derive(Debug)]
pub(crate) struct Redirect {
    from: Option<Pattern>,
    to: Template,
    status: StatusCode,
    headers: Vec<(HeaderName, Template)>,
}

impl Redirect {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["from", "to", "status_code", "headers"])?;
        let before = cx.errors.len();
        let from = pattern(cx, &obj, c.names);
        let to = obj.require(cx, "to").and_then(|_| obj.string(cx, "to"));
        let to = to.and_then(|(s, p, pos)| template(cx, &s, &p, pos, c.names));
        let status = match obj.int(cx, "status_code", 300..=399) {
            Some(code @ (301 | 302 | 303 | 307 | 308)) => {
                StatusCode::from_u16(code as u16).unwrap_or(StatusCode::FOUND)
            }
            Some(other) => {
                let path = format!("{}.status_code", c.path);
                cx.err(
                    &path,
                    obj.pos,
                    format!("expected one of 301, 302, 303, 307, 308, got {other}"),
                );
                StatusCode::FOUND
            }
            None => status(cx, &obj, 300..=399, 302),
        };
        let headers = header_templates(cx, &obj, "headers", c.names);
        (cx.errors.len() == before).then_some(Self {
            from,
            to: to?,
            status,
            headers,
        })
    }
}

impl Action for Redirect {
    fn can_answer(&self) -> bool {
        true
    }

    fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "redirect";
        let url = full_url(ex.req(), ex.st);
        let to = match ex.render(ACTION, &self.to) {
            Ok(t) => t,
            Err(flow) => return flow,
        };
        let (target, matches) = match &self.from {
            None => (to, Value::List(Arc::default())),
            Some(p) => {
                let re = match p.resolve(ex, ACTION) {
                    Ok(re) => re,
                    Err(flow) => return flow,
                };
                let Some(caps) = re.captures(&url) else {
                    ex.record(ACTION, Decision::Skip, true);
                    return Flow::Next;
                };
                let whole = caps.get(0).map_or(0..0, |m| m.range());
                let mut replaced = String::new();
                caps.expand(&to, &mut replaced);
                (
                    format!("{}{}{}", &url[..whole.start], replaced, &url[whole.end..]),
                    captures(&caps),
                )
            }
        };
        ex.set_result("redirect", || results(matches, &target));
        if target == url {
            ex.record(ACTION, Decision::Skip, true);
            return Flow::Next;
        }
        let Ok(location) = HeaderValue::from_str(&target) else {
            return ex.fail(
                ACTION,
                codes::INTERPOLATION_FAILED,
                "redirect target is not a valid header value",
            );
        };
        let mut res = Response::new(Bytes::new());
        *res.status_mut() = self.status;
        res.headers_mut().insert(LOCATION, location);
        for (name, t) in &self.headers {
            match ex.render(ACTION, t).map(|v| HeaderValue::from_str(&v)) {
                Ok(Ok(v)) => {
                    res.headers_mut().append(name.clone(), v);
                }
                Ok(Err(_)) => {
                    return ex.fail(
                        ACTION,
                        codes::INTERPOLATION_FAILED,
                        &format!("header `{name}` got an invalid value"),
                    )
                }
                Err(flow) => return flow,
            }
        }
        ex.record(ACTION, Decision::Respond, true);
        Flow::respond(res)
    }
}

/// `url-rewrite`: edit the URL the upstream sees; the client does not see the change.
#[derive(Debug)]
pub(crate) struct UrlRewrite {
    from: Pattern,
    to: Template,
}

impl UrlRewrite {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["from", "to"])?;
        let before = cx.errors.len();
        let from = obj
            .require(cx, "from")
            .and_then(|_| pattern(cx, &obj, c.names));
        let to = obj.require(cx, "to").and_then(|_| obj.string(cx, "to"));
        let to = to.and_then(|(s, p, pos)| template(cx, &s, &p, pos, c.names));
        (cx.errors.len() == before).then_some(Self {
            from: from?,
            to: to?,
        })
    }
}

impl Action for UrlRewrite {
    fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "url-rewrite";
        let url = full_url(ex.req(), ex.st);
        let re = match self.from.resolve(ex, ACTION) {
            Ok(re) => re,
            Err(flow) => return flow,
        };
        let to = match ex.render(ACTION, &self.to) {
            Ok(t) => t,
            Err(flow) => return flow,
        };
        let matches = re
            .captures(&url)
            .map_or_else(|| Value::List(Arc::default()), |c| captures(&c));
        let rewritten = re.replace_all(&url, to.as_str()).into_owned();
        ex.set_result("url_rewrite", || results(matches, &rewritten));
        if rewritten == url {
            ex.record(ACTION, Decision::Skip, true);
            return Flow::Next;
        }
        let Some((host, path_and_query)) = split_url(&rewritten) else {
            return ex.fail(
                ACTION,
                codes::INTERPOLATION_FAILED,
                &format!("rewritten URL `{rewritten}` is not absolute"),
            );
        };
        let absolute = ex.req().uri().authority().is_some();
        let new_uri = if absolute {
            rewritten.parse::<Uri>()
        } else {
            path_and_query.parse::<Uri>()
        };
        let Ok(new_uri) = new_uri else {
            return ex.fail(
                ACTION,
                codes::INTERPOLATION_FAILED,
                &format!("rewritten URL `{rewritten}` is invalid"),
            );
        };
        let host_changed = url::host(ex.req()) != host;
        if let Msg::Req(r) = &mut *ex.msg {
            r.set_uri(new_uri);
            if host_changed {
                if let Ok(h) = HeaderValue::from_str(host) {
                    r.insert_header(HOST, h);
                }
            }
        }
        ex.record(ACTION, Decision::Modify, true);
        Flow::Next
    }
}

/// `(host, path?query)` of `scheme://host/path?query`.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = &url[url.find("://")? + 3..];
    match rest.find('/') {
        Some(i) => Some((&rest[..i], &rest[i..])),
        None => Some((rest, "/")),
    }
}
