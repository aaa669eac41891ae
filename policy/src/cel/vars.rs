//! The CEL variables of one request, resolved lazily: only names an expression uses are built.

use crate::cel::names::{self, HAS, LEAVES, MAPS, QUERY_PARAM, REQ_COOKIE, REQ_HEADER, RES_HEADER};
use crate::cel::url::{full_url, host, port, scheme, split_port};
use crate::cel::values::{
    content_encoding, content_length, content_type_parameters, cookie, cookie_pairs, cookies,
    header_list, header_map, header_str, lower, media_type, pairs, query_params, set_cookies,
};
use crate::client_cert::ClientCertificate;
use crate::head::{empty_request, RequestHead, ResponseHead};
use crate::intel::Location;
use crate::run::state::RequestState;
use crate::user_agent::UserAgentFacts;
use cel::common::types::{CelBool, CelInt, CelNull, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::Value;
use http::header::{CONTENT_TYPE, LOCATION, USER_AGENT};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// One evaluation's view of the request, answering the interpreter's variable lookups.
pub(crate) struct Scope<'a> {
    pub req: &'a dyn RequestHead,
    pub res: Option<&'a dyn ResponseHead>,
    pub st: &'a RequestState,
    /// The result keys of the registered actions: `actions.ngrok.<key>` of one that has not
    /// run is an empty map, not an error.
    results: &'static [&'static str],
    req_headers: OnceLock<Box<dyn Val>>,
    /// Whether there is an HTTP message: false in on_tcp_connect, where `req.*` and `res.*`
    /// are absent (the load refuses them too).
    message: bool,
}

impl<'a> Scope<'a> {
    pub fn new(
        req: &'a dyn RequestHead,
        res: Option<&'a dyn ResponseHead>,
        st: &'a RequestState,
        results: &'static [&'static str],
    ) -> Self {
        Self {
            req,
            res,
            st,
            results,
            req_headers: OnceLock::new(),
            message: true,
        }
    }

    /// The variables of a connection without an HTTP message (on_tcp_connect).
    pub fn connection(st: &'a RequestState, results: &'static [&'static str]) -> Self {
        Self {
            message: false,
            ..Self::new(empty_request(), None, st, results)
        }
    }

    fn lookup<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        if !self.message && names::reads_message(name) {
            return None;
        }
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
            "req.url.uri" => s(req.uri().path_and_query().map_or("/", |p| p.as_str())),
            // Clients do not send userinfo in the request target (RFC 9112 forbids it).
            "req.url.user_password" => s(""),
            "req.ts.header_received" => v(timestamp(st.now)),
            "req.url.query_params" => v(query_params(req.uri().query().unwrap_or(""))),
            "req.headers" => CowVal::Borrowed(
                self.req_headers
                    .get_or_init(|| boxed(header_map(req.headers())))
                    .as_ref(),
            ),
            "req.cookies" => v(cookies(req.headers())),
            "req.content_length" => CowVal::owned(CelInt::from(content_length(req.headers()))),
            "req.content_type" => s(media_type(header_str(req.headers(), CONTENT_TYPE.as_str()))),
            "req.content_type.raw" => s(header_str(req.headers(), CONTENT_TYPE.as_str())),
            "req.content_type.parameters" => v(content_type_parameters(header_str(
                req.headers(),
                CONTENT_TYPE.as_str(),
            ))),
            "req.content_encoding" => v(content_encoding(req.headers())),
            "req.user_agent" => s(header_str(req.headers(), USER_AGENT.as_str())),
            "res.status_code" => {
                CowVal::owned(CelInt::from(i64::from(self.res?.status().as_u16())))
            }
            "res.headers" => v(header_map(self.res?.headers())),
            "res.cookies" => v(set_cookies(self.res?.headers())),
            "res.content_type" => s(media_type(header_str(
                self.res?.headers(),
                CONTENT_TYPE.as_str(),
            ))),
            "res.content_type.raw" => s(header_str(self.res?.headers(), CONTENT_TYPE.as_str())),
            "res.content_type.parameters" => v(content_type_parameters(header_str(
                self.res?.headers(),
                CONTENT_TYPE.as_str(),
            ))),
            "res.content_encoding" => v(content_encoding(self.res?.headers())),
            "res.content_length" => {
                CowVal::owned(CelInt::from(content_length(self.res?.headers())))
            }
            "res.location" => s(header_str(self.res?.headers(), LOCATION.as_str())),
            "conn.client_ip" => s(&st.client_ip_text),
            "conn.client_port" => {
                CowVal::owned(CelInt::from(i64::from(st.conn.client_addr.port())))
            }
            "conn.server_port" => CowVal::owned(CelInt::from(i64::from(st.conn.server_port))),
            "conn.server_region" => s(st.facts.region()),
            "conn.client_ip.as.number" => {
                CowVal::owned(CelInt::from(i64::from(st.facts.asn(st.client_ip).number)))
            }
            "conn.client_ip.as.organization" => s(&st.facts.asn(st.client_ip).organization),
            "conn.client_ip.categories" => v(Value::List(Arc::new(
                st.facts
                    .categories(st.client_ip)
                    .iter()
                    .map(|c| Value::from(c.as_str()))
                    .collect(),
            ))),
            "conn.ts.start" => v(timestamp(st.conn.start)),
            "conn.tls.version" => match &st.conn.tls.version {
                Some(t) => s(t),
                None => CowVal::owned(CelNull),
            },
            "conn.tls.sni" => s(st.conn.tls.sni.as_deref().unwrap_or("")),
            "conn.tls.cipher_suite" => s(st.conn.tls.cipher_suite.as_deref().unwrap_or("")),
            "conn.tls.negotiated_alpn" => s(st.conn.tls.negotiated_alpn.as_deref().unwrap_or("")),
            "conn.server_ip" => v(st
                .conn
                .server_ip
                .map_or_else(String::new, |ip| ip.to_string())
                .into()),
            "conn.bytes_in" => CowVal::owned(CelInt::from(count(st.conn.bytes_in))),
            "conn.bytes_out" => CowVal::owned(CelInt::from(count(st.conn.bytes_out))),
            "endpoint.id" => s(&st.endpoint.id),
            "endpoint.url" => s(&st.endpoint.url),
            "endpoint.host" => s(&st.endpoint.host),
            "endpoint.port" => CowVal::owned(CelInt::from(i64::from(st.endpoint.port))),
            "endpoint.addr" => v(format!("{}:{}", st.endpoint.host, st.endpoint.port).into()),
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
            _ => match st.locals.iter().find(|(k, _)| *k == name) {
                Some((_, x)) => v(x.clone()),
                None => return self.lookup_prefixed(name),
            },
        })
    }

    fn lookup_prefixed<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        if let Some(field) = name.strip_prefix("conn.tls.client.") {
            let cert = self.st.conn.tls.client_certificate.as_deref();
            return cert
                .unwrap_or(ClientCertificate::none())
                .field(field)
                .map(v);
        }
        if let Some(field) = name.strip_prefix("req.user_agent.") {
            return user_agent_field(self.user_agent(), field);
        }
        let geo = || self.st.facts.geo(self.st.client_ip);
        if let Some(field) = name
            .strip_prefix("conn.geo.")
            .or_else(|| name.strip_prefix("conn.client_ip.geo.location."))
        {
            return location_field(&geo().location, field);
        }
        if let Some(field) = name.strip_prefix("conn.client_ip.geo.registered_location.") {
            return location_field(&geo().registered, field);
        }
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
                None if self.results.contains(&k) => {
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

    /// The parsed `User-Agent`, once per request.
    fn user_agent(&self) -> &UserAgentFacts {
        self.st
            .facts
            .user_agent(|| header_str(self.req.headers(), USER_AGENT.as_str()).to_string())
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

/// `req.user_agent.<field>`.
fn user_agent_field<'b>(ua: &'b UserAgentFacts, field: &str) -> Option<CowVal<'b, 'b>> {
    Some(match field {
        "name" => s(&ua.name),
        "version" => s(&ua.version),
        "os" => s(&ua.os),
        "os_version" => s(&ua.os_version),
        "device" => s(&ua.device),
        "url" => s(&ua.url),
        "is_bot" => b(ua.is_bot),
        "is_mobile" => b(ua.is_mobile),
        "is_tablet" => b(ua.is_tablet),
        "is_desktop" => b(ua.is_desktop),
        _ => return None,
    })
}

/// One field of a location (`conn.geo.<field>`, `conn.client_ip.geo.location.<field>`, ...).
fn location_field<'b>(l: &'b Location, field: &str) -> Option<CowVal<'b, 'b>> {
    Some(match field {
        "city" => s(&l.city),
        "continent" => s(&l.continent),
        "country" => s(&l.country),
        "country_code" => s(&l.country_code),
        "is_eu" => b(l.is_eu),
        "latitude" => s(&l.latitude),
        "longitude" => s(&l.longitude),
        "metro_code" => s(&l.metro_code),
        "postal_code" => s(&l.postal_code),
        "radius" => s(&l.radius),
        "subdivision" => s(&l.subdivision),
        "timezone" => s(&l.timezone),
        _ => return None,
    })
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

/// A byte count as a CEL int (saturating: no connection moves 2^63 bytes).
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A CEL timestamp, in UTC.
fn timestamp(t: std::time::SystemTime) -> Value {
    Value::Timestamp(chrono::DateTime::<chrono::Utc>::from(t).fixed_offset())
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
