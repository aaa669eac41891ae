//! The names an expression may use: request variables, action results, internal lookup names.

use crate::intel::Supplies;
use crate::phase::Phase;
use crate::secrets::Resolver;

/// Variables with a value of their own (prefixes such as `req.url` may also have fields).
pub(crate) const LEAVES: &[&str] = &[
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
    "req.url.uri",
    "req.url.user_password",
    "req.ts.header_received",
    "req.content_encoding",
    "req.content_length",
    "req.content_type",
    "req.content_type.raw",
    "req.user_agent",
    "req.user_agent.name",
    "req.user_agent.version",
    "req.user_agent.os",
    "req.user_agent.os_version",
    "req.user_agent.device",
    "req.user_agent.url",
    "req.user_agent.is_bot",
    "req.user_agent.is_mobile",
    "req.user_agent.is_tablet",
    "req.user_agent.is_desktop",
    "res.status_code",
    "res.content_type",
    "res.content_type.raw",
    "res.content_encoding",
    "res.content_length",
    "res.location",
    "conn.client_ip",
    "conn.client_port",
    "conn.server_port",
    "conn.ts.start",
    "conn.tls.version",
    "conn.tls.sni",
    "conn.tls.cipher_suite",
    "conn.tls.negotiated_alpn",
    "conn.tls.client.subject",
    "conn.tls.client.subject.common_name",
    "conn.tls.client.subject.country",
    "conn.tls.client.subject.locality",
    "conn.tls.client.subject.organization",
    "conn.tls.client.subject.organizational_unit",
    "conn.tls.client.subject.postal_code",
    "conn.tls.client.subject.province",
    "conn.tls.client.subject.street_address",
    "conn.tls.client.issuer",
    "conn.tls.client.issuer.common_name",
    "conn.tls.client.issuer.country",
    "conn.tls.client.issuer.locality",
    "conn.tls.client.issuer.organization",
    "conn.tls.client.issuer.organizational_unit",
    "conn.tls.client.issuer.postal_code",
    "conn.tls.client.issuer.province",
    "conn.tls.client.issuer.street_address",
    "conn.tls.client.san",
    "conn.tls.client.san.dns_names",
    "conn.tls.client.san.email_addresses",
    "conn.tls.client.san.ip_addresses",
    "conn.tls.client.san.uris",
    "conn.tls.client.serial_number",
    "conn.tls.client.signature_algorithm",
    "conn.tls.client.validity.not_before",
    "conn.tls.client.validity.not_after",
    "conn.tls.client.pem",
    "conn.tls.client.extensions",
    "conn.server_ip",
    "conn.bytes_in",
    "conn.bytes_out",
    "conn.server_region",
    "conn.geo.city",
    "conn.geo.country",
    "conn.geo.country_code",
    "conn.geo.latitude",
    "conn.geo.longitude",
    "conn.geo.radius",
    "conn.geo.subdivision",
    "conn.client_ip.geo.location.city",
    "conn.client_ip.geo.location.continent",
    "conn.client_ip.geo.location.country",
    "conn.client_ip.geo.location.country_code",
    "conn.client_ip.geo.location.is_eu",
    "conn.client_ip.geo.location.latitude",
    "conn.client_ip.geo.location.longitude",
    "conn.client_ip.geo.location.metro_code",
    "conn.client_ip.geo.location.postal_code",
    "conn.client_ip.geo.location.radius",
    "conn.client_ip.geo.location.subdivision",
    "conn.client_ip.geo.location.timezone",
    "conn.client_ip.geo.registered_location.city",
    "conn.client_ip.geo.registered_location.continent",
    "conn.client_ip.geo.registered_location.country",
    "conn.client_ip.geo.registered_location.country_code",
    "conn.client_ip.geo.registered_location.is_eu",
    "conn.client_ip.geo.registered_location.metro_code",
    "conn.client_ip.geo.registered_location.subdivision",
    "conn.client_ip.geo.registered_location.timezone",
    "conn.client_ip.as.number",
    "conn.client_ip.as.organization",
    "conn.client_ip.categories",
    "endpoint.id",
    "endpoint.url",
    "endpoint.host",
    "endpoint.port",
    "endpoint.addr",
    "endpoint.protocol",
    "time.now",
];

/// Map-valued variables: any key below them is allowed.
pub(crate) const MAPS: &[&str] = &[
    "req.headers",
    "req.cookies",
    "req.url.query_params",
    "req.content_type.parameters",
    "res.headers",
    "res.cookies",
    "res.content_type.parameters",
];

/// What an expression may name beyond the fixed variables: the phase it runs in (`res.*` only
/// in on_http_response) and the `actions.ngrok.<key>` results of the registered actions. The
/// registry in `actions/mod.rs` supplies the keys, so a new action's results need no edit here.
/// `secrets` resolves `secrets.get(vault, name)` while the policy compiles.
#[derive(Clone, Copy)]
pub(crate) struct Names<'a> {
    /// The phase the expression runs in.
    pub phase: Phase,
    /// The result keys of every registered action.
    pub results: &'static [&'static str],
    /// What the edge can answer beyond the request (IP databases, user-agent parser).
    pub supplies: Supplies,
    /// The host's secrets; `None`: `secrets.get` is refused.
    pub secrets: Option<&'a Resolver<'a>>,
    /// Root names this one expression may also use, answered from `RequestState::locals`
    /// (http-request's `retry_condition`: `attempts`, `last_attempt`).
    pub locals: &'static [&'static str],
}

/// Why a dotted name is not a variable an expression may use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    /// `actions.<x>` with `x` other than `ngrok`.
    #[error("unknown variable `{0}` (results are under `actions.ngrok`)")]
    NotUnderNgrok(String),
    /// `actions.ngrok.<key>` with a key no registered action has.
    #[error("unknown action result `{0}`")]
    UnknownResult(String),
    /// A `res.*` variable in on_http_request.
    #[error("`{0}` is only available in on_http_response")]
    ResponseOnly(String),
    /// A `req.*` or `res.*` variable in on_tcp_connect.
    #[error("`{0}` is not available in on_tcp_connect: {NO_MESSAGE}")]
    NoMessage(String),
    /// A variable the edge has no data for; the edge.yaml setting that gives it.
    #[error("`{var}` needs data this edge does not have: set `{setting}` in edge.yaml")]
    NotSupplied {
        /// The variable.
        var: String,
        /// The edge.yaml setting.
        setting: &'static str,
    },
    /// Not a variable at all.
    #[error("unknown variable `{0}`")]
    Unknown(String),
}

impl Names<'_> {
    /// Checks at compile time that a dotted name is a variable of the phase.
    pub fn check(&self, segs: &[&str]) -> Result<(), NameError> {
        let full = segs.join(".");
        if self.locals.contains(&segs[0]) {
            return Ok(());
        }
        match segs[0] {
            "vars" => Ok(()),
            "actions" => match (segs.get(1), segs.get(2)) {
                (Some(&n), _) if n != "ngrok" => Err(NameError::NotUnderNgrok(full)),
                (_, Some(&key)) if !self.results.contains(&key) => {
                    Err(NameError::UnknownResult(full))
                }
                _ => Ok(()),
            },
            "req" | "res" if !self.phase.has_message() => Err(NameError::NoMessage(full)),
            "res" if self.phase == Phase::Request => Err(NameError::ResponseOnly(full)),
            "req" | "res" | "conn" | "endpoint" | "time" => {
                let dotted = format!("{full}.");
                let known = LEAVES.contains(&full.as_str())
                    || MAPS
                        .iter()
                        .any(|m| *m == full || full.starts_with(&format!("{m}.")))
                    || LEAVES.iter().chain(MAPS).any(|l| l.starts_with(&dotted));
                if let Some(setting) = self.supplies.missing(&full).filter(|_| known) {
                    Err(NameError::NotSupplied { var: full, setting })
                } else if known {
                    Ok(())
                } else {
                    Err(NameError::Unknown(full))
                }
            }
            other => Err(NameError::Unknown(other.to_string())),
        }
    }
}

/// Why on_tcp_connect has no `req.*` / `res.*`, for the load's messages.
pub(crate) const NO_MESSAGE: &str = "the phase runs once per connection, before any HTTP \
    request is read, so only conn.*, endpoint.*, time.*, vars.* and actions.ngrok.* exist there";

/// ngrok's functions that read the HTTP request or response, refused in on_tcp_connect.
pub(crate) const MESSAGE_FUNCTIONS: &[&str] = &[
    "hasReqHeader",
    "getReqHeader",
    "hasResHeader",
    "getResHeader",
    "hasQueryParam",
    "getQueryParam",
    "hasReqCookie",
    "getReqCookie",
    "hasResCookie",
    "getResCookie",
];

/// Whether a name the interpreter resolves belongs to the HTTP message: `req`, `res`, their
/// fields, and the special names of the functions above.
pub(crate) fn reads_message(name: &str) -> bool {
    let root = name.split('.').next().unwrap_or_default();
    root == "req" || root == "res" || name.starts_with('\0')
}

/// Special names the ngrok functions look single entries up by: not valid CEL names.
pub(crate) const REQ_HEADER: &str = "\0req.header:";
pub(crate) const RES_HEADER: &str = "\0res.header:";
pub(crate) const QUERY_PARAM: &str = "\0req.query:";
pub(crate) const REQ_COOKIE: &str = "\0req.cookie:";
/// Prefix of a presence test: `HAS` + `REQ_HEADER` + name answers a bool.
pub(crate) const HAS: &str = "\0has";
