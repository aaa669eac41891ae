//! CEL expressions, parsed, checked and rewritten once at compile time, then evaluated per request.

use crate::cel::fast::{sole_var, Fast, StrVar};
use crate::cel::functions;
use crate::cel::names::{Names, MAPS, MESSAGE_FUNCTIONS, NO_MESSAGE};
use crate::cel::types::{self, Ty};
use crate::cel::vars::Scope;
use crate::phase::Phase;
use cel::common::ast::{CallExpr, Expr as Ast, LiteralValue, SelectExpr};
use cel::{Context, Env, ExecutionError, IdedExpr, Value};
use std::sync::{Arc, LazyLock};

/// The CEL environment: the standard library and its strings and lists extensions; ngrok's
/// functions are added to the root context below.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(functions::env()));

/// The root context shared by every evaluation; per evaluation a child scope adds the
/// lazily resolved variables of one request.
static BASE: LazyLock<Context<'static, 'static>> = LazyLock::new(|| {
    let mut ctx = Context::with_env(Arc::clone(&ENV));
    let _refused = functions::register(&mut ctx);
    ctx
});

/// Type names, which are also the conversion functions (`int(x)`, `type(x) == string`).
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "type",
    "list",
    "map",
    "null_type",
];

/// Other functions of the CEL standard library that policies may call.
#[rustfmt::skip]
const STD_FUNCTIONS: &[&str] = &[
    "size", "contains", "startsWith", "endsWith", "dyn", "duration", "timestamp", "getFullYear",
    "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours",
    "getMinutes", "getSeconds", "getMilliseconds", "max", "min", "hasValue", "value", "orValue",
    "or",
];

/// A compiled CEL expression. Its `Debug` shows the source only: the tree may hold a resolved
/// secret.
pub(crate) struct Expr {
    source: String,
    ast: IdedExpr,
    /// The native form, when the expression has a shape [`Fast`] covers.
    fast: Option<Fast>,
    /// The string variable the expression is, when it is just one.
    var: Option<StrVar>,
    /// Its type, as far as the load knows it.
    ty: Ty,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expr")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Why a boolean expression gave no boolean.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub(crate) enum EvalError {
    /// The interpreter failed (a missing map key, a type mismatch, ...).
    #[error(transparent)]
    Cel(#[from] ExecutionError),
    /// The expression is not a boolean; the type it has instead.
    #[error("expected a bool, got {0}")]
    NotBool(String),
}

impl Expr {
    /// Parses `source` and checks the names it uses against `names`; one message per problem.
    pub fn compile(source: &str, names: Names<'_>) -> Result<Self, Vec<String>> {
        let program = ENV.compile(source).map_err(|e| {
            let first = e.errors.first();
            let detail = first.map_or_else(
                || one_line(&e.to_string()),
                |f| format!("{} at column {}", f.msg, f.pos.1 + 1),
            );
            vec![format!("invalid CEL expression `{source}`: {detail}")]
        })?;
        let mut ast = program.expression().clone();
        let mut problems = Vec::new();
        let mut bound = Vec::new();
        walk(&mut ast, &mut bound, names, &mut problems);
        let ty = types::check(&ast, &mut problems);
        if problems.is_empty() {
            Ok(Self {
                source: source.to_string(),
                fast: Fast::compile(&ast),
                var: sole_var(&ast),
                ast,
                ty,
            })
        } else {
            Err(problems
                .into_iter()
                .map(|p| format!("in CEL expression `{source}`: {p}"))
                .collect())
        }
    }

    /// Compiles a rule's condition, which must be able to give a bool.
    pub fn compile_condition(source: &str, names: Names) -> Result<Self, Vec<String>> {
        let e = Self::compile(source, names)?;
        match e.ty {
            Ty::Bool | Ty::Dyn => Ok(e),
            ref other => Err(vec![format!(
                "in CEL expression `{source}`: a rule's expression must be a bool, this one is {other}"
            )]),
        }
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The string the expression is, when it is a string literal (also after `secrets.get`
    /// was resolved into one at load).
    pub fn literal_str(&self) -> Option<&str> {
        match &self.ast.expr {
            Ast::Literal(LiteralValue::String(s)) => Some(s.inner()),
            _ => None,
        }
    }

    /// The string variable the expression is, when it is just one (`${conn.client_ip}`).
    pub fn var(&self) -> Option<StrVar> {
        self.var
    }

    /// Evaluates against one request's variables.
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, ExecutionError> {
        let base: &Context<'_, '_> = &BASE;
        let mut ctx = base.new_inner_scope();
        ctx.set_variable_resolver(scope);
        ctx.resolve(&self.ast)
    }

    /// Whether the native fast path evaluates this expression.
    #[cfg(test)]
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// Evaluates through the interpreter, even when a fast path exists (the tests compare
    /// the two).
    pub fn eval_bool_interpreted(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match self.eval(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError::NotBool(format!("{:?}", other.type_of()))),
        }
    }

    /// Evaluates an expression that must be a boolean.
    pub fn eval_bool(&self, scope: &Scope<'_>) -> Result<bool, EvalError> {
        match &self.fast {
            Some(f) => Ok(f.eval(scope)),
            None => self.eval_bool_interpreted(scope),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The dotted name a select chain spells, if it is rooted at an identifier.
fn qualified(e: &Ast) -> Option<Vec<&str>> {
    match e {
        Ast::Ident(name) => Some(vec![name.as_str()]),
        Ast::Select(s) if !s.test => {
            let mut v = qualified(&s.operand.expr)?;
            v.push(&s.field);
            Some(v)
        }
        _ => None,
    }
}

/// `req.headers['x-api-key']` as the select `req.headers.x-api-key`, which the resolver answers
/// without building the whole map.
fn index_as_select(e: &Ast, bound: &[String]) -> Option<Ast> {
    let Ast::Call(c) = e else { return None };
    if c.func_name != "_[_]" || c.target.is_some() || c.args.len() != 2 {
        return None;
    }
    let segs = qualified(&c.args[0].expr)?;
    if bound.iter().any(|b| b == segs[0]) || !MAPS.contains(&segs.join(".").as_str()) {
        return None;
    }
    let Ast::Literal(LiteralValue::String(key)) = &c.args[1].expr else {
        return None;
    };
    Some(Ast::Select(SelectExpr {
        operand: Box::new(c.args[0].clone()),
        field: key.inner().to_string(),
        test: false,
    }))
}

fn walk(e: &mut IdedExpr, bound: &mut Vec<String>, names: Names<'_>, problems: &mut Vec<String>) {
    if let Some(select) = index_as_select(&e.expr, bound) {
        e.expr = select;
    }
    if let Some(call) = secret_call(&e.expr, bound) {
        match resolve_secret(call, names) {
            Ok(value) => e.expr = value,
            Err(p) => problems.push(p),
        }
        return;
    }
    if let Some(segs) = qualified(&e.expr).filter(|s| s.len() > 1) {
        if !bound.iter().any(|b| b == segs[0]) {
            if let Err(p) = names.check(&segs) {
                problems.push(p.to_string());
            }
        }
        return;
    }
    match &mut e.expr {
        Ast::Ident(name) => {
            if !bound.contains(name) && !TYPE_NAMES.contains(&name.as_str()) {
                if let Err(p) = names.check(&[name.as_str()]) {
                    problems.push(p.to_string());
                }
            }
        }
        Ast::Select(sel) => walk(&mut sel.operand, bound, names, problems),
        Ast::Call(call) => walk_call(call, bound, names, problems),
        Ast::Comprehension(c) => {
            let before = bound.len();
            walk(&mut c.iter_range, bound, names, problems);
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            walk(&mut c.accu_init, bound, names, problems);
            walk(&mut c.loop_cond, bound, names, problems);
            walk(&mut c.loop_step, bound, names, problems);
            walk(&mut c.result, bound, names, problems);
            bound.truncate(before);
        }
        Ast::List(l) => {
            for x in &mut l.elements {
                walk(x, bound, names, problems);
            }
        }
        Ast::Map(m) => {
            for entry in &mut m.entries {
                match &mut entry.expr {
                    cel::common::ast::EntryExpr::MapEntry(me) => {
                        walk(&mut me.key, bound, names, problems);
                        walk(&mut me.value, bound, names, problems);
                    }
                    cel::common::ast::EntryExpr::StructField(sf) => {
                        walk(&mut sf.value, bound, names, problems);
                    }
                }
            }
        }
        Ast::Struct(_) => problems.push("message construction is not supported".into()),
        Ast::Literal(_) | Ast::Unspecified => {}
    }
}

fn walk_call(
    call: &mut CallExpr,
    bound: &mut Vec<String>,
    names: Names<'_>,
    problems: &mut Vec<String>,
) {
    // `base64.encode(x)` parses as a call of `encode` on the identifier `base64`.
    let namespace = match call.target.as_deref() {
        Some(IdedExpr {
            expr: Ast::Ident(ns),
            ..
        }) if !bound.contains(ns) && functions::NAMESPACES.contains(&ns.as_str()) => {
            Some(ns.clone())
        }
        _ => None,
    };
    if let Some(ns) = namespace {
        let full = format!("{ns}.{}", call.func_name);
        if !functions::is_known(&full) {
            problems.push(format!("unknown function `{full}`"));
        }
    } else {
        let name = call.func_name.as_str();
        let operator = !name.starts_with(|c: char| c.is_ascii_alphabetic());
        if name == "matches" {
            precompile_regex(call, problems);
            call.func_name = functions::MATCHES.to_string();
        } else if name == "split" {
            // ngrok's split, whose limit keeps the first pieces (cel's joins the rest).
            call.func_name = functions::SPLIT.to_string();
        } else if name == "trim" && call.target.is_none() && call.args.len() == 1 {
            // cel's strings extension has only `s.trim()`; `trim(s)` stays valid as before.
            call.target = call.args.pop().map(Box::new);
        } else if !operator
            && !STD_FUNCTIONS.contains(&name)
            && !TYPE_NAMES.contains(&name)
            && !functions::is_known(name)
        {
            problems.push(format!("unknown function `{name}`"));
        } else if !names.phase.has_message() && MESSAGE_FUNCTIONS.contains(&name) {
            problems.push(format!(
                "`{name}` is not available in on_tcp_connect: {NO_MESSAGE}"
            ));
        } else if names.phase == Phase::Request
            && (name.contains("ResHeader") || name.contains("ResCookie"))
        {
            problems.push(format!("`{name}` is only available in on_http_response"));
        }
        if let Some(t) = call.target.as_deref_mut() {
            walk(t, bound, names, problems);
        }
    }
    for a in &mut call.args {
        walk(a, bound, names, problems);
    }
}

/// A literal `matches` pattern is compiled now (and cached): a bad one is a compile error, and
/// evaluation never compiles it again.
fn precompile_regex(call: &CallExpr, problems: &mut Vec<String>) {
    let pattern = if call.target.is_some() {
        call.args.first()
    } else {
        call.args.get(1)
    };
    if let Some(IdedExpr {
        expr: Ast::Literal(LiteralValue::String(s)),
        ..
    }) = pattern
    {
        if let Err(e) = functions::regex(s.inner()) {
            problems.push(format!("invalid regex: {}", one_line(&e.to_string())));
        }
    }
}

/// `secrets.get(vault, name)` or its alias `security.secret(vault, name)` (ngrok's pricing page
/// lists both), unless `secrets` / `security` is a comprehension variable.
fn secret_call<'a>(e: &'a Ast, bound: &[String]) -> Option<&'a CallExpr> {
    let Ast::Call(c) = e else { return None };
    let Some(Ast::Ident(ns)) = c.target.as_deref().map(|t| &t.expr) else {
        return None;
    };
    let known = matches!(
        (ns.as_str(), c.func_name.as_str()),
        ("secrets", "get") | ("security", "secret")
    );
    (known && !bound.contains(ns)).then_some(c)
}

/// The secret a `secrets.get` call names, as a string literal: secrets are read when the
/// policy loads, so both arguments must be literals. The error names the vault and the secret,
/// never a value.
fn resolve_secret(call: &CallExpr, names: Names<'_>) -> Result<Ast, String> {
    let literal = |a: &IdedExpr| match &a.expr {
        Ast::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
        _ => None,
    };
    let args: Vec<Option<String>> = call.args.iter().map(literal).collect();
    let [Some(vault), Some(name)] = args.as_slice() else {
        return Err(
            "`secrets.get` takes two string literals, the vault and the secret's name \
                    (secrets are read once, when the policy loads)"
                .to_string(),
        );
    };
    let resolver = names
        .secrets
        .ok_or_else(|| "`secrets.get` is not available here".to_string())?;
    let secret = resolver.get(vault, name).map_err(|e| e.to_string())?;
    Ok(Ast::Literal(LiteralValue::String(
        secret.expose().to_string().into(),
    )))
}
