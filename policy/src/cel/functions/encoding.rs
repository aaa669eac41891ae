//! Encodings: base64, basic-auth headers, JSON, query strings and URLs (`base64.*`, `json.*`,
//! `queryString.*`, `url.*` and their member forms such as `s.decodeJson()`).

use super::args::{arg, ok_bool, ok_str, ok_value, str_arg, value_arg, Out};
use crate::cel::values::{hex, query_params, stringify};
use base64::Engine as _;
use cel::objects::Key;
use cel::{FunctionContext, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn b64_encode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let bytes = match Value::try_from(arg(f, 0)?)? {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.to_vec(),
        _ => return Err(f.error("expected a string or bytes")),
    };
    ok_str(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `base64.decode(s)`: bytes, as ngrok documents (`string(base64.decode(s))` for text).
pub(super) fn b64_decode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    ok_value(Value::Bytes(Arc::new(decode_base64(f)?)))
}

/// The bytes of the base64 string argument, padded or not.
fn decode_base64(f: &FunctionContext<'_, '_>) -> Result<Vec<u8>, cel::ExecutionError> {
    let text = str_arg(f, 0)?.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .map_err(|e| f.error(e))
}

pub(super) fn basic_auth_encode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let user = str_arg(f, 0)?;
    let pass = str_arg(f, 1)?;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    ok_str(format!("Basic {token}"))
}

/// `s.decodeBase64()`: like `base64.decode`, always text (invalid UTF-8 replaced).
pub(super) fn decode_base64_text<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    ok_str(String::from_utf8_lossy(&decode_base64(f)?).into_owned())
}

/// `json.encode(v)`, `v.encodeJson()`: compact JSON; map keys sorted, bytes as base64,
/// timestamps as RFC 3339.
pub(super) fn json_encode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let json = to_json(&value_arg(f, 0)?).map_err(|e| f.error(e))?;
    ok_str(json.to_string())
}

/// `json.decode(s)`, `s.decodeJson()`: numbers become ints when whole, else doubles.
pub(super) fn json_decode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let parsed: serde_json::Value =
        serde_json::from_str(str_arg(f, 0)?).map_err(|e| f.error(format!("invalid JSON: {e}")))?;
    ok_value(from_json(parsed))
}

/// `s.isJson()`.
pub(super) fn is_json<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    ok_bool(serde_json::from_str::<serde_json::Value>(str_arg(f, 0)?).is_ok())
}

fn to_json(v: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(n) => J::from(*n),
        Value::UInt(n) => J::from(*n),
        Value::Float(x) => serde_json::Number::from_f64(*x)
            .map(J::Number)
            .ok_or("NaN and infinities have no JSON form")?,
        Value::String(s) => J::String(s.to_string()),
        Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(&**b)),
        Value::Timestamp(t) => J::String(t.to_rfc3339()),
        Value::Duration(d) => J::String(format!("{}s", d.num_milliseconds() as f64 / 1000.0)),
        Value::List(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Map(m) => {
            let mut entries: Vec<(String, J)> = m
                .map
                .iter()
                .map(|(k, x)| Ok((key_text(k), to_json(x)?)))
                .collect::<Result<_, String>>()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            J::Object(entries.into_iter().collect())
        }
        other => return Err(format!("{:?} has no JSON form", other.type_of())),
    })
}

fn key_text(k: &Key) -> String {
    match k {
        Key::String(s) => s.to_string(),
        Key::Int(n) => n.to_string(),
        Key::Uint(n) => n.to_string(),
        Key::Bool(b) => b.to_string(),
    }
}

fn from_json(j: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or_default()),
        },
        J::String(s) => Value::from(s),
        J::Array(items) => Value::List(Arc::new(items.into_iter().map(from_json).collect())),
        J::Object(entries) => entries
            .into_iter()
            .map(|(k, x)| (k, from_json(x)))
            .collect::<HashMap<String, Value>>()
            .into(),
    }
}

/// `queryString.decode(s)`, `s.decodeQueryString()`: name → list of values.
pub(super) fn query_decode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let text = str_arg(f, 0)?;
    let text = text.strip_prefix('?').unwrap_or(text);
    ok_value(query_params(text))
}

/// `queryString.encode(m)`, `m.encodeQueryString()`: values may be strings, other scalars or
/// lists of them; names sorted, form-encoded (a space is `+`), as Go's `url.Values.Encode`.
pub(super) fn query_encode<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let Value::Map(m) = value_arg(f, 0)? else {
        return Err(f.error("expected a map"));
    };
    let mut entries: Vec<(String, &Value)> = m.map.iter().map(|(k, x)| (key_text(k), x)).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in entries {
        match value {
            Value::List(items) => {
                for item in items.iter() {
                    out.append_pair(&name, &scalar_text(item));
                }
            }
            other => {
                out.append_pair(&name, &scalar_text(other));
            }
        }
    }
    ok_str(out.finish())
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        other => {
            let mut out = String::new();
            stringify(other, &mut out);
            out
        }
    }
}

/// `s.isQueryString()`: every `%` starts a valid escape and there is no `;` (what Go's
/// `url.ParseQuery` refuses).
pub(super) fn is_query_string<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let text = str_arg(f, 0)?;
    ok_bool(!text.contains(';') && strict_unescape(text, false).is_some())
}

/// `url.escape(s)`, `s.escapeUrl()`: query escaping (a space is `+`), as Go's
/// `url.QueryEscape`.
pub(super) fn url_escape<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    ok_str(form_urlencoded::byte_serialize(str_arg(f, 0)?.as_bytes()).collect())
}

/// `url.unescape(s)`, `s.unescapeUrl()`: the inverse of `url.escape`; a bad escape is an
/// error.
pub(super) fn url_unescape<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let text = str_arg(f, 0)?;
    let out = strict_unescape(text, true).ok_or_else(|| f.error("invalid URL escape"))?;
    ok_str(out)
}

/// Percent-decoding that refuses a `%` without two hex digits; `+` is a space when `plus`.
fn strict_unescape(text: &str, plus: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex(*bytes.get(i + 1)?)?;
                let lo = hex(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `url.parse(s)`, `s.parseUrl()`: an absolute URL's parts, named as `req.url`'s.
pub(super) fn url_parse<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let text = str_arg(f, 0)?;
    let url = url::Url::parse(text).map_err(|e| f.error(format!("invalid URL `{text}`: {e}")))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().map_or(0, i64::from);
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let query = url.query().unwrap_or_default().to_string();
    let user_password = match (url.username(), url.password()) {
        ("", None) => String::new(),
        (user, None) => user.to_string(),
        (user, Some(pass)) => format!("{user}:{pass}"),
    };
    let fields: HashMap<String, Value> = HashMap::from([
        ("raw".to_string(), Value::from(text)),
        ("scheme".to_string(), Value::from(url.scheme())),
        ("host".to_string(), Value::from(host)),
        ("port".to_string(), Value::Int(port)),
        ("authority".to_string(), Value::from(authority)),
        ("path".to_string(), Value::from(url.path())),
        ("raw_path".to_string(), Value::from(url.path())),
        ("query_params".to_string(), query_params(&query)),
        ("query".to_string(), Value::from(query)),
        (
            "fragment".to_string(),
            Value::from(url.fragment().unwrap_or_default()),
        ),
        ("user_password".to_string(), Value::from(user_password)),
    ]);
    ok_value(fields.into())
}

/// `s.isURL()`: an absolute URL with a scheme and a host.
pub(super) fn is_url<'c, 'v>(f: &mut FunctionContext<'c, 'v>) -> Out<'c, 'v> {
    let parsed = url::Url::parse(str_arg(f, 0)?);
    ok_bool(parsed.is_ok_and(|u| u.has_host()))
}
