//! Requests on the edge-wide auth host: it opens an endpoint's sealed sign-in request, runs
//! the provider flow on its one callback URL, and hands the session back to the endpoint's host
//! with a one-time code (see docs/policy.md, "The edge-wide auth host").

use super::auth_host::{AuthHost, AuthHostRequest};
use super::clock::unix;
use super::cookies::{self, PENDING};
use super::failure::{redirect, Failure};
use super::paths::{CALLBACK_PATH, SESSION_PATH};
use super::provider_flow::{self, finish, pending, query};
use super::sealed::{Handed, Session, StartRequest, PENDING_TTL, START};
use super::service::LoginService;
use bytes::Bytes;
use http::header::SET_COOKIE;
use http::{Response, StatusCode};
use sluice_policy::codes;

impl LoginService {
    /// Answers a request on the auth host (see [`Self::is_auth_host_request`]). `serves`
    /// tells whether this edge serves a hostname (lowercase, no port): sign-ins only ever
    /// return to such hosts.
    pub async fn answer_auth_host(
        &self,
        req: AuthHostRequest,
        serves: &(dyn Fn(&str) -> bool + Sync),
    ) -> Response<Bytes> {
        match &self.auth {
            Some(auth) => answer(self, auth, req, serves).await,
            None => codes::html_page(StatusCode::NOT_FOUND, "Not found", "", None),
        }
    }
}

/// A request for the auth host's start or callback path.
async fn answer(
    svc: &LoginService,
    auth: &AuthHost,
    req: AuthHostRequest,
    serves: &(dyn Fn(&str) -> bool + Sync),
) -> Response<Bytes> {
    let res = if req.uri.path() == CALLBACK_PATH {
        callback(svc, auth, &req, serves).await
    } else {
        open_start(svc, auth, &req, serves).await
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
async fn open_start(
    svc: &LoginService,
    auth: &AuthHost,
    req: &AuthHostRequest,
    serves: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Response<Bytes>, Failure> {
    let sealed = query(&req.uri).remove("r").unwrap_or_default();
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
    provider_flow::start(svc, &login, back, Some(start)).await
}

/// `CALLBACK_PATH` on the auth host: finishes the sign-in the pending cookie names and sends
/// the browser to its endpoint with a one-time code.
async fn callback(
    svc: &LoginService,
    auth: &AuthHost,
    req: &AuthHostRequest,
    serves: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Response<Bytes>, Failure> {
    let mut pending = pending(svc, &req.cookies, req.now)?;
    let start = pending.handoff.take().ok_or_else(|| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            codes::LOGIN_NOT_STARTED,
            "This sign-in was not started through this edge's sign-in host.",
        )
    })?;
    let login = auth.request(start.config.clone(), req);
    let session = finish(svc, &login, &pending).await?;
    // Checked again: the endpoint may have gone offline during the sign-in.
    let origin = check_return(auth, &start, serves)?;
    let target = format!("{origin}{SESSION_PATH}");
    let code = hand_over(svc, start, session).await;
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

/// A sign-in finished on the auth host: keeps the session under a new one-time code for the
/// endpoint's host (in a cluster, where every edge can swap it) and returns the code.
async fn hand_over(svc: &LoginService, start: StartRequest, session: Session) -> String {
    let handed = Handed {
        host: start.hostname(),
        bind: start.bind,
        back: start.back,
        session,
    };
    svc.issue_code(handed).await
}
