//! CEL values built from HTTP parts: header maps, query parameters, cookies, user agents.

use cel::Value;
use chrono::{DateTime, TimeDelta, Utc};
use http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, COOKIE, SET_COOKIE};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
}

pub(crate) fn content_length(headers: &HeaderMap) -> i64 {
    header_str(headers, CONTENT_LENGTH.as_str())
        .parse()
        .unwrap_or(0)
}

pub(crate) fn header_map(headers: &HeaderMap) -> Value {
    let mut map: HashMap<String, Vec<Value>> = HashMap::new();
    for (k, x) in headers {
        map.entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(x.as_bytes()).into_owned().into());
    }
    map.into_iter()
        .map(|(k, x)| (k, Value::from(x)))
        .collect::<HashMap<_, _>>()
        .into()
}

/// A header name in lowercase, borrowed when it already is.
pub(crate) fn lower(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|c| c.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

pub(crate) fn header_list(headers: &HeaderMap, name: &str) -> Value {
    let list: Vec<Value> = headers
        .get_all(lower(name).as_ref())
        .iter()
        .map(|x| Value::from(String::from_utf8_lossy(x.as_bytes()).into_owned()))
        .collect();
    list.into()
}

/// `k=v` pairs of a query string, percent-decoded.
pub(crate) fn pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, x) = p.split_once('=').unwrap_or((p, ""));
        (percent_decode(k), percent_decode(x))
    })
}

pub(crate) fn query_params(q: &str) -> Value {
    let mut map: HashMap<String, Vec<Value>> = HashMap::new();
    for (k, x) in pairs(q) {
        map.entry(k).or_default().push(x.into());
    }
    map.into_iter()
        .map(|(k, x)| (k, Value::from(x)))
        .collect::<HashMap<_, _>>()
        .into()
}

/// Decodes `%XX` and `+` in a query component.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| {
            let (n, x) = c.trim().split_once('=')?;
            Some((n.trim(), x.trim()))
        })
}

pub(crate) fn cookie(name: &str, value: &str) -> Value {
    HashMap::from([
        ("name".to_string(), Value::from(name)),
        ("value".to_string(), Value::from(value)),
    ])
    .into()
}

pub(crate) fn cookies(headers: &HeaderMap) -> Value {
    let mut map: HashMap<String, Vec<Value>> = HashMap::new();
    for (n, x) in cookie_pairs(headers) {
        map.entry(n.to_string()).or_default().push(cookie(n, x));
    }
    map.into_iter()
        .map(|(k, x)| (k, Value::from(x)))
        .collect::<HashMap<_, _>>()
        .into()
}

/// `res.cookies`: the response's Set-Cookie headers by cookie name, each with its attributes.
/// A header the cookie crate cannot parse (no `name=value`) is left out, as before.
pub(crate) fn set_cookies(headers: &HeaderMap) -> Value {
    let mut map: HashMap<String, Vec<Value>> = HashMap::new();
    for h in headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
    {
        if let Ok(c) = cookie::Cookie::parse(h) {
            map.entry(c.name().to_string())
                .or_default()
                .push(set_cookie(&c, h));
        }
    }
    map.into_iter()
        .map(|(k, x)| (k, Value::from(x)))
        .collect::<HashMap<_, _>>()
        .into()
}

/// The Set-Cookie attributes the cookie crate knows; any other one is `unparsed_attributes`.
const COOKIE_ATTRIBUTES: &[&str] = &[
    "expires",
    "max-age",
    "domain",
    "path",
    "secure",
    "httponly",
    "samesite",
    "partitioned",
];

/// One Set-Cookie header as ngrok's cookie object. An attribute the header does not set has
/// Go's zero value (ngrok is written in Go): `""`, `false`, a zero duration, and
/// 0001-01-01T00:00:00Z for `expires`, so a field is always there to compare.
fn set_cookie(c: &cookie::Cookie<'_>, raw: &str) -> Value {
    let expires = c.expires_datetime().map_or_else(go_zero_time, |t| {
        DateTime::<Utc>::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
    });
    let max_age = c
        .max_age()
        .map_or(TimeDelta::zero(), |d| TimeDelta::seconds(d.whole_seconds()));
    let unparsed: HashMap<String, Value> = raw
        .split(';')
        .skip(1)
        .filter_map(|a| {
            let (k, x) = a.split_once('=').unwrap_or((a, ""));
            let k = k.trim();
            let known = COOKIE_ATTRIBUTES.iter().any(|n| n.eq_ignore_ascii_case(k));
            (!k.is_empty() && !known).then(|| (k.to_string(), Value::from(x.trim())))
        })
        .collect();
    let fields: [(&str, Value); 10] = [
        ("name", c.name().into()),
        ("value", c.value().into()),
        ("domain", c.domain().unwrap_or("").into()),
        ("path", c.path().unwrap_or("").into()),
        ("expires", Value::Timestamp(expires.fixed_offset())),
        ("max_age", Value::Duration(max_age)),
        ("http_only", c.http_only().unwrap_or(false).into()),
        ("secure", c.secure().unwrap_or(false).into()),
        (
            "same_site",
            c.same_site()
                .map(|x| x.to_string())
                .unwrap_or_default()
                .into(),
        ),
        ("unparsed_attributes", unparsed.into()),
    ];
    fields
        .into_iter()
        .map(|(k, x)| (k.to_string(), x))
        .collect::<HashMap<_, _>>()
        .into()
}

/// Go's zero `time.Time`, 0001-01-01T00:00:00Z.
fn go_zero_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(-62_135_596_800, 0).unwrap_or_default()
}

/// `req.content_encoding` / `res.content_encoding`: the codings of every Content-Encoding
/// header, in order (`gzip, br` is `['gzip', 'br']`).
pub(crate) fn content_encoding(headers: &HeaderMap) -> Value {
    let codings: Vec<Value> = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(Value::from)
        .collect();
    Value::List(Arc::new(codings))
}

/// `req.content_type`: the media type of a Content-Type value, without its parameters, as
/// ngrok documents it (`application/json; charset=utf-8` is `application/json`).
pub(crate) fn media_type(raw: &str) -> &str {
    raw.split(';').next().unwrap_or("").trim()
}

/// `req.content_type.parameters`: the parameters of a Content-Type value, names (and the `charset`
/// value) in lowercase, as the mime crate gives them; quoted values without their quotes. Empty when the value does not
/// parse as a media type.
pub(crate) fn content_type_parameters(raw: &str) -> Value {
    let params: HashMap<String, Value> = raw.parse::<mime::Mime>().map_or_else(
        |_| HashMap::new(),
        |m| {
            m.params()
                .map(|(k, x)| (k.as_str().to_string(), x.as_str().into()))
                .collect()
        },
    );
    params.into()
}

pub(crate) fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// A CEL value as text: strings as they are, lists and maps JSON-like.
pub(crate) fn stringify(v: &Value, out: &mut String) {
    use std::fmt::Write;
    match v {
        Value::String(s) => out.push_str(s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::Bytes(b) => out.push_str(&String::from_utf8_lossy(b)),
        Value::Null => {}
        Value::Timestamp(t) => out.push_str(&t.to_rfc3339()),
        Value::Duration(d) => {
            let _ = write!(out, "{}s", d.num_seconds());
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                stringify(item, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            let mut entries: Vec<_> = m.map.iter().collect();
            entries.sort_by_key(|(k, _)| format!("{k:?}"));
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                stringify(&Value::from(k), out);
                out.push(':');
                stringify(val, out);
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other:?}");
        }
    }
}
