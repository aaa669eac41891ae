//! The static types of an expression, as far as the load can know them: ngrok refuses an
//! expression that compares incompatible types or whose result cannot be a bool, and so does
//! Sluice.
//!
//! The check is deliberately partial: a type is known for literals, the documented variables,
//! operators and the functions listed below, and anything else (`vars.*`, action results,
//! map entries of unknown shape, comprehension variables) is `Dyn`, which is compatible with
//! everything. So it refuses only what would fail or be false on every request.

use crate::cel::functions::{MATCHES, SPLIT};
use crate::cel::names::MAPS;
use cel::common::ast::{CallExpr, Expr as Ast, LiteralValue};
use cel::IdedExpr;
use std::fmt;

/// A static type; `Dyn` when the load cannot know it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Ty {
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    Str,
    Bytes,
    Timestamp,
    Duration,
    List(Box<Ty>),
    Map(Box<Ty>),
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dyn => f.write_str("dyn"),
            Self::Null => f.write_str("null"),
            Self::Bool => f.write_str("bool"),
            Self::Int => f.write_str("int"),
            Self::Uint => f.write_str("uint"),
            Self::Double => f.write_str("double"),
            Self::Str => f.write_str("string"),
            Self::Bytes => f.write_str("bytes"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Duration => f.write_str("duration"),
            Self::List(t) => write!(f, "list({t})"),
            Self::Map(t) => write!(f, "map(string, {t})"),
        }
    }
}

impl Ty {
    fn is_numeric(&self) -> bool {
        matches!(self, Self::Int | Self::Uint | Self::Double)
    }

    /// Whether values of the two types may be compared: either is unknown, both are numbers
    /// (CEL compares numbers across types), or they are the same type.
    fn compatible(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Dyn, _) | (_, Self::Dyn) | (Self::Null, _) | (_, Self::Null) => true,
            (Self::List(a), Self::List(b)) | (Self::Map(a), Self::Map(b)) => a.compatible(b),
            (a, b) => a == b || (a.is_numeric() && b.is_numeric()),
        }
    }

    /// The element type of a list or map value.
    fn element(&self) -> Self {
        match self {
            Self::List(t) | Self::Map(t) => (**t).clone(),
            _ => Self::Dyn,
        }
    }
}

/// The type of a documented variable (`names::LEAVES` and `names::MAPS`); `Dyn` for others.
fn variable(name: &str) -> Ty {
    let strings = || Box::new(Ty::List(Box::new(Ty::Str)));
    let cookie = || Box::new(Ty::List(Box::new(Ty::Map(Box::new(Ty::Dyn)))));
    match name {
        "req.content_length" | "res.content_length" | "res.status_code" | "req.url.port"
        | "conn.client_port" | "conn.server_port" | "endpoint.port" | "conn.bytes_in"
        | "conn.bytes_out" => Ty::Int,
        // http-request's retry_condition (the only expression that may name it).
        "attempts" => Ty::Int,
        "req.user_agent.is_bot"
        | "req.user_agent.is_mobile"
        | "req.user_agent.is_tablet"
        | "req.user_agent.is_desktop" => Ty::Bool,
        "conn.ts.start" | "req.ts.header_received" => Ty::Timestamp,
        "req.headers" | "res.headers" | "req.url.query_params" => Ty::Map(strings()),
        "req.content_encoding" | "res.content_encoding" => Ty::List(Box::new(Ty::Str)),
        "req.content_type.parameters" | "res.content_type.parameters" => Ty::Map(Box::new(Ty::Str)),
        "req.cookies" | "res.cookies" => Ty::Map(cookie()),
        // Null without TLS; the client certificate's validity, without one.
        "conn.tls.version"
        | "conn.tls.client.validity.not_before"
        | "conn.tls.client.validity.not_after" => Ty::Dyn,
        "conn.tls.client.extensions" => Ty::List(Box::new(Ty::Map(Box::new(Ty::Dyn)))),
        n if n.starts_with("conn.tls.client.")
            && [
                ".country",
                ".locality",
                ".organization",
                ".organizational_unit",
                ".postal_code",
                ".province",
                ".street_address",
                ".dns_names",
                ".email_addresses",
                ".ip_addresses",
                ".uris",
            ]
            .iter()
            .any(|s| n.ends_with(s)) =>
        {
            Ty::List(Box::new(Ty::Str))
        }
        "req.method"
        | "req.version"
        | "req.host"
        | "req.url"
        | "req.url.raw"
        | "req.url.scheme"
        | "req.url.host"
        | "req.url.path"
        | "req.url.raw_path"
        | "req.url.query"
        | "req.url.authority"
        | "req.url.uri"
        | "req.url.user_password"
        | "req.content_type"
        | "req.content_type.raw"
        | "req.user_agent"
        | "res.content_type"
        | "res.content_type.raw"
        | "res.location"
        | "conn.client_ip"
        | "conn.server_ip"
        | "conn.tls.sni"
        | "conn.tls.cipher_suite"
        | "conn.tls.negotiated_alpn"
        | "conn.tls.client.subject"
        | "conn.tls.client.subject.common_name"
        | "conn.tls.client.issuer"
        | "conn.tls.client.issuer.common_name"
        | "conn.tls.client.san"
        | "conn.tls.client.serial_number"
        | "conn.tls.client.signature_algorithm"
        | "conn.tls.client.pem"
        | "endpoint.id"
        | "endpoint.url"
        | "endpoint.host"
        | "endpoint.addr"
        | "endpoint.protocol"
        | "time.now" => Ty::Str,
        _ => match MAPS.iter().find(|m| {
            name.strip_prefix(**m)
                .is_some_and(|rest| rest.starts_with('.'))
        }) {
            // `req.headers['x']`, which the compile step rewrote to a select.
            Some(map) => variable(map).element(),
            None => Ty::Dyn,
        },
    }
}

/// The result type of a named function, for those whose type is fixed.
fn function(name: &str) -> Ty {
    match name {
        "size" | "int" | "indexOf" | "lastIndexOf" | "getFullYear" | "getMonth" | "getDate"
        | "getDayOfMonth" | "getDayOfWeek" | "getDayOfYear" | "getHours" | "getMinutes"
        | "getSeconds" | "getMilliseconds" => Ty::Int,
        "uint" => Ty::Uint,
        "double" => Ty::Double,
        "string" | "lowerAscii" | "upperAscii" | "trim" | "replace" | "substring" | "charAt"
        | "format" | "join" | "reverse" => Ty::Str,
        "bytes" => Ty::Bytes,
        "bool" | "contains" | "startsWith" | "endsWith" | "inCidrRange" | "inCidrRanges"
        | "isPrivateIp" | "hasReqHeader" | "hasResHeader" | "hasReqCookie" | "hasResCookie"
        | "hasQueryParam" | "isURL" | "isJson" | "isQueryString" | "matches" => Ty::Bool,
        f if f == MATCHES => Ty::Bool,
        f if f == SPLIT => Ty::List(Box::new(Ty::Str)),
        "timestamp" => Ty::Timestamp,
        "duration" => Ty::Duration,
        _ => Ty::Dyn,
    }
}

/// Infers `e`'s type and collects every type problem found on the way.
pub(crate) fn check(e: &IdedExpr, problems: &mut Vec<String>) -> Ty {
    let mut bound = Vec::new();
    infer(e, &mut bound, problems)
}

fn infer(e: &IdedExpr, bound: &mut Vec<String>, problems: &mut Vec<String>) -> Ty {
    match &e.expr {
        Ast::Literal(l) => literal(l),
        Ast::Ident(name) if bound.contains(name) => Ty::Dyn,
        Ast::Ident(name) => variable(name),
        Ast::Select(s) if s.test => {
            infer(&s.operand, bound, problems);
            Ty::Bool
        }
        Ast::Select(s) => match dotted(e) {
            Some(path) if !bound.iter().any(|b| path.starts_with(&format!("{b}."))) => {
                variable(&path)
            }
            _ => {
                infer(&s.operand, bound, problems);
                Ty::Dyn
            }
        },
        Ast::Call(c) => call(c, bound, problems),
        Ast::List(l) => {
            let items: Vec<Ty> = (l.elements.iter())
                .map(|x| infer(x, bound, problems))
                .collect();
            Ty::List(Box::new(common(&items)))
        }
        Ast::Map(m) => {
            for entry in &m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                    infer(&me.key, bound, problems);
                    infer(&me.value, bound, problems);
                }
            }
            Ty::Map(Box::new(Ty::Dyn))
        }
        Ast::Comprehension(c) => {
            infer(&c.iter_range, bound, problems);
            let before = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                infer(part, bound, problems);
            }
            bound.truncate(before);
            Ty::Dyn
        }
        Ast::Struct(_) | Ast::Unspecified => Ty::Dyn,
    }
}

fn literal(l: &LiteralValue) -> Ty {
    match l {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::Str,
        LiteralValue::UInt(_) => Ty::Uint,
    }
}

/// `a.b.c` for a select chain rooted at an identifier.
fn dotted(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Ast::Ident(name) => Some(name.clone()),
        Ast::Select(s) if !s.test => Some(format!("{}.{}", dotted(&s.operand)?, s.field)),
        _ => None,
    }
}

/// The type every item shares, or `Dyn`.
fn common(items: &[Ty]) -> Ty {
    match items.split_first() {
        Some((first, rest)) if rest.iter().all(|t| t == first) => first.clone(),
        _ => Ty::Dyn,
    }
}

fn call(c: &CallExpr, bound: &mut Vec<String>, problems: &mut Vec<String>) -> Ty {
    if let Some(t) = c.target.as_deref() {
        infer(t, bound, problems);
    }
    let args: Vec<Ty> = c.args.iter().map(|a| infer(a, bound, problems)).collect();
    let op = c.func_name.as_str();
    match (op, args.as_slice()) {
        ("_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_", [a, b]) => {
            if !a.compatible(b) {
                problems.push(format!(
                    "`{}` compares {a} with {b}, which can never be equal or ordered",
                    operator(op)
                ));
            }
            Ty::Bool
        }
        ("_&&_" | "_||_" | "!_", _) => {
            for t in &args {
                if !t.compatible(&Ty::Bool) {
                    problems.push(format!("`{}` needs bool operands, got {t}", operator(op)));
                }
            }
            Ty::Bool
        }
        ("@in", [item, container]) => {
            match container {
                Ty::List(_) | Ty::Map(_) | Ty::Dyn => {
                    if !item.compatible(&container.element()) && matches!(container, Ty::List(_)) {
                        problems.push(format!("`in` looks for a {item} in a {container}"));
                    }
                }
                other => problems.push(format!("`in` needs a list or map, got {other}")),
            }
            Ty::Bool
        }
        ("_[_]", [container, _]) => container.element(),
        ("_?_:_", [cond, a, b]) => {
            if !cond.compatible(&Ty::Bool) {
                problems.push(format!("the condition of `?:` must be a bool, got {cond}"));
            }
            if a == b {
                a.clone()
            } else {
                Ty::Dyn
            }
        }
        ("_+_" | "_-_" | "_*_" | "_/_" | "_%_", [a, b]) => arithmetic(op, a, b, problems),
        _ => function(op),
    }
}

/// `a + b` and the other binary arithmetic operators: the same types on both sides, or a
/// timestamp or duration with a duration.
fn arithmetic(op: &str, a: &Ty, b: &Ty, problems: &mut Vec<String>) -> Ty {
    match (a, b) {
        (Ty::Dyn, _) | (_, Ty::Dyn) => Ty::Dyn,
        (Ty::Timestamp | Ty::Duration, Ty::Duration) => a.clone(),
        (Ty::Timestamp, Ty::Timestamp) if op == "_-_" => Ty::Duration,
        (x, y) if x == y && (op == "_+_" || x.is_numeric()) => x.clone(),
        (x, y) => {
            problems.push(format!("`{}` cannot combine {x} with {y}", operator(op)));
            Ty::Dyn
        }
    }
}

/// `_==_` as the user wrote it: `==`.
fn operator(op: &str) -> &str {
    match op {
        "@in" => "in",
        "_?_:_" => "?:",
        other => other.trim_matches('_'),
    }
}

#[cfg(test)]
mod tests {
    use super::{check, Ty};
    use cel::Env;

    fn type_of(source: &str) -> (Ty, Vec<String>) {
        let program = Env::stdlib().compile(source).expect("parses");
        let mut problems = Vec::new();
        let ty = check(program.expression(), &mut problems);
        (ty, problems)
    }

    #[test]
    fn comparisons_of_incompatible_types_are_problems() {
        for bad in [
            "res.status_code == '200'",
            "req.method != 1",
            "req.content_length > 'big'",
            "size(req.url.path) == 'x'",
            "req.headers['x'] == 'y'",
            "'a' in req.url.query_params['q'] && 1 in req.headers['x']",
            "req.url.path in 'abc'",
            "req.url.path + 1 == 'x'",
            "!req.method",
            "req.method == 'GET' && req.url.path",
        ] {
            let (_, problems) = type_of(bad);
            assert!(!problems.is_empty(), "{bad} should be refused");
        }
    }

    #[test]
    fn what_can_be_right_is_accepted() {
        for good in [
            "res.status_code == 200",
            "res.status_code >= 500.0",
            "req.headers['x'][0] == 'y'",
            "'y' in req.headers['x']",
            "vars.limit == 'x' && vars.n > 3",
            "actions.ngrok.basic_auth.credentials.presented == true",
            "req.headers.exists(k, k == 'x')",
            "conn.tls.version == null || conn.tls.version == '1.3'",
            "size(req.cookies) == 0 && req.url.port == 443",
            "conn.ts.start + duration('1h') > timestamp('2026-01-01T00:00:00Z')",
            "[1, 2].exists(x, x == 'a')",
        ] {
            let (_, problems) = type_of(good);
            assert!(problems.is_empty(), "{good}: {problems:?}");
        }
    }

    #[test]
    fn result_types_follow_operators_and_functions() {
        assert_eq!(type_of("req.method").0, Ty::Str);
        assert_eq!(type_of("res.status_code + 1").0, Ty::Int);
        assert_eq!(type_of("req.url.path.startsWith('/a')").0, Ty::Bool);
        assert_eq!(type_of("vars.x").0, Ty::Dyn);
        assert_eq!(type_of("req.headers['x']").0, Ty::List(Box::new(Ty::Str)));
    }
}
