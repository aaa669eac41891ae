//! The compile-time checker: collects located errors and reads typed fields from nodes.

use crate::intel::Supplies;
use crate::load::errors::{PolicyError, Pos};
use crate::load::node::{Kind, Node};
use crate::secrets::Resolver;

/// Collects every problem of one document, so that all of them are reported at once.
pub(crate) struct Cx<'o> {
    origin: &'o str,
    pub errors: Vec<PolicyError>,
    /// What the edge can answer; expressions naming anything else are refused.
    pub supplies: Supplies,
    /// The host's secrets and default sign-in apps, and the secrets resolved so far.
    pub resolver: &'o Resolver<'o>,
}

impl<'o> Cx<'o> {
    pub fn new(origin: &'o str, resolver: &'o Resolver<'o>) -> Self {
        Self {
            origin,
            errors: Vec::new(),
            supplies: Supplies::ALL,
            resolver,
        }
    }

    /// Records a problem at `path`, positioned at `node` when it has a position.
    pub fn err(&mut self, path: &str, pos: Option<Pos>, message: impl Into<String>) {
        self.errors.push(PolicyError {
            origin: self.origin.to_string(),
            pos,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Records that `node` at `path` is not what was `expected`.
    pub fn expected(&mut self, path: &str, node: &Node, expected: &str) {
        let got = node.describe();
        self.err(path, node.pos, format!("expected {expected}, got {got}"));
    }
}

/// A map node whose keys were checked against the allowed set.
pub(crate) struct Obj<'n> {
    entries: &'n [(Node, Node)],
    pub path: String,
    pub pos: Option<Pos>,
}

impl<'n> Obj<'n> {
    /// Opens `node` as a map, reporting a non-map and every key not in `allowed`.
    pub fn open(cx: &mut Cx, node: &'n Node, path: &str, allowed: &[&str]) -> Option<Self> {
        let Kind::Map(entries) = &node.kind else {
            cx.expected(path, node, "a map");
            return None;
        };
        for (k, _) in entries {
            match k.as_str() {
                Some(key) if allowed.contains(&key) => {}
                Some(key) => cx.err(
                    &join(path, key),
                    k.pos,
                    format!(
                        "unknown field `{key}`, expected one of: {}",
                        allowed.join(", ")
                    ),
                ),
                None => cx.expected(path, k, "string keys"),
            }
        }
        // A block map's own marker comes after its first key; that key's position reads better.
        let pos = entries.first().and_then(|(k, _)| k.pos).or(node.pos);
        Some(Self {
            entries,
            path: path.to_string(),
            pos,
        })
    }

    /// The value of `key` and its path, when present (and not null).
    pub fn get(&self, key: &str) -> Option<(&'n Node, String)> {
        self.entries
            .iter()
            .find(|(k, v)| k.as_str() == Some(key) && v.kind != Kind::Null)
            .map(|(_, v)| (v, join(&self.path, key)))
    }

    /// The value of a required `key`, reporting its absence.
    pub fn require(&self, cx: &mut Cx, key: &str) -> Option<(&'n Node, String)> {
        let found = self.get(key);
        if found.is_none() {
            cx.err(
                &self.path,
                self.pos,
                format!("missing required field `{key}`"),
            );
        }
        found
    }

    /// An optional string field.
    pub fn string(&self, cx: &mut Cx, key: &str) -> Option<(String, String, Option<Pos>)> {
        let (node, path) = self.get(key)?;
        let s = string(cx, node, &path)?;
        Some((s, path, node.pos))
    }

    /// An optional integer field within `range`.
    pub fn int(&self, cx: &mut Cx, key: &str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let (node, path) = self.get(key)?;
        match node.kind {
            Kind::Int(i) if range.contains(&i) => Some(i),
            _ => {
                let (lo, hi) = (range.start(), range.end());
                cx.err(
                    &path,
                    node.pos,
                    format!("expected an integer {lo}..={hi}, got {}", show(node)),
                );
                None
            }
        }
    }

    /// An optional boolean field, `default` when absent.
    pub fn bool(&self, cx: &mut Cx, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some((node, path)) => match node.kind {
                Kind::Bool(b) => b,
                _ => {
                    cx.expected(&path, node, "a boolean");
                    default
                }
            },
        }
    }
}

/// The string value of a scalar node (numbers and booleans are accepted as their text).
pub(crate) fn string(cx: &mut Cx, node: &Node, path: &str) -> Option<String> {
    match &node.kind {
        Kind::Str(s) => Some(s.clone()),
        Kind::Int(i) => Some(i.to_string()),
        Kind::Float(f) => Some(f.to_string()),
        Kind::Bool(b) => Some(b.to_string()),
        _ => {
            cx.expected(path, node, "a string");
            None
        }
    }
}

/// The items of a list node with their paths; `limit` is the largest allowed length.
pub(crate) fn list<'n>(
    cx: &mut Cx,
    node: &'n Node,
    path: &str,
    limit: Option<usize>,
) -> Vec<(&'n Node, String)> {
    let Kind::Seq(items) = &node.kind else {
        cx.expected(path, node, "a list");
        return Vec::new();
    };
    if let Some(limit) = limit {
        if items.len() > limit {
            cx.err(
                path,
                node.pos,
                format!("at most {limit} entries are allowed, got {}", items.len()),
            );
        }
    }
    items
        .iter()
        .enumerate()
        .map(|(i, n)| (n, format!("{path}[{i}]")))
        .collect()
}

/// A list of strings, each with its path and position.
pub(crate) fn string_list(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    limit: Option<usize>,
) -> Vec<(String, String, Option<Pos>)> {
    list(cx, node, path, limit)
        .into_iter()
        .filter_map(|(n, p)| string(cx, n, &p).map(|s| (s, p, n.pos)))
        .collect()
}

/// A map of string to string, in document order, each value with its path and position.
pub(crate) fn string_map(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    limit: usize,
) -> Vec<(String, String, String, Option<Pos>)> {
    let Kind::Map(entries) = &node.kind else {
        cx.expected(path, node, "a map");
        return Vec::new();
    };
    if entries.is_empty() || entries.len() > limit {
        cx.err(
            path,
            node.pos,
            format!("expected 1 to {limit} entries, got {}", entries.len()),
        );
    }
    let mut out = Vec::new();
    for (k, v) in entries {
        let Some(key) = string(cx, k, path) else {
            continue;
        };
        let vpath = join(path, &key);
        if let Some(value) = string(cx, v, &vpath) {
            out.push((key, value, vpath, v.pos));
        }
    }
    out
}

/// `path.key`, or `key` at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn show(node: &Node) -> String {
    match &node.kind {
        Kind::Int(i) => i.to_string(),
        Kind::Str(s) => format!("\"{s}\""),
        _ => node.describe().to_string(),
    }
}
