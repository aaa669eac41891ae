//! One request through the sign-in flow: a valid session passes, the callback finishes a
//! sign-in, logout ends a session, anything else is sent to the provider.

use super::cookies::{self, PENDING, SESSION};
use super::id_token::{self, Expect};
use super::provider::{field, Endpoints};
use super::{LoginService, CALLBACK_PATH, LOGOUT_PATH};
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
const PENDING_TTL: u64 = 600;
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
struct Session {
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
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// Path and query to return to.
    back: String,
    cfg: String,
    created: u64,
}

/// Why a sign-in failed: an HTML page with a `sluice-error-code`, never a redirect.
struct Failure {
    status: StatusCode,
    code: u32,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn provider(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            codes::LOGIN_PROVIDER_FAILED,
            message,
        )
    }
}

fn unix(t: SystemTime) -> u64 {
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
    match session(svc, req).await {
        Ok(Some(outcome)) => return outcome,
        Ok(None) => {}
        Err(f) => return LoginOutcome::Respond(failure_page(req, f)),
    }
    let res = start(svc, req)
        .await
        .unwrap_or_else(|f| failure_page(req, f));
    LoginOutcome::Respond(res)
}

/// The request's session, when it has a valid one for this configuration (`Ok(None)`: sign
/// in). Its user info is read again when older than `userinfo_refresh_interval`.
async fn session(svc: &LoginService, req: &LoginRequest) -> Result<Option<LoginOutcome>, Failure> {
    let Some(mut s) = cookies::get(req, SESSION).and_then(|c| svc.keys.open::<Session>(SESSION, c))
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
                svc.revoke(s.sid.clone(), UNIX_EPOCH + Duration::from_secs(s.exp));
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

/// Sends the browser to the provider, remembering state, nonce, PKCE verifier and the path.
async fn start(svc: &LoginService, req: &LoginRequest) -> Result<Response<Bytes>, Failure> {
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
    // Only a page load comes back to where it started; other methods land on the root.
    let back = match req.method {
        Method::GET | Method::HEAD => req
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string()),
        _ => "/".to_string(),
    };
    let pending = Pending {
        state: state.secret().clone(),
        nonce,
        verifier: verifier.secret().clone(),
        back,
        cfg: binding(req),
        created: unix(req.now),
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

/// Finishes a sign-in: checks state, exchanges the code (PKCE), verifies the ID token, reads
/// the user info, and sets the session.
async fn callback(svc: &LoginService, req: &LoginRequest) -> Result<Response<Bytes>, Failure> {
    let query: HashMap<String, String> = req
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let pending: Pending = cookies::get(req, PENDING)
        .and_then(|c| svc.keys.open(PENDING, c))
        .filter(|p: &Pending| p.cfg == binding(req) && unix(req.now) < p.created + PENDING_TTL)
        .ok_or_else(|| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                codes::LOGIN_NOT_STARTED,
                "This sign-in was not started in this browser, or it took longer than 10 minutes.",
            )
        })?;
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
    let cookie = seal_session(svc, req, &session)
        .ok_or_else(|| Failure::provider("could not seal the session"))?;
    let mut res = redirect(&pending.back);
    res.headers_mut().append(SET_COOKIE, cookie);
    res.headers_mut()
        .append(SET_COOKIE, cookies::clear(req, PENDING));
    tracing::info!(provider = ?req.config.provider, "signed in");
    Ok(res)
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
    if let Some(s) = cookies::get(req, SESSION).and_then(|c| svc.keys.open::<Session>(SESSION, c)) {
        svc.revoke(s.sid, UNIX_EPOCH + Duration::from_secs(s.exp));
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
    tracing::warn!(code = f.code, message = %f.message, "sign-in failed");
    let mut res = codes::html_page(f.status, "Sign-in failed", &f.message, Some(f.code));
    res.headers_mut()
        .append(SET_COOKIE, cookies::clear(req, PENDING));
    res
}

fn redirect(location: &str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(LOCATION, v);
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
