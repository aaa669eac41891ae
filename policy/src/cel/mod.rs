//! CEL: a policy's expressions and `${}` templates, checked once, evaluated per request.
//!
//! Expressions are checked at compile time against the names they may use, and evaluated
//! against one request's lazily built variables.
//!
//! Reading order: `names` (what an expression may name) → `expr` (compile, check, rewrite,
//! evaluate) → `types` (the static types the load refuses mismatches of) → `template` (`${}` text) → `vars` (the variables of one request) →
//! `functions/` (ngrok's macros, one table, one file per group) → `fast` (the native path for
//! common shapes). `values` holds the value helpers they share.

pub(crate) mod expr;
pub(crate) mod fast;
pub(crate) mod functions;
pub(crate) mod names;
pub(crate) mod template;
pub(crate) mod types;
pub(crate) mod url;
pub(crate) mod values;
pub(crate) mod vars;
pub(crate) mod wanted;

#[cfg(test)]
mod secret_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod var_tests;
