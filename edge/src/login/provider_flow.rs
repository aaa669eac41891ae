//! The round trip to the identity provider, shared by endpoints and the auth host: the
//! redirect to the provider (state, nonce, PKCE, the pending cookie) and, at the callback, the
//! code exchange, the ID token and the user info that make a new session.

use super::clock::unix;
use super::cookies::{self, PENDING};
use super::failure::{pending_failure, redirect, Failure};
use super::id_token::{self, Expect};
use super::paths::CALLBACK_PATH;
use super::provider::{field, Endpoints};
use super::sealed::{binding, Pending, Session, StartRequest, PENDING_TTL};
use super::service::LoginService;
use bytes::Bytes;
use http::header::SET_COOKIE;
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
use sluice_policy::identity::LoginRequest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;
use subtle::ConstantTimeEq as _;

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

/// The oauth2 client for this request's configuration and provider endpoints.
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

/// The provider's endpoints (preset or discovered, cached).
pub(super) async fn endpoints(
    svc: &LoginService,
    req: &LoginRequest,
) -> Result<Arc<Endpoints>, Failure> {
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
    svc.http
        .check_str(&e.token)
        .map_err(|refused| Failure::provider(refused.to_string()))?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
        .request_async(svc.http.client())
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

/// The provider's error for a failed code exchange, or the transport's.
fn exchange_error<RE: std::error::Error + 'static>(
    err: &oauth2::RequestTokenError<RE, BasicErrorResponse>,
) -> String {
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => r.to_string(),
        other => other.to_string(),
    }
}
