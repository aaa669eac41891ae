//! request-body-find-replace, response-body-find-replace and sse-find-replace: regex
//! replacements on a body streamed through a bounded window, or on each server-sent event.

use super::action::{Action, Exec, Flow, Msg};
use super::config::{template, Cfg};
use crate::cel::names::Names;
use crate::cel::template::Template;
use crate::codes;
use crate::load::check::{list, Cx, Obj};
use crate::run::body::{encoded, untransformable};
use crate::run::outcome::Decision;
use crate::run::replace::{replace_all, ReplaceRule, Replaced, StreamReplacer};
use cel::Value;
use http::header::CONTENT_LENGTH;
use regex::bytes::Regex;
use std::collections::HashMap;
use std::sync::Arc;

/// What an action's replacements apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The request body, streamed upstream (request-body-find-replace).
    RequestBody,
    /// The response body, streamed to the client (response-body-find-replace).
    ResponseBody,
    /// One field of each server-sent event (sse-find-replace).
    Event,
}

impl Target {
    fn action(self) -> &'static str {
        match self {
            Target::RequestBody => "request-body-find-replace",
            Target::ResponseBody => "response-body-find-replace",
            Target::Event => "sse-find-replace",
        }
    }
}

/// A `from` pattern: compiled at load when literal, at run time when interpolated.
#[derive(Debug)]
enum Pattern {
    Fixed(Arc<Regex>),
    Dynamic(Template),
}

/// The event fields sse-find-replace may rewrite.
const FIELDS: &[&str] = &["data", "retry"];

/// An sse-find-replace `field`: checked at load when literal.
#[derive(Debug)]
enum Field {
    Fixed(&'static str),
    Dynamic(Template),
}

/// One `replacements` entry.
#[derive(Debug)]
struct Replacement {
    from: Pattern,
    to: Template,
    field: Field,
}

/// One of the three find-and-replace actions.
#[derive(Debug)]
pub(crate) struct FindReplace {
    target: Target,
    replacements: Vec<Replacement>,
}

/// The regex crate's message, last line only (the rest repeats the pattern with a caret).
fn regex_problem(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn compile_entry(cx: &mut Cx, obj: &Obj, names: Names) -> Option<Replacement> {
    let before = cx.errors.len();
    let from = obj.require(cx, "from").and_then(|_| obj.string(cx, "from"));
    let from = from.and_then(|(src, path, pos)| {
        let t = template(cx, &src, &path, pos, names)?;
        match t.literal() {
            Some(lit) => match Regex::new(lit) {
                Ok(re) => Some(Pattern::Fixed(Arc::new(re))),
                Err(e) => {
                    let problem = regex_problem(&e);
                    cx.err(&path, pos, format!("invalid regex `{lit}`: {problem}"));
                    None
                }
            },
            None => Some(Pattern::Dynamic(t)),
        }
    });
    let to = match obj.string(cx, "to") {
        Some((src, path, pos)) => template(cx, &src, &path, pos, names),
        None => template(cx, "", &obj.path, obj.pos, names),
    };
    let field = match obj.string(cx, "field") {
        None => Some(Field::Fixed("data")),
        Some((src, path, pos)) => {
            template(cx, &src, &path, pos, names).and_then(|t| match t.literal() {
                Some(lit) => match FIELDS.iter().find(|f| **f == lit) {
                    Some(f) => Some(Field::Fixed(f)),
                    None => {
                        cx.err(
                            &path,
                            pos,
                            format!("unknown field `{lit}`, expected data or retry"),
                        );
                        None
                    }
                },
                None => Some(Field::Dynamic(t)),
            })
        }
    };
    (cx.errors.len() == before).then_some(Replacement {
        from: from?,
        to: to?,
        field: field?,
    })
}

impl FindReplace {
    pub fn compile(cx: &mut Cx, c: &Cfg, target: Target) -> Option<Self> {
        let allowed: &[&str] = if target == Target::Event {
            &["field", "from", "to"]
        } else {
            &["from", "to"]
        };
        let obj = c.open(cx, &["replacements"])?;
        let before = cx.errors.len();
        let (node, path) = obj.require(cx, "replacements")?;
        let items = list(cx, node, &path, None);
        if items.is_empty() && cx.errors.len() == before {
            cx.err(&path, node.pos, "at least one replacement is required");
        }
        let mut replacements = Vec::new();
        for (n, p) in items {
            let Some(entry) = Obj::open(cx, n, &p, allowed) else {
                continue;
            };
            replacements.extend(compile_entry(cx, &entry, c.names));
        }
        (cx.errors.len() == before).then_some(Self {
            target,
            replacements,
        })
    }

    /// The replacements with their templates rendered and patterns compiled, for this
    /// request (or event): each with the field it applies to.
    fn rules(&self, ex: &mut Exec) -> Result<Vec<(&'static str, ReplaceRule)>, Flow> {
        let action = self.target.action();
        let mut rules = Vec::with_capacity(self.replacements.len());
        for r in &self.replacements {
            let from = match &r.from {
                Pattern::Fixed(re) => Arc::clone(re),
                Pattern::Dynamic(t) => {
                    let src = ex.render(action, t)?;
                    match Regex::new(&src) {
                        Ok(re) => Arc::new(re),
                        Err(e) => {
                            let problem = regex_problem(&e);
                            return Err(ex.fail(
                                action,
                                codes::BAD_INTERPOLATED_REGEX,
                                &format!("interpolated regex does not compile: {problem}"),
                            ));
                        }
                    }
                }
            };
            let to = ex.render(action, &r.to)?.into_bytes();
            let field = match &r.field {
                Field::Fixed(f) => f,
                Field::Dynamic(t) => {
                    let name = ex.render(action, t)?;
                    match FIELDS.iter().find(|f| **f == name) {
                        Some(f) => f,
                        None => {
                            return Err(ex.fail(
                                action,
                                codes::INTERPOLATION_FAILED,
                                &format!("field `{name}` is not data or retry"),
                            ))
                        }
                    }
                }
            };
            rules.push((*field, ReplaceRule { from, to }));
        }
        Ok(rules)
    }

    /// A streaming replacer over this request's rules, for a whole body.
    fn body_replacer(&self, ex: &mut Exec) -> Result<Box<StreamReplacer>, Flow> {
        let rules = self.rules(ex)?.into_iter().map(|(_, r)| r).collect();
        Ok(Box::new(StreamReplacer::new(rules)))
    }

    /// request-body-find-replace: hands the edge a replacer for the body on its way up.
    fn run_request(&self, ex: &mut Exec) -> Flow {
        let action = self.target.action();
        if encoded(ex.req().headers()) {
            // The compressed bytes cannot be searched; the body passes unchanged.
            return skipped(ex, action, "the request body is compressed");
        }
        let replacer = match self.body_replacer(ex) {
            Ok(replacer) => replacer,
            Err(flow) => return flow,
        };
        if let Msg::Req(req) = &mut *ex.msg {
            req.remove_header(&CONTENT_LENGTH);
        }
        ex.st.request_replacers.push(replacer);
        ex.record(action, Decision::Modify, true);
        Flow::Next
    }

    /// response-body-find-replace: hands the edge a replacer for the body on its way down,
    /// ahead of compress-response's encoder.
    fn run_response(&self, ex: &mut Exec) -> Flow {
        let action = self.target.action();
        let method = ex.req().method().clone();
        let Msg::Res(_, res) = &*ex.msg else {
            return Flow::Next;
        };
        // A body compress-response is about to encode is still plain here.
        let skip = untransformable(&method, &**res).or_else(|| {
            (encoded(res.headers()) && ex.st.compression().is_none())
                .then_some("the response body is compressed")
        });
        if let Some(why) = skip {
            return skipped(ex, action, why);
        }
        let replacer = match self.body_replacer(ex) {
            Ok(replacer) => replacer,
            Err(flow) => return flow,
        };
        if let Msg::Res(_, res) = &mut *ex.msg {
            res.remove_header(&CONTENT_LENGTH);
        }
        ex.st.response_replacers.push(replacer);
        ex.record(action, Decision::Modify, true);
        Flow::Next
    }

    /// sse-find-replace: rewrites the event's fields now, and reports what matched.
    fn run_event(&self, ex: &mut Exec) -> Flow {
        let action = self.target.action();
        let rules = match self.rules(ex) {
            Ok(rules) => rules,
            Err(flow) => return flow,
        };
        let Msg::Event(_, _, event) = &mut *ex.msg else {
            return Flow::Next;
        };
        let mut made = Vec::new();
        for field in FIELDS {
            let field_rules: Vec<ReplaceRule> = rules
                .iter()
                .filter(|(f, _)| f == field)
                .map(|(_, r)| r.clone())
                .collect();
            let Some(value) = (!field_rules.is_empty())
                .then(|| event.field(field))
                .flatten()
            else {
                continue;
            };
            let mut found = Vec::new();
            if let Some(new) = replace_all(&field_rules, &value, &mut found) {
                event.set_field(field, &new);
            }
            // Indexes count among all the action's replacements, not the field's.
            let indexes: Vec<usize> = rules
                .iter()
                .enumerate()
                .filter(|(_, (f, _))| f == field)
                .map(|(i, _)| i)
                .collect();
            made.extend(found.into_iter().map(|r| Replaced {
                index: indexes[r.index],
                matched: r.matched,
            }));
        }
        made.sort_by_key(|r| r.index);
        let decision = if made.is_empty() {
            Decision::Skip
        } else {
            Decision::Modify
        };
        ex.set_result("sse_find_replace", || results(&made));
        ex.record(action, decision, true);
        Flow::Next
    }
}

/// `{replacements: [{matched_content, replacement_index}]}`.
fn results(made: &[Replaced]) -> Value {
    let list: Vec<Value> = made
        .iter()
        .map(|r| {
            HashMap::from([
                (
                    "matched_content".to_string(),
                    Value::from(r.matched.as_str()),
                ),
                ("replacement_index".to_string(), Value::Int(r.index as i64)),
            ])
            .into()
        })
        .collect();
    HashMap::from([("replacements".to_string(), Value::from(list))]).into()
}

impl Action for FindReplace {
    fn run(&self, ex: &mut Exec) -> Flow {
        match self.target {
            Target::RequestBody => self.run_request(ex),
            Target::ResponseBody => self.run_response(ex),
            Target::Event => self.run_event(ex),
        }
    }
}

/// Records that a body passes unchanged, and why (in the trace).
fn skipped(ex: &mut Exec, action: &'static str, why: &str) -> Flow {
    ex.st
        .trace_event(ex.phase, ex.rule, || format!("{action}: skipped, {why}"));
    ex.record(action, Decision::Skip, true);
    Flow::Next
}
