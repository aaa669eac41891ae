//! The edge-wide auth host: endpoints send browsers there with a sealed sign-in request, it
//! runs the provider flow on its one callback URL, and hands the session back to the endpoint's
//! host with a one-time code (see docs/policy.md, "The edge-wide auth host").

use super::cookies::{self, HANDOFF, PENDING};
use super::flow::{self, redirect, unix, Failure, PENDING_TTL};
use super::{AuthHostRequest, LoginService, CALLBACK_PATH, SESSION_PATH, START_PATH};
use crate::hostname::{host_without_port, Hostname};
use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{Response, StatusCode};
use sluice_policy::codes;
use sluice_policy::identity::{LoginConfig, LoginRequest};

/// The sealing name (authenticated with the value) of a sign-in request in a start URL.
const START: &str = "sluice_start";

/// Where the edge-wide auth host is reached.
#[derive(Clone, Debug)]
pub struct AuthHost {
    host: Hostname,
    /// `host[:port]`, the port left out when it is the scheme's default.
    authority: String,
    https: bool,
}

impl AuthHost {
    /// The auth host `host`, reached over https (else http) on `port`.
    pub fn new(host: Hostname, https: bool, port: u16) -> Self {
        let authority = match (https, port) {
            (true, 443) | (false, 80) => host.to_string(),
            _ => format!("{host}:{port}"),
        };
        Self {
            host,
            authority,
            https,
        }
    }

    fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// `scheme://host[:port]`; the provider's redirect URI is this plus the callback path.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority)
    }

    /// Whether `host` (lowercase, no port) is the auth host.
    pub fn is(&self, host: &str) -> bool {
        self.host.as_str() == host
    }

    /// The question the flow asks on the auth host: the endpoint's configuration, but the
    /// auth host's URL and cookies (host-only: an endpoint's cookie domain does not apply).
    fn request(&self, mut config: LoginConfig, req: &AuthHostRequest) -> LoginRequest {
        config.auth_cookie_domain = None;
        LoginRequest {
            config,
            method: req.method.clone(),
            uri: req.uri.clone(),
            host: self.authority.clone(),
            scheme: self.scheme().to_string(),
            cookies: req.cookies.clone(),
            now: req.now,
        }
    }
}

/// An endpoint's sign-in request, sealed into the start URL (so it cannot be read or changed
/// on the way) and then kept in the auth host's pending cookie.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct StartRequest {
    /// The endpoint's `Host` as the browser used it (port included) and its scheme.
    host: String,
    scheme: String,
    /// Path and query to return to.
    pub(super) back: String,
    /// The browser's [`HANDOFF`] cookie value on the endpoint.
    pub(super) bind: String,
    /// The endpoint's login action, rendered (the client secret stays sealed).
    config: LoginConfig,
    created: u64,
}

impl StartRequest {
    /// The endpoint's hostname (lowercase, no port).
    pub(super) fn hostname(&self) -> String {
        host_without_port(&self.host).unwrap_or_default()
    }

    /// `scheme://host[:port]` of the endpoint, rebuilt from the hostname and a numeric port
    /// only (whatever else a `Host` header held never reaches a `Location`).
    fn origin(&self) -> Option<String> {
        let host = self.hostname();
        let port = match self.host.rsplit_once(':') {
            Some((_, p)) => Some(p.parse::<u16>().ok()?),
            None => None,
        };
        let scheme = match self.scheme.as_str() {
            s @ ("http" | "https") => s,
            _ => return None,
        };
        Some(match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        })
    }
}

/// An endpoint's request without a session: to the auth host with a sealed sign-in request.
/// The browser gets a [`HANDOFF`] cookie (kept when it has one, so two tabs signing in at once
/// both finish).
pub(super) fn send_to(
    svc: &LoginService,
    auth: &AuthHost,
    req: &LoginRequest,
) -> Result<Response<Bytes>, Failure> {
    let bind = cookies::get(&req.cookies, HANDOFF)
        .filter(|v| {
            v.len() >= 16
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| svc.keys.random_token(18), str::to_string);
    let start = StartRequest {
        host: req.host.clone(),
        scheme: req.scheme.clone(),
        back: flow::back_path(req),
        bind: bind.clone(),
        config: req.config.clone(),
        created: unix(req.now),
    };
    let sealed = svc
        .keys
        .seal(START, &start)
        .ok_or_else(|| Failure::provider("could not seal the sign-in request"))?;
    let mut res = redirect(&format!("{}{START_PATH}?r={sealed}", auth.base_url()));
    res.headers_mut()
        .append(SET_COOKIE, cookies::set(req, HANDOFF, &bind, PENDING_TTL));
    Ok(res)
}

/// A request for the auth host's start or callback path.
pub(super) async fn answer(
    svc: &LoginService,
    auth: &AuthHost,
    req: AuthHostRequest,
    serves: &(dyn Fn(&str) -> bool + Sync),
) -> Response<Bytes> {
    let res = if req.uri.path() == CALLBACK_PATH {
        callback(svc, auth, &req, serves).await
    } else {
        start(svc, auth, &req, serves).await
    };
    res.unwrap_or_else(|f| {
        let mut page = f.page();
        let clear = cookies::set_with(auth.https, None, PENDING, "", 0);
        page.headers_mut().append(SET_COOKIE, clear);
        page
    })
}

/// `START_PATH?r=…`: opens the endpoint's sealed request and sends the browser to the
/// provider with the auth host's callback.
async fn start(
    svc: &LoginService,
    auth: &AuthHost,
    req: &AuthHostRequest,
    serves: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Response<Bytes>, Failure> {
    let sealed = flow::query(&req.uri).remove("r").unwrap_or_default();
    let now = unix(req.now);
    let start = svc
        .keys
        .open::<StartRequest>(START, &sealed)
        .filter(|s| now < s.created.saturating_add(PENDING_TTL))
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                codes::LOGIN_START_INVALID,
                "This sign-in link was not made by this edge, was changed, or is older than \
                 10 minutes. Go back to the site and open it again.",
            )
        })?;
    check_return(auth, &start, serves)?;
    let login = auth.request(start.config.clone(), req);
    let back = start.back.clone();
    flow::start(svc, &login, back, Some(start)).await
}

/// `CALLBACK_PATH` on the auth host: finishes the sign-in the pending cookie names and sends
/// the browser to its endpoint with a one-time code.
async fn callback(
    svc: &LoginService,
    auth: &AuthHost,
    req: &AuthHostRequest,
    serves: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Response<Bytes>, Failure> {
    let mut pending = flow::pending(svc, &req.cookies, req.now)?;
    let start = pending.handoff.take().ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            codes::LOGIN_NOT_STARTED,
            "This sign-in was not started through this edge's sign-in host.",
        )
    })?;
    let login = auth.request(start.config.clone(), req);
    let session = flow::finish(svc, &login, &pending).await?;
    // Checked again: the endpoint may have gone offline during the sign-in.
    let origin = check_return(auth, &start, serves)?;
    let target = format!("{origin}{SESSION_PATH}");
    let code = flow::hand_over(svc, start, session);
    let mut res = redirect(&format!("{target}?code={code}"));
    res.headers_mut()
        .append(SET_COOKIE, cookies::clear(&login, PENDING));
    Ok(res)
}

/// No open redirect: a sign-in returns only to a host this edge serves (and never to the auth
/// host itself), over http or https. The endpoint's origin to return to.
fn check_return(
    auth: &AuthHost,
    start: &StartRequest,
    serves: &(dyn Fn(&str) -> bool + Sync),
) -> Result<String, Failure> {
    let host = start.hostname();
    if let Some(origin) = start.origin() {
        if !host.is_empty() && !auth.is(&host) && serves(&host) {
            return Ok(origin);
        }
    }
    Err(Failure::new(
        StatusCode::BAD_REQUEST,
        codes::LOGIN_RETURN_HOST_UNKNOWN,
        format!("This sign-in would return to '{host}', which this edge does not serve."),
    ))
}
