//! One request to an endpoint through the sign-in flow: a valid session passes, the callback
//! finishes a sign-in, logout ends a session, a one-time code from the auth host becomes a
//! session, anything else is sent to the provider (or to the auth host, which does that).

use super::auth_host::AuthHost;
use super::clock::unix;
use super::cookies::{self, HANDOFF, PENDING, SESSION};
use super::failure::{pending_failure, redirect, Failure};
use super::paths::{CALLBACK_PATH, LOGOUT_PATH, SESSION_PATH, START_PATH};
use super::provider::field;
use super::provider_flow::{self, back_path, endpoints, finish, pending, query};
use super::sealed::{binding, Session, StartRequest, PENDING_TTL, START};
use super::service::LoginService;
use crate::hostname::host_without_port;
use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{HeaderValue, Response, StatusCode};
use sluice_policy::codes;
use sluice_policy::identity::{
    Authenticator, Identity, LoginFuture, LoginOutcome, LoginRequest, Provider,
};
use std::time::{Duration, UNIX_EPOCH};
use subtle::ConstantTimeEq as _;

/// The session cookie is rewritten (idle clock reset) at most this often.
const RENEW_EVERY: u64 = 60;

impl Authenticator for LoginService {
    fn login<'a>(&'a self, req: &'a LoginRequest) -> LoginFuture<'a> {
        Box::pin(decide(self, req))
    }
}

/// Decides one request.
async fn decide(svc: &LoginService, req: &LoginRequest) -> LoginOutcome {
    let path = req.uri.path();
    if path == CALLBACK_PATH {
        let res = callback(svc, req)
            .await
            .unwrap_or_else(|f| failure_page(req, f));
        return LoginOutcome::Respond(res);
    }
    if path == LOGOUT_PATH {
        return LoginOutcome::Respond(logout(svc, req).await);
    }
    if path == SESSION_PATH {
        let res = swap_code(svc, req)
            .await
            .unwrap_or_else(|f| failure_page(req, f));
        return LoginOutcome::Respond(res);
    }
    match session(svc, req).await {
        Ok(Some(outcome)) => return outcome,
        Ok(None) => {}
        Err(f) => return LoginOutcome::Respond(failure_page(req, f)),
    }
    let res = match &svc.auth {
        Some(auth) => send_to(svc, auth, req),
        None => provider_flow::start(svc, req, back_path(req), None).await,
    };
    LoginOutcome::Respond(res.unwrap_or_else(|f| failure_page(req, f)))
}

/// The request's session, when it has a valid one for this configuration (`Ok(None)`: sign
/// in). Its user info is read again when older than `userinfo_refresh_interval`.
async fn session(svc: &LoginService, req: &LoginRequest) -> Result<Option<LoginOutcome>, Failure> {
    let Some(mut s) =
        cookies::get(&req.cookies, SESSION).and_then(|c| svc.keys.open::<Session>(SESSION, c))
    else {
        return Ok(None);
    };
    let now = unix(req.now);
    let idle = req.config.idle_session_timeout.as_secs();
    if s.cfg != binding(req) || now >= s.exp || now >= s.seen + idle || svc.is_revoked(&s.sid) {
        return Ok(None);
    }
    let mut changed = false;
    if let Some(every) = req.config.userinfo_refresh_interval {
        if now >= s.info.saturating_add(every.as_secs()) {
            if !refresh(svc, req, &mut s).await? {
                // The provider no longer accepts this session: it ends here (copies too).
                tracing::info!(provider = ?req.config.provider, "session ended by the provider");
                svc.revoke(s.sid.clone(), s.exp).await;
                return Ok(None);
            }
            s.info = now;
            changed = true;
        }
    }
    let set_cookie = if changed || now >= s.seen + RENEW_EVERY {
        s.seen = now;
        seal_session(svc, req, &s)
    } else {
        None
    };
    Ok(Some(LoginOutcome::SignedIn {
        identity: identity(req, &s),
        set_cookie,
    }))
}

/// Reads the session's user info again with its access token: false when the provider no
/// longer accepts the token (revoked, expired, the user gone), names another user, or the
/// session holds no token. Email and name the answer carries replace the session's.
async fn refresh(svc: &LoginService, req: &LoginRequest, s: &mut Session) -> Result<bool, Failure> {
    let e = endpoints(svc, req).await?;
    let Some(url) = &e.userinfo else {
        // Nothing to ask (a provider without a user-info endpoint): the sign-in stands.
        return Ok(true);
    };
    let Some(token) = &s.tok else {
        return Ok(false);
    };
    let info = svc
        .providers
        .user_info(url, token)
        .await
        .map_err(|m| Failure::provider(format!("Reading the user info failed: {m}")))?;
    let Some(info) = info else {
        return Ok(false);
    };
    if field(&info, e.user.id).is_some_and(|id| id != s.sub) {
        return Ok(false);
    }
    if let Some(email) = field(&info, e.user.email) {
        s.email = Some(email);
    }
    if let Some(name) = field(&info, e.user.name) {
        s.name = Some(name);
    }
    Ok(true)
}

/// The identity the policy and the upstream see for session `s`.
fn identity(req: &LoginRequest, s: &Session) -> Identity {
    let (kind, provider) = match &req.config.provider {
        Provider::Oidc { issuer_url } => ("oidc", issuer_url.clone()),
        Provider::OAuth { name } => ("oauth", name.clone()),
    };
    Identity {
        kind,
        provider,
        client_id: req.config.client_id.clone(),
        id: s.sub.clone(),
        email: s.email.clone(),
        name: s.name.clone(),
        session_id: s.sid.clone(),
        expires_at: UNIX_EPOCH + Duration::from_secs(s.exp),
    }
}

/// The session cookie for `s`, living until the session's hard end.
fn seal_session(svc: &LoginService, req: &LoginRequest, s: &Session) -> Option<HeaderValue> {
    let sealed = svc.keys.seal(SESSION, s)?;
    let max_age = s.exp.saturating_sub(unix(req.now));
    Some(cookies::set(req, SESSION, &sealed, max_age))
}

/// Finishes a sign-in on the endpoint's own host and sets the session there.
async fn callback(svc: &LoginService, req: &LoginRequest) -> Result<Response<Bytes>, Failure> {
    let pending = pending(svc, &req.cookies, req.now)?;
    if pending.cfg != binding(req) || pending.handoff.is_some() {
        return Err(pending_failure());
    }
    let session = finish(svc, req, &pending).await?;
    signed_in(svc, req, &session, &pending.back, PENDING)
}

/// The end of a sign-in on the endpoint's host: the session cookie set, the browser sent back
/// to `back`, and the cookie `spent` that carried the sign-in cleared.
fn signed_in(
    svc: &LoginService,
    req: &LoginRequest,
    session: &Session,
    back: &str,
    spent: &str,
) -> Result<Response<Bytes>, Failure> {
    let cookie = seal_session(svc, req, session)
        .ok_or_else(|| Failure::provider("could not seal the session"))?;
    let mut res = redirect(back);
    res.headers_mut().append(SET_COOKIE, cookie);
    res.headers_mut()
        .append(SET_COOKIE, cookies::clear(req, spent));
    Ok(res)
}

/// `SESSION_PATH?code=…` on an endpoint: the auth host's one-time code becomes the session
/// cookie on this host, when the code is fresh, unused, issued for this host and this
/// configuration, and this browser started the sign-in.
async fn swap_code(svc: &LoginService, req: &LoginRequest) -> Result<Response<Bytes>, Failure> {
    let code = query(&req.uri).remove("code").unwrap_or_default();
    let handed = svc.take_code(&code).await.ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            codes::LOGIN_CODE_INVALID,
            "This sign-in code is unknown, was already used, or is older than 60 seconds.",
        )
    })?;
    let host = host_without_port(&req.host).unwrap_or_default();
    if handed.host != host || handed.session.cfg != binding(req) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            codes::LOGIN_CODE_WRONG_HOST,
            "This sign-in code was issued for another site; it is now spent.",
        ));
    }
    let bind = cookies::get(&req.cookies, HANDOFF).unwrap_or_default();
    if !bool::from(bind.as_bytes().ct_eq(handed.bind.as_bytes())) {
        return Err(pending_failure());
    }
    signed_in(svc, req, &handed.session, &handed.back, HANDOFF)
}

/// Ends the session (also server-side: the cookie's session id is refused from now on, on
/// every edge of a cluster).
async fn logout(svc: &LoginService, req: &LoginRequest) -> Response<Bytes> {
    if let Some(s) =
        cookies::get(&req.cookies, SESSION).and_then(|c| svc.keys.open::<Session>(SESSION, c))
    {
        svc.revoke(s.sid, s.exp).await;
    }
    let mut res = codes::html_page(
        StatusCode::OK,
        "Signed out",
        "You are signed out of this site.",
        None,
    );
    res.headers_mut()
        .append(SET_COOKIE, cookies::clear(req, SESSION));
    res
}

/// The failure page on an endpoint, which also drops a pending sign-in.
fn failure_page(req: &LoginRequest, f: Failure) -> Response<Bytes> {
    let mut res = f.page();
    res.headers_mut()
        .append(SET_COOKIE, cookies::clear(req, PENDING));
    res
}

/// An endpoint's request without a session: to the auth host with a sealed sign-in request.
/// The browser gets a [`HANDOFF`] cookie (kept when it has one, so two tabs signing in at once
/// both finish).
fn send_to(
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
        back: back_path(req),
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
