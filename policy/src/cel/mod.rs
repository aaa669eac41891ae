//! CEL: the expressions and `${}` templates of a policy, checked at compile time and evaluated
//! against one request's lazily built variables.

pub(crate) mod expr;
pub(crate) mod fast;
pub(crate) mod functions;
pub(crate) mod values;
pub(crate) mod vars;
