//! CEL values built from HTTP parts: header maps, query parameters, cookies, user agents.

use cel::Value;
use http::header::{HeaderMap, CONTENT_LENGTH, COOKIE, SET_COOKIE};
use std::collections::HashMap;

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

pub(crate) fn set_cookies(headers: &HeaderMap) -> Value {
    let mut map: HashMap<String, Vec<Value>> = HashMap::new();
    for h in headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
    {
        let first = h.split(';').next().unwrap_or("");
        if let Some((n, x)) = first.split_once('=') {
            map.entry(n.trim().to_string())
                .or_default()
                .push(cookie(n.trim(), x.trim()));
        }
    }
    map.into_iter()
        .map(|(k, x)| (k, Value::from(x)))
        .collect::<HashMap<_, _>>()
        .into()
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
