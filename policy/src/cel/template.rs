//! `${}` templates: text with CEL expressions, split once at compile time, rendered per request.

use crate::cel::expr::Expr;
use crate::cel::names::Names;
use crate::cel::values::stringify;
use crate::cel::vars::Scope;
use crate::secrets::Secret;
use cel::ExecutionError;

/// A string with `${expr}` parts, split once at compile time.
#[derive(Debug)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Lit(String),
    Expr(Expr),
    /// A value the host supplied (an operator's default client secret); `<secret>` in `Debug`.
    Secret(Secret),
}

/// An expression of a template that failed to evaluate.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("`${{{expr}}}`: {error}")]
pub(crate) struct RenderError {
    /// The expression as written.
    expr: String,
    /// Why it failed.
    error: ExecutionError,
}

impl Template {
    /// Splits `source` at its `${...}` parts and compiles each expression.
    pub fn compile(source: &str, names: Names<'_>) -> Result<Self, Vec<String>> {
        let mut parts = Vec::new();
        let mut problems = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Lit(rest[..start].to_string()));
            }
            let body = &rest[start + 2..];
            let Some(end) = closing_brace(body) else {
                problems.push(format!("unterminated `${{` in `{source}`"));
                rest = "";
                break;
            };
            match Expr::compile(&body[..end], names) {
                Ok(e) => parts.push(Part::Expr(e)),
                Err(p) => problems.extend(p),
            }
            rest = &body[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        if problems.is_empty() {
            Ok(Self { parts })
        } else {
            Err(problems)
        }
    }

    /// A template that is just `text`, for values the host supplies rather than the policy.
    pub fn text(text: &str) -> Self {
        Self {
            parts: vec![Part::Lit(text.to_string())],
        }
    }

    /// A template that is just a secret: renders to its value, shows as `<secret>`.
    pub fn secret(secret: Secret) -> Self {
        Self {
            parts: vec![Part::Secret(secret)],
        }
    }

    /// The text when the template has no expression.
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// The text when the template depends on nothing of a request: literal text, secrets and
    /// `${secrets.get(...)}` (resolved at load). `None` when some part reads a variable.
    pub fn constant(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Secret(s) => out.push_str(s.expose()),
                Part::Expr(e) => out.push_str(e.literal_str()?),
            }
        }
        Some(out)
    }

    /// The single expression when the template is exactly `${expr}`.
    pub fn sole_expr(&self) -> Option<&Expr> {
        match self.parts.as_slice() {
            [Part::Expr(e)] => Some(e),
            _ => None,
        }
    }

    /// Evaluates each part and joins them as text.
    pub fn render(&self, scope: &Scope<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Secret(s) => out.push_str(s.expose()),
                Part::Expr(e) => match e.var() {
                    Some(v) => out.push_str(v.get(scope)),
                    None => {
                        let v = e.eval(scope).map_err(|error| RenderError {
                            expr: e.source().to_string(),
                            error,
                        })?;
                        stringify(&v, &mut out);
                    }
                },
            }
        }
        Ok(out)
    }
}

/// The index of the `}` closing a `${`, skipping nested braces and quoted strings.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}
