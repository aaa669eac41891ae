//! Where a login action's provider lives: OpenID discovery (cached per issuer) or one of the
//! `oauth` presets, and how its user-info answer names the user's id, email and name.

use super::fetch::FetchError;
use crate::outbound::GuardedClient;
use http::StatusCode;
use parking_lot::Mutex;
use sluice_policy::identity::Provider;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a discovery document is used before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Which JSON fields of the user-info answer hold the user's id, email and name (the first
/// present wins).
#[derive(Clone, Debug)]
pub struct UserFields {
    pub id: &'static [&'static str],
    pub email: &'static [&'static str],
    pub name: &'static [&'static str],
}

const OIDC_FIELDS: UserFields = UserFields {
    id: &["sub"],
    email: &["email"],
    name: &["name", "preferred_username"],
};

/// A provider's endpoints.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// The OpenID issuer (ID tokens are verified against it); `None` for plain OAuth.
    pub issuer: Option<String>,
    pub authorization: String,
    pub token: String,
    pub userinfo: Option<String>,
    pub jwks_uri: Option<String>,
    /// Scopes asked for when the action names none.
    pub default_scopes: Vec<String>,
    pub user: UserFields,
    /// Whether the client authenticates in the token request body instead of HTTP basic.
    pub secret_in_body: bool,
}

/// One `oauth` preset: endpoints, default scopes, user fields.
struct Preset {
    name: &'static str,
    authorization: &'static str,
    token: &'static str,
    userinfo: &'static str,
    scopes: &'static [&'static str],
    user: UserFields,
}

/// The `oauth` presets.
const PRESETS: &[Preset] = &[
    Preset {
        name: "google",
        authorization: "https://accounts.google.com/o/oauth2/v2/auth",
        token: "https://oauth2.googleapis.com/token",
        userinfo: "https://openidconnect.googleapis.com/v1/userinfo",
        scopes: &["openid", "email", "profile"],
        user: OIDC_FIELDS,
    },
    Preset {
        name: "github",
        authorization: "https://github.com/login/oauth/authorize",
        token: "https://github.com/login/oauth/access_token",
        userinfo: "https://api.github.com/user",
        scopes: &["read:user", "user:email"],
        user: UserFields {
            id: &["id"],
            email: &["email"],
            name: &["name", "login"],
        },
    },
    Preset {
        name: "gitlab",
        authorization: "https://gitlab.com/oauth/authorize",
        token: "https://gitlab.com/oauth/token",
        userinfo: "https://gitlab.com/api/v4/user",
        scopes: &["read_user"],
        user: UserFields {
            id: &["id"],
            email: &["email"],
            name: &["name", "username"],
        },
    },
    Preset {
        name: "microsoft",
        authorization: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        userinfo: "https://graph.microsoft.com/oidc/userinfo",
        scopes: &["openid", "email", "profile"],
        user: OIDC_FIELDS,
    },
];

/// The preset named `name`.
fn preset(name: &str) -> Option<Endpoints> {
    let p = PRESETS.iter().find(|p| p.name == name)?;
    Some(Endpoints {
        issuer: None,
        authorization: p.authorization.to_string(),
        token: p.token.to_string(),
        userinfo: Some(p.userinfo.to_string()),
        jwks_uri: None,
        default_scopes: p.scopes.iter().map(|s| s.to_string()).collect(),
        user: p.user.clone(),
        // GitHub documents client credentials in the body; the others accept both.
        secret_in_body: name == "github",
    })
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
}

/// Why a provider's JSON document (discovery, user info) could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {kind}")]
pub struct DocumentError {
    /// The document's URL.
    pub url: String,
    /// What went wrong (part of the message, so not also its `source`).
    pub kind: DocumentErrorKind,
}

/// What went wrong with a document; [`DocumentError`] adds its URL.
#[derive(Debug, thiserror::Error)]
pub enum DocumentErrorKind {
    /// It could not be fetched.
    #[error(transparent)]
    Fetch(FetchError),
    /// The body is not JSON.
    #[error("not JSON ({0})")]
    NotJson(serde_json::Error),
    /// The JSON is not an OpenID discovery document.
    #[error("not an OpenID discovery document ({0})")]
    NotDiscovery(serde_json::Error),
}

impl DocumentError {
    fn new(url: &str, kind: DocumentErrorKind) -> Self {
        Self {
            url: url.to_string(),
            kind,
        }
    }
}

/// Why a provider's endpoints are unknown.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// The `oauth` action names no preset this edge knows.
    #[error("no oauth preset `{0}`")]
    UnknownPreset(String),
    /// The discovery document could not be read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The discovery document names another issuer than the one it was fetched for.
    #[error("{url} names issuer `{named}`, not `{issuer}`")]
    WrongIssuer {
        /// The discovery document's URL.
        url: String,
        /// The issuer the document names.
        named: String,
        /// The issuer it was fetched for.
        issuer: String,
    },
}

/// Provider endpoints, discovery documents cached per issuer.
pub struct Providers {
    http: GuardedClient,
    discovered: Mutex<HashMap<String, (Arc<Endpoints>, Instant)>>,
}

impl Providers {
    pub fn new(http: GuardedClient) -> Self {
        Self {
            http,
            discovered: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoints of `provider`; an error says why discovery failed.
    pub async fn endpoints(&self, provider: &Provider) -> Result<Arc<Endpoints>, EndpointsError> {
        match provider {
            Provider::OAuth { name } => preset(name)
                .map(Arc::new)
                .ok_or_else(|| EndpointsError::UnknownPreset(name.clone())),
            Provider::Oidc { issuer_url } => self.discover(issuer_url).await,
        }
    }

    async fn discover(&self, issuer: &str) -> Result<Arc<Endpoints>, EndpointsError> {
        if let Some((e, at)) = self.discovered.lock().get(issuer) {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(e.clone());
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let body = self.get_json(&url, None).await?;
        let d: Discovery = serde_json::from_value(body)
            .map_err(|e| DocumentError::new(&url, DocumentErrorKind::NotDiscovery(e)))?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
        if d.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(EndpointsError::WrongIssuer {
                url,
                named: d.issuer,
                issuer: issuer.to_string(),
            });
        }
        let endpoints = Arc::new(Endpoints {
            issuer: Some(d.issuer),
            authorization: d.authorization_endpoint,
            token: d.token_endpoint,
            userinfo: d.userinfo_endpoint,
            jwks_uri: Some(d.jwks_uri),
            default_scopes: vec!["openid".into(), "email".into(), "profile".into()],
            user: OIDC_FIELDS,
            secret_in_body: false,
        });
        self.discovered
            .lock()
            .insert(issuer.to_string(), (endpoints.clone(), Instant::now()));
        Ok(endpoints)
    }

    /// GETs a JSON document (with a bearer token when given).
    pub async fn get_json(
        &self,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<serde_json::Value, DocumentError> {
        let body = super::fetch::get_document(&self.http, url, bearer)
            .await
            .map_err(|e| DocumentError::new(url, DocumentErrorKind::Fetch(e)))?;
        serde_json::from_slice(&body)
            .map_err(|e| DocumentError::new(url, DocumentErrorKind::NotJson(e)))
    }

    /// Reads the user info again with a session's access token: `None` when the provider no
    /// longer accepts the token (401 or 403: revoked, expired, or the user is gone).
    pub async fn user_info(
        &self,
        url: &str,
        access_token: &str,
    ) -> Result<Option<serde_json::Value>, DocumentError> {
        match super::fetch::get_document(&self.http, url, Some(access_token)).await {
            Ok(body) => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| DocumentError::new(url, DocumentErrorKind::NotJson(e))),
            Err(FetchError::Status(s))
                if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN =>
            {
                Ok(None)
            }
            Err(e) => Err(DocumentError::new(url, DocumentErrorKind::Fetch(e))),
        }
    }
}

/// The first of `fields` present in `doc` as text (numbers too: GitHub's ids are numbers).
pub fn field(doc: &serde_json::Value, fields: &[&str]) -> Option<String> {
    fields.iter().find_map(|f| match doc.get(f)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        let url = "https://idp/.well-known/openid-configuration";
        let fetch = DocumentError::new(
            url,
            DocumentErrorKind::Fetch(FetchError::Status(StatusCode::NOT_FOUND)),
        );
        assert_eq!(fetch.to_string(), format!("{url}: status 404 Not Found"));
        let json = serde_json::from_slice::<serde_json::Value>(b"<html>").expect_err("not JSON");
        let want = format!("{url}: not JSON ({json})");
        let err = DocumentError::new(url, DocumentErrorKind::NotJson(json));
        assert_eq!(err.to_string(), want);
        let doc = serde_json::from_value::<Discovery>(serde_json::json!({}))
            .err()
            .expect("incomplete");
        let want = format!("{url}: not an OpenID discovery document ({doc})");
        let err = EndpointsError::from(DocumentError::new(
            url,
            DocumentErrorKind::NotDiscovery(doc),
        ));
        assert_eq!(err.to_string(), want);
        let err = EndpointsError::WrongIssuer {
            url: url.into(),
            named: "https://other".into(),
            issuer: "https://idp".into(),
        };
        assert_eq!(
            err.to_string(),
            format!("{url} names issuer `https://other`, not `https://idp`")
        );
        assert_eq!(
            EndpointsError::UnknownPreset("x".into()).to_string(),
            "no oauth preset `x`"
        );
    }
}
