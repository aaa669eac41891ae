//! An action at compile time: the `Cfg` it reads, and the config readers actions share.
//!
//! Templates, header names, status codes and durations read the same in every action.

use crate::cel::names::Names;
use crate::cel::template::Template;
use crate::load::check::{string_map, Cx, Obj};
use crate::load::errors::Pos;
use crate::load::node::Node;
use http::{HeaderName, StatusCode};
use std::ops::RangeInclusive;

/// The `config` of one action being compiled.
pub(crate) struct Cfg<'n> {
    /// What its expressions and templates may name (the phase among it).
    pub names: Names<'n>,
    pub node: &'n Node,
    pub path: String,
}

impl<'n> Cfg<'n> {
    /// Opens the config map with its allowed fields.
    pub fn open(&self, cx: &mut Cx, allowed: &[&str]) -> Option<Obj<'n>> {
        Obj::open(cx, self.node, &self.path, allowed)
    }
}

/// Compiles a `${}` template field, reporting its problems at `path`.
pub(crate) fn template(
    cx: &mut Cx,
    source: &str,
    path: &str,
    pos: Option<Pos>,
    names: Names<'_>,
) -> Option<Template> {
    match Template::compile(source, names) {
        Ok(t) => Some(t),
        Err(problems) => {
            for p in problems {
                cx.err(path, pos, p);
            }
            None
        }
    }
}

/// A compiled header name, lowercased, or an error at `path`.
pub(crate) fn header_name(
    cx: &mut Cx,
    name: &str,
    path: &str,
    pos: Option<Pos>,
) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            cx.err(path, pos, format!("invalid header name `{name}`"));
            None
        }
    }
}

/// A `{name: template}` headers map with 1..=10 entries.
pub(crate) fn header_templates(
    cx: &mut Cx,
    obj: &Obj,
    key: &str,
    names: Names<'_>,
) -> Vec<(HeaderName, Template)> {
    let Some((node, path)) = obj.get(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value, vpath, pos) in string_map(cx, node, &path, 10) {
        let n = header_name(cx, &name, &vpath, pos);
        let t = template(cx, &value, &vpath, pos, names);
        if let (Some(n), Some(t)) = (n, t) {
            out.push((n, t));
        }
    }
    out
}

/// A status code field within `range`, `default` when absent.
pub(crate) fn status(
    cx: &mut Cx,
    obj: &Obj,
    range: RangeInclusive<i64>,
    default: u16,
) -> StatusCode {
    let code = obj
        .int(cx, "status_code", range)
        .map_or(default, |c| c as u16);
    StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN)
}

/// Parses `60s`, `5m`, `1h30m` into seconds.
pub(crate) fn parse_duration(s: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut num = String::new();
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
    }
    num.is_empty().then_some(total)
}

/// `on_error`: whether a failed action halts the phase with its error (`halt`) rather than
/// letting the next action run (`continue`); `halt_by_default` when absent (forward-internal
/// halts, http-request continues, as ngrok documents each).
pub(crate) fn halts_on_error(cx: &mut Cx, obj: &Obj, halt_by_default: bool) -> bool {
    match obj.string(cx, "on_error") {
        None => halt_by_default,
        Some((v, _, _)) if v == "halt" => true,
        Some((v, _, _)) if v == "continue" => false,
        Some((v, p, pos)) => {
            cx.err(
                &p,
                pos,
                format!("unknown on_error `{v}`, expected `halt` or `continue`"),
            );
            halt_by_default
        }
    }
}

/// A required URL template field; a literal one (no `${}`) is checked with `check` now rather
/// than on the first request.
pub(crate) fn url_template<E: Into<String>>(
    cx: &mut Cx,
    obj: &Obj,
    key: &str,
    names: Names<'_>,
    check: impl Fn(&str) -> Result<(), E>,
) -> Option<Template> {
    obj.require(cx, key)?;
    let (s, p, pos) = obj.string(cx, key)?;
    let t = template(cx, &s, &p, pos, names)?;
    if let Some(Err(problem)) = t.literal().map(&check) {
        cx.err(&p, pos, problem);
    }
    Some(t)
}
