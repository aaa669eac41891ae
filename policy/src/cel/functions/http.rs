//! Request and response helpers: `hasReqHeader`/`getReqHeader` and their response, query and
//! cookie siblings, looked up by name without building the whole map.

use super::args::{ok_bool, ok_value, str_arg, Out};
use crate::cel::names::{HAS, REQ_COOKIE};
use crate::cel::values::cookie;
use cel::objects::Key;
use cel::{ExecutionError, FunctionContext, Value};
use std::sync::Arc;

fn lookup(f: &FunctionContext<'_, '_>, prefix: &str) -> Result<Value, ExecutionError> {
    let key = str_arg(f, 0)?;
    let name = format!("{prefix}{key}");
    match f.ptx.get_variable(name) {
        Some(v) => Ok(Value::try_from(v.as_ref())?),
        None => Ok(Value::List(Arc::default())),
    }
}

pub(super) fn has<'c, 'v>(f: &mut FunctionContext<'c, 'v>, prefix: &str) -> Out<'c, 'v> {
    let name = format!("{}{prefix}{}", HAS, str_arg(f, 0)?);
    let found = f
        .ptx
        .get_variable(name)
        .is_some_and(|v| <bool>::try_from(v.into_owned()).unwrap_or(false));
    ok_bool(found)
}

pub(super) fn get<'c, 'v>(f: &mut FunctionContext<'c, 'v>, prefix: &str) -> Out<'c, 'v> {
    ok_value(lookup(f, prefix)?)
}

/// `getReqCookie(name)`: the request's first cookie named `name`, a `{name, value}` map, as
/// ngrok documents (a cookie, not a list); an empty cookie when there is none, so
/// `getReqCookie('sid').value == ''` tests absence as in ngrok.
pub(super) fn get_req_cookie<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let first = match lookup(f, REQ_COOKIE)? {
        Value::List(list) => list.first().cloned(),
        _ => None,
    };
    ok_value(first.unwrap_or_else(|| cookie("", "")))
}

/// `getResCookie(name)`: the response's first `set-cookie` named `name`, as `getReqCookie`
/// (an empty cookie before the response phase or when there is none).
pub(super) fn get_res_cookie<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let first = res_cookies(f)?.into_iter().next();
    ok_value(first.unwrap_or_else(|| cookie("", "")))
}

/// `hasResCookie(name)`.
pub(super) fn has_res_cookie<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    ok_bool(!res_cookies(f)?.is_empty())
}

fn res_cookies(f: &FunctionContext<'_, '_>) -> Result<Vec<Value>, ExecutionError> {
    let name = str_arg(f, 0)?;
    let Some(all) = f.ptx.get_variable("res.cookies") else {
        return Ok(Vec::new());
    };
    let Value::Map(map) = Value::try_from(all.as_ref())? else {
        return Ok(Vec::new());
    };
    Ok(match map.map.get(&Key::from(name)) {
        Some(Value::List(list)) => list.to_vec(),
        _ => Vec::new(),
    })
}
