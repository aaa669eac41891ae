//! add-headers and remove-headers.

use super::action::{Action, Exec, Flow, Msg};
use super::config::{header_name, header_templates, Cfg};
use crate::cel::template::Template;
use crate::codes;
use crate::load::check::{string_list, Cx};
use crate::run::outcome::Decision;
use cel::Value;
use http::header::{HeaderName, HeaderValue, HOST};
use std::collections::HashMap;

/// Headers ngrok refuses to let policies add. (`ngrok-skip-browser-warning`, which ngrok also
/// refuses, is a plain header here: Sluice shows no browser warning for it to skip, and policies
/// written for ngrok that set it should load.)
const REFUSED: &[&str] = &["user-agent"];

/// `add-headers`: append header values (`host` replaces instead).
#[derive(Debug)]
pub(crate) struct AddHeaders {
    /// Name, template, and the value ready-made when the template is literal.
    headers: Vec<(HeaderName, Template, Option<HeaderValue>)>,
}

impl AddHeaders {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["headers"])?;
        obj.require(cx, "headers")?;
        let before = cx.errors.len();
        let headers = header_templates(cx, &obj, "headers", c.names);
        for (name, _) in &headers {
            if REFUSED.contains(&name.as_str()) {
                cx.err(
                    &format!("{}.headers.{name}", c.path),
                    obj.pos,
                    format!("header `{name}` cannot be added by a policy"),
                );
            }
        }
        let headers = headers
            .into_iter()
            .map(|(n, t)| {
                let fixed = t.literal().and_then(|l| HeaderValue::from_str(l).ok());
                (n, t, fixed)
            })
            .collect();
        (cx.errors.len() == before).then_some(Self { headers })
    }
}

impl Action for AddHeaders {
    fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "add-headers";
        let want = ex.wants("add_headers");
        let mut added = Vec::new();
        for (name, t, fixed) in &self.headers {
            let (value, hv) = match fixed {
                Some(hv) => (String::new(), hv.clone()),
                None => {
                    let value = match ex.render(ACTION, t) {
                        Ok(v) => v,
                        Err(flow) => return flow,
                    };
                    let Ok(hv) = HeaderValue::from_str(&value) else {
                        let msg = format!("header `{name}` got an invalid value");
                        return ex.fail(ACTION, codes::INTERPOLATION_FAILED, &msg);
                    };
                    (value, hv)
                }
            };
            match &mut *ex.msg {
                Msg::Req(r) if name == HOST => r.insert_header(name.clone(), hv),
                Msg::Req(r) => r.append_header(name.clone(), hv),
                Msg::Res(_, r) => r.append_header(name.clone(), hv),
                // add-headers compiles only into the HTTP phases.
                Msg::Event(..) | Msg::Conn(_) => {}
            }
            if want {
                let value = if fixed.is_some() {
                    t.literal().unwrap_or_default().to_string()
                } else {
                    value
                };
                added.push((name.as_str().to_string(), Value::from(value)));
            }
        }
        let added: HashMap<String, Value> = added.into_iter().collect();
        ex.set_result("add_headers", || {
            HashMap::from([("headers_added".to_string(), Value::from(added))]).into()
        });
        ex.record(ACTION, Decision::Modify, true);
        Flow::Next
    }
}

/// `remove-headers`: drop every value of the listed headers.
#[derive(Debug)]
pub(crate) struct RemoveHeaders {
    headers: Vec<HeaderName>,
}

impl RemoveHeaders {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["headers"])?;
        let (node, path) = obj.require(cx, "headers")?;
        let before = cx.errors.len();
        let names = string_list(cx, node, &path, Some(10));
        if names.is_empty() && cx.errors.len() == before {
            cx.err(&path, node.pos, "expected 1 to 10 header names");
        }
        let headers: Vec<HeaderName> = names
            .iter()
            .filter_map(|(n, p, pos)| header_name(cx, n, p, *pos))
            .collect();
        (cx.errors.len() == before).then_some(Self { headers })
    }
}

impl Action for RemoveHeaders {
    fn run(&self, ex: &mut Exec) -> Flow {
        for name in &self.headers {
            match &mut *ex.msg {
                Msg::Req(r) => r.remove_header(name),
                Msg::Res(_, r) => r.remove_header(name),
                Msg::Event(..) | Msg::Conn(_) => {}
            }
        }
        let removed = || {
            self.headers
                .iter()
                .map(|h| Value::from(h.as_str()))
                .collect::<Vec<_>>()
        };
        ex.set_result("remove_headers", || {
            HashMap::from([("headers_removed".to_string(), Value::from(removed()))]).into()
        });
        ex.record("remove-headers", Decision::Modify, true);
        Flow::Next
    }
}
