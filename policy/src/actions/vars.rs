//! set-vars and log: actions that only record.

use super::action::{Action, Exec, Flow};
use super::config::{template, Cfg};
use crate::cel::template::Template;
use crate::load::check::{list, Cx};
use crate::load::node::{Kind, Node};
use crate::run::outcome::Decision;
use cel::Value;
use std::collections::{BTreeMap, HashMap};

/// A `set-vars` value, of any YAML type: a scalar kept as is, a template (exactly `${expr}`
/// keeps its CEL type, mixed text becomes a string), or a list or map of such values.
#[derive(Debug)]
enum VarValue {
    Const(Value),
    Template(Template),
    List(Vec<VarValue>),
    Map(Vec<(String, VarValue)>),
}

impl VarValue {
    /// The value for this request; a template that cannot be rendered fails the action.
    fn eval(&self, ex: &mut Exec) -> Result<Value, Flow> {
        Ok(match self {
            Self::Const(v) => v.clone(),
            Self::Template(t) => match t.sole_expr().map(|e| e.eval(&ex.scope())) {
                Some(Ok(v)) => v,
                _ => Value::from(ex.render("set-vars", t)?),
            },
            Self::List(items) => {
                let values = items
                    .iter()
                    .map(|v| v.eval(ex))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::List(values.into())
            }
            Self::Map(entries) => {
                let mut map = std::collections::HashMap::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(cel::objects::Key::from(k.as_str()), v.eval(ex)?);
                }
                Value::Map(cel::objects::Map { map: map.into() })
            }
        })
    }
}

/// `set-vars`: writes `vars.<name>` for the rest of the phase.
#[derive(Debug)]
pub(crate) struct SetVars {
    vars: Vec<(String, VarValue)>,
}

impl SetVars {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["vars"])?;
        let (node, path) = obj.require(cx, "vars")?;
        let before = cx.errors.len();
        let mut vars = Vec::new();
        for (item, p) in list(cx, node, &path, None) {
            let Kind::Map(entries) = &item.kind else {
                cx.expected(&p, item, "a map with one key");
                continue;
            };
            if entries.len() != 1 {
                cx.err(
                    &p,
                    item.pos,
                    format!("expected a map with one key, got {} keys", entries.len()),
                );
                continue;
            }
            let (k, v) = &entries[0];
            let Some(name) = k.as_str() else {
                cx.expected(&p, k, "a string key");
                continue;
            };
            let vp = format!("{p}.{name}");
            if let Some(value) = var_value(cx, v, &vp, c) {
                vars.push((name.to_string(), value));
            }
        }
        (cx.errors.len() == before).then_some(Self { vars })
    }
}

impl Action for SetVars {
    fn run(&self, ex: &mut Exec) -> Flow {
        for (name, value) in &self.vars {
            match value.eval(ex) {
                Ok(v) => ex.st.vars.insert(name.clone(), v),
                Err(flow) => return flow,
            };
        }
        ex.record("set-vars", Decision::Modify, true);
        Flow::Next
    }
}

fn var_value(cx: &mut Cx, v: &Node, path: &str, c: &Cfg) -> Option<VarValue> {
    Some(match &v.kind {
        Kind::Str(s) => VarValue::Template(template(cx, s, path, v.pos, c.names)?),
        Kind::Int(i) => VarValue::Const(Value::Int(*i)),
        Kind::Float(f) => VarValue::Const(Value::Float(*f)),
        Kind::Bool(b) => VarValue::Const(Value::Bool(*b)),
        Kind::Null => VarValue::Const(Value::Null),
        Kind::Seq(items) => {
            let values: Vec<_> = (items.iter().enumerate())
                .map(|(i, item)| var_value(cx, item, &format!("{path}[{i}]"), c))
                .collect();
            VarValue::List(values.into_iter().collect::<Option<_>>()?)
        }
        Kind::Map(entries) => {
            let mut values = Vec::with_capacity(entries.len());
            for (k, item) in entries {
                let Some(key) = k.as_str() else {
                    cx.expected(path, k, "a string key");
                    return None;
                };
                values.push((
                    key.to_string(),
                    var_value(cx, item, &format!("{path}.{key}"), c),
                ));
            }
            let values = values.into_iter().map(|(k, v)| Some((k, v?)));
            VarValue::Map(values.collect::<Option<_>>()?)
        }
    })
}

/// `log`: metadata for the request's log event.
#[derive(Debug)]
pub(crate) struct Log {
    metadata: Vec<(String, Template)>,
}

impl Log {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["metadata"])?;
        let (node, path) = obj.require(cx, "metadata")?;
        let before = cx.errors.len();
        let mut metadata = Vec::new();
        for (k, v, p, pos) in crate::load::check::string_map(cx, node, &path, 64) {
            if let Some(t) = template(cx, &v, &p, pos, c.names) {
                metadata.push((k, t));
            }
        }
        (cx.errors.len() == before).then_some(Self { metadata })
    }
}

impl Action for Log {
    fn run(&self, ex: &mut Exec) -> Flow {
        let mut entry = BTreeMap::new();
        for (k, t) in &self.metadata {
            match ex.render("log", t) {
                Ok(v) => {
                    entry.insert(k.clone(), v);
                }
                Err(flow) => return flow,
            }
        }
        // Secrets stay out of the result as they stay out of the log.
        let entry: BTreeMap<String, String> = entry
            .into_iter()
            .map(|(k, v)| (k, ex.st.redact(v)))
            .collect();
        ex.set_result("log", || {
            let metadata: HashMap<String, Value> = entry
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            HashMap::from([("metadata".to_string(), Value::from(metadata))]).into()
        });
        ex.st.push_log(entry);
        ex.record("log", Decision::Modify, true);
        Flow::Next
    }
}
