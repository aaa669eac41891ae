//! The CEL variables of one request, resolved lazily: only names an expression uses are built.

use crate::cel::values::{
    content_length, cookie, cookie_pairs, cookies, header_list, header_map, header_str, is_bot,
    is_mobile, lower, pairs, query_params, set_cookies,
};
use crate::head::{RequestHead, ResponseHead};
use crate::phase::Phase;
use crate::run::state::RequestState;
use cel::common::types::{CelBool, CelInt, CelNull, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::Value;
use http::header::{CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Variables with a value of their own (prefixes such as `req.url` may also have fields).
const LEAVES: &[&str] = &[
    "req.method",
    "req.version",
    "req.host",
    "req.url",
    "req.url.raw",
    "req.url.scheme",
    "req.url.host",
    "req.url.port",
    "req.url.path",
    "req.url.raw_path",
    "req.url.query",
    "req.url.authority",
    "req.content_length",
    "req.content_type",
    "req.user_agent",
    "req.user_agent.is_bot",
    "req.user_agent.is_mobile",
    "req.user_agent.is_desktop",
    "res.status_code",
    "res.content_type",
    "res.content_length",
    "res.location",
    "conn.client_ip",
    "conn.client_port",
    "conn.server_port",
    "conn.ts.start",
    "conn.tls.version",
    "endpoint.id",
    "endpoint.url",
    "endpoint.host",
    "endpoint.port",
    "endpoint.protocol",
    "time.now",
];

/// Map-valued variables: any key below them is allowed.
pub(crate) const MAPS: &[&str] = &[
    "req.headers",
    "req.cookies",
    "req.url.query_params",
    "res.headers",
    "res.cookies",
];

/// The `actions.ngrok.<key>` result names, one per supported action type.
pub(crate) const ACTION_KEYS: &[&str] = &[
    "add_headers",
    "remove_headers",
    "custom_response",
    "deny",
    "redirect",
    "url_rewrite",
    "basic_auth",
    "restrict_ips",
    "rate_limit",
    "set_vars",
    "log",
    "compress_response",
    "verify_webhook",
    "jwt_validation",
    "oauth",
    "oidc",
];

/// The bit of an `actions.ngrok.<key>` result in a results mask.
pub(crate) fn result_bit(key: &str) -> u32 {
    ACTION_KEYS
        .iter()
        .position(|k| *k == key)
        .map_or(0, |i| 1 << i)
}

/// Which action results a policy's expressions may read, found in its source text:
/// `actions.ngrok.<key>` marks one, any other use of the `actions` root marks all.
pub(crate) fn wanted_results(source: &str) -> u32 {
    let mut mask = 0;
    for (i, _) in source.match_indices("actions") {
        let rest = &source[i + "actions".len()..];
        if rest.starts_with(':') || rest.starts_with('"') || rest.starts_with('\'') {
            continue; // the rule's `actions:` key
        }
        let Some(key_part) = rest.strip_prefix(".ngrok.") else {
            if rest.starts_with('.') || rest.starts_with('[') || rest.starts_with(')') {
                mask = u32::MAX;
            }
            continue;
        };
        let key: String = key_part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        mask |= if ACTION_KEYS.contains(&key.as_str()) {
            result_bit(&key)
        } else {
            u32::MAX
        };
    }
    mask
}

/// Checks at compile time that a dotted name is a variable of `phase`.
pub(crate) fn check_path(segs: &[&str], phase: Phase) -> Result<(), String> {
    let full = segs.join(".");
    match segs[0] {
        "vars" => Ok(()),
        "actions" => match (segs.get(1), segs.get(2)) {
            (Some(&n), _) if n != "ngrok" => Err(format!(
                "unknown variable `{full}` (results are under `actions.ngrok`)"
            )),
            (_, Some(&key)) if !ACTION_KEYS.contains(&key) => {
                Err(format!("unknown action result `{full}`"))
            }
            _ => Ok(()),
        },
        "res" if phase == Phase::Request => {
            Err(format!("`{full}` is only available in on_http_response"))
        }
        "req" | "res" | "conn" | "endpoint" | "time" => {
            let dotted = format!("{full}.");
            let known = LEAVES.contains(&full.as_str())
                || MAPS
                    .iter()
                    .any(|m| *m == full || full.starts_with(&format!("{m}.")))
                || LEAVES.iter().chain(MAPS).any(|l| l.starts_with(&dotted));
            if known {
                Ok(())
            } else {
                Err(format!("unknown variable `{full}`"))
            }
        }
        other => Err(format!("unknown variable `{other}`")),
    }
}

/// Special names the ngrok functions look single entries up by: not valid CEL names.
pub(crate) const REQ_HEADER: &str = "\0req.header:";
pub(crate) const RES_HEADER: &str = "\0res.header:";
pub(crate) const QUERY_PARAM: &str = "\0req.query:";
pub(crate) const REQ_COOKIE: &str = "\0req.cookie:";
/// Prefix of a presence test: `HAS` + `REQ_HEADER` + name answers a bool.
pub(crate) const HAS: &str = "\0has";

/// One evaluation's view of the request, answering the interpreter's variable lookups.
pub(crate) struct Scope<'a> {
    pub req: &'a dyn RequestHead,
    pub res: Option<&'a dyn ResponseHead>,
    pub st: &'a RequestState,
    req_headers: OnceLock<Box<dyn Val>>,
}

impl<'a> Scope<'a> {
    pub fn new(
        req: &'a dyn RequestHead,
        res: Option<&'a dyn ResponseHead>,
        st: &'a RequestState,
    ) -> Self {
        Self {
            req,
            res,
            st,
            req_headers: OnceLock::new(),
        }
    }

    fn lookup<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let req = self.req;
        let st = self.st;
        Some(match name {
            "req.method" => s(req.method().as_str()),
            "req.version" => s(version(req.version())),
            "req.host" | "req.url.authority" => s(host(req)),
            "req.url" | "req.url.raw" => v(full_url(req, st).into()),
            "req.url.scheme" => s(scheme(req, st)),
            "req.url.host" => s(split_port(host(req)).0),
            "req.url.port" => CowVal::owned(CelInt::from(i64::from(port(req, st)))),
            "req.url.path" | "req.url.raw_path" => s(req.uri().path()),
            "req.url.query" => s(req.uri().query().unwrap_or("")),
            "req.url.query_params" => v(query_params(req.uri().query().unwrap_or(""))),
            "req.headers" => CowVal::Borrowed(
                self.req_headers
                    .get_or_init(|| boxed(header_map(req.headers())))
                    .as_ref(),
            ),
            "req.cookies" => v(cookies(req.headers())),
            "req.content_length" => CowVal::owned(CelInt::from(content_length(req.headers()))),
            "req.content_type" => s(header_str(req.headers(), CONTENT_TYPE.as_str())),
            "req.user_agent" => s(header_str(req.headers(), USER_AGENT.as_str())),
            "req.user_agent.is_bot" => b(is_bot(header_str(req.headers(), USER_AGENT.as_str()))),
            "req.user_agent.is_mobile" => {
                b(is_mobile(header_str(req.headers(), USER_AGENT.as_str())))
            }
            "req.user_agent.is_desktop" => {
                let ua = header_str(req.headers(), USER_AGENT.as_str());
                b(!ua.is_empty() && !is_bot(ua) && !is_mobile(ua))
            }
            "res.status_code" => {
                CowVal::owned(CelInt::from(i64::from(self.res?.status().as_u16())))
            }
            "res.headers" => v(header_map(self.res?.headers())),
            "res.cookies" => v(set_cookies(self.res?.headers())),
            "res.content_type" => s(header_str(self.res?.headers(), CONTENT_TYPE.as_str())),
            "res.content_length" => {
                CowVal::owned(CelInt::from(content_length(self.res?.headers())))
            }
            "res.location" => s(header_str(self.res?.headers(), LOCATION.as_str())),
            "conn.client_ip" => s(&st.client_ip_text),
            "conn.client_port" => {
                CowVal::owned(CelInt::from(i64::from(st.conn.client_addr.port())))
            }
            "conn.server_port" => CowVal::owned(CelInt::from(i64::from(st.conn.server_port))),
            "conn.ts.start" => v(Value::Timestamp(
                chrono::DateTime::<chrono::Utc>::from(st.conn.start).fixed_offset(),
            )),
            "conn.tls.version" => match &st.conn.tls_version {
                Some(t) => s(t),
                None => CowVal::owned(CelNull),
            },
            "endpoint.id" => s(&st.endpoint.id),
            "endpoint.url" => s(&st.endpoint.url),
            "endpoint.host" => s(&st.endpoint.host),
            "endpoint.port" => CowVal::owned(CelInt::from(i64::from(st.endpoint.port))),
            "endpoint.protocol" => s(&st.endpoint.protocol),
            "time.now" => v(chrono::DateTime::<chrono::Utc>::from(st.now)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                .into()),
            "vars" => v(Value::from(
                st.vars
                    .iter()
                    .map(|(k, x)| (k.clone(), x.clone()))
                    .collect::<HashMap<_, _>>(),
            )),
            "actions" => v(Value::from(HashMap::from([(
                "ngrok".to_string(),
                self.action_results(),
            )]))),
            "actions.ngrok" => v(self.action_results()),
            _ => return self.lookup_prefixed(name),
        })
    }

    fn lookup_prefixed<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        // Single entries of the maps (from `req.headers['k']` rewritten at compile time): absent
        // keys fall back to the map itself, so a missing key errors as CEL says it should.
        if let Some(k) = name.strip_prefix("req.headers.") {
            return self
                .req
                .headers()
                .contains_key(lower(k).as_ref())
                .then(|| v(header_list(self.req.headers(), k)));
        }
        if let Some(k) = name.strip_prefix("res.headers.") {
            let res = self.res?;
            return res
                .headers()
                .contains_key(lower(k).as_ref())
                .then(|| v(header_list(res.headers(), k)));
        }
        if let Some(rest) = name.strip_prefix(HAS) {
            return Some(b(self.present(rest)));
        }
        if let Some(k) = name.strip_prefix("vars.") {
            return st_value(self.st.vars.get(k)?.clone());
        }
        if let Some(k) = name.strip_prefix("actions.ngrok.") {
            let found = self.st.results.iter().find(|(key, _)| *key == k);
            return match found {
                Some((_, x)) => st_value(x.clone()),
                None if ACTION_KEYS.contains(&k) => {
                    v(Value::from(HashMap::<String, Value>::new())).into()
                }
                None => None,
            };
        }
        if let Some(k) = name.strip_prefix(REQ_HEADER) {
            return Some(v(header_list(self.req.headers(), k)));
        }
        if let Some(k) = name.strip_prefix(RES_HEADER) {
            return Some(v(self.res.map_or_else(
                || Value::List(Arc::default()),
                |r| header_list(r.headers(), k),
            )));
        }
        if let Some(k) = name.strip_prefix(QUERY_PARAM) {
            return Some(v(self.query_list(k).into()));
        }
        if let Some(k) = name.strip_prefix(REQ_COOKIE) {
            return Some(v(self.cookie_list(k).into()));
        }
        if let Some(k) = name.strip_prefix("req.url.query_params.") {
            let list = self.query_list(k);
            return (!list.is_empty()).then(|| v(list.into()));
        }
        if let Some(k) = name.strip_prefix("req.cookies.") {
            let list = self.cookie_list(k);
            return (!list.is_empty()).then(|| v(list.into()));
        }
        // An object such as `conn.tls` or `req`: a map of its known fields.
        let dotted = format!("{name}.");
        let mut fields: HashMap<String, Value> = HashMap::new();
        for leaf in LEAVES.iter().chain(MAPS).filter(|l| l.starts_with(&dotted)) {
            let field = leaf[dotted.len()..].split('.').next().unwrap_or_default();
            if fields.contains_key(field) {
                continue;
            }
            let child = format!("{dotted}{field}");
            if let Some(val) = self.lookup(&child) {
                if let Ok(x) = Value::try_from(val.as_ref()) {
                    fields.insert(field.to_string(), x);
                }
            }
        }
        if fields.is_empty() {
            None
        } else {
            Some(v(fields.into()))
        }
    }

    /// Whether a `REQ_HEADER`/`RES_HEADER`/`QUERY_PARAM`/`REQ_COOKIE` + name entry exists.
    fn present(&self, name: &str) -> bool {
        if let Some(k) = name.strip_prefix(REQ_HEADER) {
            return self.req.headers().contains_key(lower(k).as_ref());
        }
        if let Some(k) = name.strip_prefix(RES_HEADER) {
            return self
                .res
                .is_some_and(|r| r.headers().contains_key(lower(k).as_ref()));
        }
        if let Some(k) = name.strip_prefix(QUERY_PARAM) {
            return pairs(self.req.uri().query().unwrap_or("")).any(|(n, _)| n == k);
        }
        if let Some(k) = name.strip_prefix(REQ_COOKIE) {
            return cookie_pairs(self.req.headers()).any(|(n, _)| n == k);
        }
        false
    }

    /// The values of query parameter `k`.
    fn query_list(&self, k: &str) -> Vec<Value> {
        pairs(self.req.uri().query().unwrap_or(""))
            .filter(|(n, _)| n == k)
            .map(|(_, x)| x.into())
            .collect()
    }

    /// The cookies named `k`, as `{name, value}` maps.
    fn cookie_list(&self, k: &str) -> Vec<Value> {
        cookie_pairs(self.req.headers())
            .filter(|(n, _)| *n == k)
            .map(|(n, x)| cookie(n, x))
            .collect()
    }

    fn action_results(&self) -> Value {
        let mut all: HashMap<String, Value> = HashMap::new();
        for (k, x) in &self.st.results {
            all.insert((*k).to_string(), x.clone());
        }
        all.into()
    }
}

impl VariableResolver for Scope<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.lookup(variable)
    }
}

fn s(x: &str) -> CowVal<'_, '_> {
    CowVal::owned(CelString::from(x))
}

fn b<'b>(x: bool) -> CowVal<'b, 'b> {
    CowVal::owned(CelBool::from(x))
}

fn boxed(x: Value) -> Box<dyn Val> {
    Box::<dyn Val>::try_from(x).unwrap_or_else(|_| Box::new(CelNull))
}

fn v<'b>(x: Value) -> CowVal<'b, 'b> {
    CowVal::Owned(boxed(x))
}

fn st_value<'b>(x: Value) -> Option<CowVal<'b, 'b>> {
    Some(v(x))
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The request's host (with any port): the Host header, else the URI authority.
pub(crate) fn host(req: &dyn RequestHead) -> &str {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// `host` and `port` of `host[:port]`, IPv6 brackets kept.
pub(crate) fn split_port(h: &str) -> (&str, Option<u16>) {
    match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => (&h[..i], h[i + 1..].parse().ok()),
        _ => (h, None),
    }
}

/// The request's scheme: the URI's, else the endpoint's protocol, else by TLS.
pub(crate) fn scheme<'a>(req: &'a dyn RequestHead, st: &'a RequestState) -> &'a str {
    if let Some(s) = req.uri().scheme_str() {
        return s;
    }
    if matches!(st.endpoint.protocol.as_str(), "http" | "https") {
        return &st.endpoint.protocol;
    }
    if st.conn.tls_version.is_some() {
        "https"
    } else {
        "http"
    }
}

fn port(req: &dyn RequestHead, st: &RequestState) -> u16 {
    split_port(host(req))
        .1
        .unwrap_or(if scheme(req, st) == "https" { 443 } else { 80 })
}

/// The full request URL, `scheme://host/path?query`, as redirect and url-rewrite see it.
pub(crate) fn full_url(req: &dyn RequestHead, st: &RequestState) -> String {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{}://{}{}", scheme(req, st), host(req), pq)
}
