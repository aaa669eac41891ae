//! One request through the sign-in flow: a valid session passes, the callback finishes a
//! sign-in, logout ends a session, a one-time code from the auth host becomes a session,
//! anything else is sent to the provider (or to the auth host, which does that).

use super::auth_host::{self, StartRequest};
use super::cookies::{self, HANDOFF, PENDING, SESSION};
use super::id_token::{self, Expect};
use super::provider::{field, Endpoints};
use super::{LoginService, CALLBACK_PATH, LOGOUT_PATH, SESSION_PATH};
use crate::hostname::host_without_port;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method, Response, StatusCode};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use sluice_policy::codes;
use sluice_policy::identity::{Identity, LoginOutcome, LoginRequest, Provider};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq as _;

/// How long a started sign-in may take (login and consent at the provider included).
pub(super) const PENDING_TTL: u64 = 600;
/// The session cookie is rewritten (idle clock reset) at most this often.
const RENEW_EVERY: u64 = 60;

/// The token response: OAuth's fields plus OpenID's `id_token`.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A signed-in browser's session, sealed into [`SESSION`].
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Session {
    /// Session id (random).
    sid: String,
    /// Which configuration signed it in ([`binding`]).
    cfg: String,
    sub: String,
    email: Option<String>,
    name: Option<String>,
    /// Unix seconds: last seen (idle timeout) and hard end (max duration).
    seen: u64,
    exp: u64,
    /// The access token, kept only to read the user info again (`userinfo_refresh_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tok: Option<String>,
    /// Unix seconds: when the user info was last read.
    #[serde(default)]
    info: u64,
}

/// A sign-in in progress, sealed into [`PENDING`].
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// Path and query to return to.
    back: String,
    cfg: String,
    pub(super) created: u64,
    /// On the auth host: the endpoint's sign-in request this one serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) handoff: Option<StartRequest>,
}

/// A sign-in the auth host finished, waiting under a one-time code for its endpoint.
pub(super) struct Handed {
    /// The endpoint's host (lowercase, no port): the only one that may swap the code.
    pub(super) host: String,
    /// The endpoint's [`HANDOFF`] cookie value in the browser that started the sign-in.
    pub(super) bind: String,
    /// Path and query to return to.
    pub(super) back: String,
    pub(super) session: Session,
}

/// Why a sign-in failed: an HTML page with a `sluice-error-code`, never a redirect.
pub(super) struct Failure {
    status: StatusCode,
    code: u32,
    message: String,
}

impl Failure {
    pub(super) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn provider(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            codes::LOGIN_PROVIDER_FAILED,
            message,
        )
    }
}

pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Ties cookies to one action configuration: a session from another provider or client id
/// does not count here.
fn binding(req: &LoginRequest) -> String {
    use sha2::Digest as _;
    let provider = match &req.config.provider {
        Provider::Oidc { issuer_url } => format!("oidc {issuer_url}"),
        Provider::OAuth { name } => format!("oauth {name}"),
    };
    let digest = sha2::Sha256::digest(format!("{provider}\n{}", req.config.client_id));
    hex::encode(&digest[..12])
}

/// Decides one request.
pub async fn decide(svc: &LoginService, req: &LoginRequest) -> LoginOutcome {
    let path = req.uri.path();
    if path == CALLBACK_PATH {
        let res = callback(svc, req)
            .await
            .unwrap_or_else(|f| failure_page(req, f));
        return LoginOutcome::Respond(res);
    }
    if path == LOGOUT_PATH {
        return LoginOutcome::Respond(logout(svc, req));
    }
    if path == SESSION_PATH {
        let res = swap_code(svc, req).unwrap_or_else(|f| failure_page(req, f));
        return LoginOutcome::Respond(res);
    }
    match session(svc, req).await {
        Ok(Some(outcome)) => return outcome,
        Ok(None) => {}
        Err(f) => return LoginOutcome::Respond(failure_page(req, f)),
    }
    let res = match &svc.auth {
        Some(auth) => auth_host::send_to(svc, auth, req),
        None => start(svc, req, back_path(req), None).await,
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
                svc.revoke(s.sid.clone(), s.exp);
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

fn seal_session(svc: &LoginService, req: &LoginRequest, s: &Session) -> Option<HeaderValue> {
    let sealed = svc.keys.seal(SESSION, s)?;
    let max_age = s.exp.saturating_sub(unix(req.now));
    Some(cookies::set(req, SESSION, &sealed, max_age))
}

fn oauth_client(req: &LoginRequest, e: &Endpoints) -> Result<OAuthClient, Failure> {
    let bad = |what: &str, e: url::ParseError| Failure::provider(format!("{what}: {e}"));
    let redirect = format!("{}://{}{CALLBACK_PATH}", req.scheme, req.host);
    let client = oauth2::Client::new(ClientId::new(req.config.client_id.clone()))
        .set_client_secret(ClientSecret::new(req.config.client_secret.clone()))
        .set_auth_uri(
            AuthUrl::new(e.authorization.clone()).map_err(|x| bad("authorization URL", x))?,
        )
        .set_token_uri(TokenUrl::new(e.token.clone()).map_err(|x| bad("token URL", x))?)
        .set_redirect_uri(RedirectUrl::new(redirect).map_err(|x| bad("callback URL", x))?);
    Ok(if e.secret_in_body {
        client.set_auth_type(AuthType::RequestBody)
    } else {
        client
    })
}

async fn endpoints(svc: &LoginService, req: &LoginRequest) -> Result<Arc<Endpoints>, Failure> {
    svc.providers
        .endpoints(&req.config.provider)
        .await
        .map_err(|e| Failure::provider(format!("the identity provider is unavailable: {e}")))
}

/// Path and query to return to after sign-in: only a page load comes back to where it
/// started; other methods land on the root.
pub(super) fn back_path(req: &LoginRequest) -> String {
    match req.method {
        Method::GET | Method::HEAD => req
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string()),
        _ => "/".to_string(),
    }
}

/// Sends the browser to the provider, remembering state, nonce, PKCE verifier, the path to
/// return to and (on the auth host) the endpoint's sign-in request.
pub(super) async fn start(
    svc: &LoginService,
    req: &LoginRequest,
    back: String,
    handoff: Option<StartRequest>,
) -> Result<Response<Bytes>, Failure> {
    let e = endpoints(svc, req).await?;
    let client = oauth_client(req, &e)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let nonce = svc.keys.random_token(24);
    let scopes = if req.config.scopes.is_empty() {
        &e.default_scopes
    } else {
        &req.config.scopes
    };
    let mut auth = client
        .authorize_url(CsrfToken::new_random)
        .set_pkce_challenge(challenge)
        .add_scopes(scopes.iter().cloned().map(Scope::new));
    if e.issuer.is_some() {
        auth = auth.add_extra_param("nonce", nonce.clone());
    }
    for (k, v) in &req.config.authz_url_params {
        auth = auth.add_extra_param(k.clone(), v.clone());
    }
    let (url, state) = auth.url();
    let pending = Pending {
        state: state.secret().clone(),
        nonce,
        verifier: verifier.secret().clone(),
        back,
        cfg: binding(req),
        created: unix(req.now),
        handoff,
    };
    let sealed = svc
        .keys
        .seal(PENDING, &pending)
        .ok_or_else(|| Failure::provider("could not seal the sign-in state"))?;
    let mut res = redirect(url.as_str());
    res.headers_mut()
        .append(SET_COOKIE, cookies::set(req, PENDING, &sealed, PENDING_TTL));
    Ok(res)
}

/// The request's query parameters.
pub(super) fn query(req_uri: &http::Uri) -> HashMap<String, String> {
    req_uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The sign-in this browser started (its sealed [`PENDING`] cookie), if not too old.
pub(super) fn pending(
    svc: &LoginService,
    cookie_values: &[HeaderValue],
    now: SystemTime,
) -> Result<Pending, Failure> {
    cookies::get(cookie_values, PENDING)
        .and_then(|c| svc.keys.open(PENDING, c))
        .filter(|p: &Pending| unix(now) < p.created + PENDING_TTL)
        .ok_or_else(pending_failure)
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

fn pending_failure() -> Failure {
    Failure::new(
        StatusCode::BAD_REQUEST,
        codes::LOGIN_NOT_STARTED,
        "This sign-in was not started in this browser, or it took longer than 10 minutes.",
    )
}

/// The provider's answer at the callback, for `pending`: checks state, exchanges the code
/// (PKCE), verifies the ID token, reads the user info; the new session.
pub(super) async fn finish(
    svc: &LoginService,
    req: &LoginRequest,
    pending: &Pending,
) -> Result<Session, Failure> {
    let query = query(&req.uri);
    let state = query.get("state").map_or("", String::as_str);
    if !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            codes::LOGIN_STATE_MISMATCH,
            "The sign-in state does not match the one this browser started (a forged or replayed callback).",
        ));
    }
    if let Some(error) = query.get("error") {
        let detail = query.get("error_description").map_or("", String::as_str);
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            codes::LOGIN_REFUSED,
            format!("The identity provider refused the sign-in: {error} {detail}"),
        ));
    }
    let code = query
        .get("code")
        .ok_or_else(|| Failure::provider("The identity provider sent no authorization code."))?;
    let e = endpoints(svc, req).await?;
    let client = oauth_client(req, &e)?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(&svc.http)
        .await
        .map_err(|err| {
            Failure::provider(format!(
                "The code exchange failed: {}",
                exchange_error(&err)
            ))
        })?;
    let mut user = serde_json::Map::new();
    if let (Some(issuer), Some(jwks_uri)) = (&e.issuer, &e.jwks_uri) {
        let id_token = token
            .extra_fields()
            .id_token
            .as_deref()
            .ok_or_else(|| Failure::provider("The identity provider returned no ID token."))?;
        let want = Expect {
            issuer,
            client_id: &req.config.client_id,
            nonce: &pending.nonce,
            now: unix(req.now),
        };
        let claims = id_token::verify(&svc.jwks, jwks_uri, id_token, &want)
            .await
            .map_err(|m| {
                Failure::new(
                    StatusCode::BAD_GATEWAY,
                    codes::LOGIN_ID_TOKEN_INVALID,
                    format!("The ID token was refused: {m}."),
                )
            })?;
        if let serde_json::Value::Object(c) = claims {
            user = c;
        }
    }
    if let Some(url) = &e.userinfo {
        let info = svc
            .providers
            .get_json(url, Some(token.access_token().secret()))
            .await
            .map_err(|m| Failure::provider(format!("Reading the user info failed: {m}")))?;
        if let serde_json::Value::Object(info) = info {
            // The ID token's subject stays authoritative (OpenID Core §5.3.2).
            let sub = user.get("sub").cloned();
            user.extend(info);
            if let Some(sub) = sub {
                user.insert("sub".into(), sub);
            }
        }
    }
    let user = serde_json::Value::Object(user);
    let sub = field(&user, e.user.id)
        .ok_or_else(|| Failure::provider("The identity provider named no user id."))?;
    let now = unix(req.now);
    let session = Session {
        sid: svc.keys.random_token(18),
        cfg: pending.cfg.clone(),
        sub,
        email: field(&user, e.user.email),
        name: field(&user, e.user.name),
        seen: now,
        exp: now + req.config.max_session_duration.as_secs(),
        tok: req
            .config
            .userinfo_refresh_interval
            .map(|_| token.access_token().secret().clone()),
        info: now,
    };
    tracing::info!(provider = ?req.config.provider, "signed in");
    Ok(session)
}

/// A sign-in finished on the auth host: keeps the session under a new one-time code for the
/// endpoint's host and returns the code.
pub(super) fn hand_over(svc: &LoginService, start: StartRequest, session: Session) -> String {
    let handed = Handed {
        host: start.hostname(),
        bind: start.bind,
        back: start.back,
        session,
    };
    svc.handoffs
        .issue(svc.keys.random_token(9), svc.keys.random_token(24), handed)
}

/// `SESSION_PATH?code=…` on an endpoint: the auth host's one-time code becomes the session
/// cookie on this host, when the code is fresh, unused, issued for this host and this
/// configuration, and this browser started the sign-in.
fn swap_code(svc: &LoginService, req: &LoginRequest) -> Result<Response<Bytes>, Failure> {
    let code = query(&req.uri).remove("code").unwrap_or_default();
    let handed = svc.handoffs.take(&code).ok_or_else(|| {
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

fn exchange_error<RE: std::error::Error + 'static>(
    err: &oauth2::RequestTokenError<RE, BasicErrorResponse>,
) -> String {
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => r.to_string(),
        other => other.to_string(),
    }
}

/// Ends the session (also server-side: the cookie's session id is refused from now on).
fn logout(svc: &LoginService, req: &LoginRequest) -> Response<Bytes> {
    if let Some(s) =
        cookies::get(&req.cookies, SESSION).and_then(|c| svc.keys.open::<Session>(SESSION, c))
    {
        svc.revoke(s.sid, s.exp);
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

fn failure_page(req: &LoginRequest, f: Failure) -> Response<Bytes> {
    let mut res = f.page();
    res.headers_mut()
        .append(SET_COOKIE, cookies::clear(req, PENDING));
    res
}

impl Failure {
    /// The HTML error page (logged; no cookie changes).
    pub(super) fn page(self) -> Response<Bytes> {
        tracing::warn!(code = self.code, message = %self.message, "sign-in failed");
        codes::html_page(
            self.status,
            "Sign-in failed",
            &self.message,
            Some(self.code),
        )
    }
}

pub(super) fn redirect(location: &str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(LOCATION, v);
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
