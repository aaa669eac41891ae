//! ngrok's CEL functions (`inCidrRange`, `hasReqHeader`, `base64.encode`, ...) and a
//! `matches` whose regexes are compiled once.

use crate::cel::names::{HAS, QUERY_PARAM, REQ_COOKIE, REQ_HEADER, RES_HEADER};
use crate::run::facts::canonical_ip;
use base64::Engine as _;
use cel::common::types::{CelBool, CelString};
use cel::common::value::{CowVal, Val};
use cel::{Context, ExecutionError, FunctionContext, Value};
use ipnet::IpNet;
use regex::Regex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock, RwLock};

/// The internal name `matches` calls are rewritten to at compile time.
pub(crate) const MATCHES: &str = "sluiceMatches";

/// Namespaces of the namespaced functions (`base64.encode`).
pub(crate) const NAMESPACES: &[&str] = &["base64", "basic_auth"];

/// Every function this module adds, for the compile-time check.
pub(crate) const NAMES: &[&str] = &[
    "inCidrRange",
    "inCidrRanges",
    "isPrivateIp",
    "hasReqHeader",
    "getReqHeader",
    "hasResHeader",
    "getResHeader",
    "hasQueryParam",
    "getQueryParam",
    "hasReqCookie",
    "getReqCookie",
    "lower",
    "upper",
    "trim",
    "base64.encode",
    "base64.decode",
    "basic_auth.encode",
    MATCHES,
];

type Func = Box<
    dyn for<'c, 'v> Fn(&mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError>
        + Send
        + Sync,
>;

/// Adds the functions to the shared root context; returns the names cel refused (none: a test
/// checks that no name collides with a standard-library overload).
pub(crate) fn register(ctx: &mut Context<'static, 'static>) -> Vec<&'static str> {
    let all: Vec<(&str, Func)> = vec![
        (MATCHES, Box::new(matches)),
        ("inCidrRange", Box::new(in_cidr_range)),
        ("inCidrRanges", Box::new(in_cidr_ranges)),
        ("isPrivateIp", Box::new(is_private_ip)),
        ("hasReqHeader", Box::new(|f| has(f, REQ_HEADER))),
        ("getReqHeader", Box::new(|f| get(f, REQ_HEADER))),
        ("hasResHeader", Box::new(|f| has(f, RES_HEADER))),
        ("getResHeader", Box::new(|f| get(f, RES_HEADER))),
        ("hasQueryParam", Box::new(|f| has(f, QUERY_PARAM))),
        ("getQueryParam", Box::new(|f| get(f, QUERY_PARAM))),
        ("hasReqCookie", Box::new(|f| has(f, REQ_COOKIE))),
        ("getReqCookie", Box::new(|f| get(f, REQ_COOKIE))),
        ("lower", Box::new(|f| map_str(f, |s| s.to_lowercase()))),
        ("upper", Box::new(|f| map_str(f, |s| s.to_uppercase()))),
        ("trim", Box::new(|f| map_str(f, |s| s.trim().to_string()))),
        ("base64.encode", Box::new(b64_encode)),
        ("base64.decode", Box::new(b64_decode)),
        ("basic_auth.encode", Box::new(basic_auth_encode)),
    ];
    all.into_iter()
        .filter_map(|(name, f)| ctx.add_function::<Func, Func>(name, f).err().map(|_| name))
        .collect()
}

/// Compiled regexes by pattern; literal patterns are put here at compile time.
static REGEXES: LazyLock<RwLock<HashMap<String, Arc<Regex>>>> = LazyLock::new(Default::default);
const REGEX_CACHE_LIMIT: usize = 4096;

/// The compiled regex for `pattern`, from the cache when it has been seen before.
pub(crate) fn regex(pattern: &str) -> Result<Arc<Regex>, regex::Error> {
    if let Some(re) = REGEXES.read().ok().and_then(|m| m.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Arc::new(Regex::new(pattern)?);
    if let Ok(mut m) = REGEXES.write() {
        if m.len() < REGEX_CACHE_LIMIT {
            m.insert(pattern.to_string(), Arc::clone(&re));
        }
    }
    Ok(re)
}

/// The receiver, then the arguments, as one list (`x.f(y)` and `f(x, y)` alike).
fn arg<'x>(f: &'x FunctionContext<'_, '_>, i: usize) -> Result<&'x dyn Val, ExecutionError> {
    f.this
        .iter()
        .chain(f.args.iter())
        .nth(i)
        .map(|c| c.as_ref() as &dyn Val)
        .ok_or_else(|| ExecutionError::invalid_argument_count(i + 1, f.args.len()))
}

fn str_arg<'x>(f: &'x FunctionContext<'_, '_>, i: usize) -> Result<&'x str, ExecutionError> {
    let v = arg(f, i)?;
    <&str>::try_from(v).map_err(|_| f.error("expected a string argument"))
}

fn ok_bool<'c, 'v>(b: bool) -> Result<CowVal<'c, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelBool::from(b)))
}

fn ok_value<'c, 'v>(v: Value) -> Result<CowVal<'c, 'v>, ExecutionError> {
    Ok(CowVal::Owned(Box::<dyn Val>::try_from(v)?))
}

fn matches<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let text = str_arg(f, 0)?;
    let re = regex(str_arg(f, 1)?).map_err(|e| f.error(e))?;
    ok_bool(re.is_match(text))
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok().map(canonical_ip)
}

fn in_cidr_range<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let ip = parse_ip(str_arg(f, 0)?);
    let net: Option<IpNet> = str_arg(f, 1)?.parse().ok();
    ok_bool(matches!((ip, net), (Some(ip), Some(net)) if net.contains(&ip)))
}

fn in_cidr_ranges<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let Some(ip) = parse_ip(str_arg(f, 0)?) else {
        return ok_bool(false);
    };
    let Value::List(list) = Value::try_from(arg(f, 1)?)? else {
        return Err(f.error("expected a list of CIDRs"));
    };
    let hit = list.iter().any(|c| match c {
        Value::String(s) => s.parse::<IpNet>().is_ok_and(|n| n.contains(&ip)),
        _ => false,
    });
    ok_bool(hit)
}

fn is_private_ip<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    ok_bool(parse_ip(str_arg(f, 0)?).is_some_and(private))
}

/// RFC 1918, loopback, link-local, CGNAT and IPv6 unique-local/link-local addresses.
pub(crate) fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

fn lookup(f: &FunctionContext<'_, '_>, prefix: &str) -> Result<Value, ExecutionError> {
    let key = str_arg(f, 0)?;
    let name = format!("{prefix}{key}");
    match f.ptx.get_variable(name) {
        Some(v) => Ok(Value::try_from(v.as_ref())?),
        None => Ok(Value::List(Arc::default())),
    }
}

fn has<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
    prefix: &str,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let name = format!("{}{prefix}{}", HAS, str_arg(f, 0)?);
    let found = f
        .ptx
        .get_variable(name)
        .is_some_and(|v| <bool>::try_from(v.into_owned()).unwrap_or(false));
    ok_bool(found)
}

fn get<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
    prefix: &str,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    ok_value(lookup(f, prefix)?)
}

fn map_str<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
    op: impl Fn(&str) -> String,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let out = op(str_arg(f, 0)?);
    Ok(CowVal::owned(CelString::from(out)))
}

fn b64_encode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let bytes = match Value::try_from(arg(f, 0)?)? {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.to_vec(),
        _ => return Err(f.error("expected a string or bytes")),
    };
    Ok(CowVal::owned(CelString::from(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    )))
}

fn b64_decode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let text = str_arg(f, 0)?.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .map_err(|e| f.error(e))?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(CowVal::owned(CelString::from(s))),
        Err(e) => ok_value(Value::Bytes(Arc::new(e.into_bytes()))),
    }
}

fn basic_auth_encode<'c, 'v>(
    f: &mut FunctionContext<'c, 'v>,
) -> Result<CowVal<'c, 'v>, ExecutionError> {
    let user = str_arg(f, 0)?;
    let pass = str_arg(f, 1)?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    Ok(CowVal::owned(CelString::from(format!("Basic {token}"))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_function_registers() {
        let mut ctx = cel::Context::with_env(std::sync::Arc::new(cel::Env::stdlib()));
        assert_eq!(super::register(&mut ctx), Vec::<&str>::new());
    }
}
