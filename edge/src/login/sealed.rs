//! The states a sign-in passes through, as sealed into cookies and start URLs: the session,
//! a sign-in in progress, an endpoint's request to the auth host, and a finished sign-in
//! waiting for its endpoint under a one-time code.

use crate::hostname::host_without_port;
use sluice_policy::identity::{LoginConfig, LoginRequest, Provider};

/// The sealing name (authenticated with the value) of a sign-in request in a start URL.
pub(super) const START: &str = "sluice_start";

/// How long a started sign-in may take (login and consent at the provider included).
pub(super) const PENDING_TTL: u64 = 600;

/// A signed-in browser's session, sealed into the session cookie.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Session {
    /// Session id (random).
    pub(super) sid: String,
    /// Which configuration signed it in ([`binding`]).
    pub(super) cfg: String,
    pub(super) sub: String,
    pub(super) email: Option<String>,
    pub(super) name: Option<String>,
    /// Unix seconds: last seen (idle timeout) and hard end (max duration).
    pub(super) seen: u64,
    pub(super) exp: u64,
    /// The access token, kept only to read the user info again (`userinfo_refresh_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tok: Option<String>,
    /// Unix seconds: when the user info was last read.
    #[serde(default)]
    pub(super) info: u64,
}

/// A sign-in in progress, sealed into the pending cookie.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Pending {
    pub(super) state: String,
    pub(super) nonce: String,
    pub(super) verifier: String,
    /// Path and query to return to.
    pub(super) back: String,
    pub(super) cfg: String,
    pub(super) created: u64,
    /// On the auth host: the endpoint's sign-in request this one serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) handoff: Option<StartRequest>,
}

/// A sign-in the auth host finished, waiting under a one-time code for its endpoint (sealed
/// into a cluster's store, where the other edges can swap it).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Handed {
    /// The endpoint's host (lowercase, no port): the only one that may swap the code.
    pub(super) host: String,
    /// The endpoint's handoff cookie value in the browser that started the sign-in.
    pub(super) bind: String,
    /// Path and query to return to.
    pub(super) back: String,
    pub(super) session: Session,
}

/// An endpoint's sign-in request, sealed into the start URL (so it cannot be read or changed
/// on the way) and then kept in the auth host's pending cookie.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct StartRequest {
    /// The endpoint's `Host` as the browser used it (port included) and its scheme.
    pub(super) host: String,
    pub(super) scheme: String,
    /// Path and query to return to.
    pub(super) back: String,
    /// The browser's handoff cookie value on the endpoint.
    pub(super) bind: String,
    /// The endpoint's login action, rendered (the client secret stays sealed).
    pub(super) config: LoginConfig,
    pub(super) created: u64,
}

impl StartRequest {
    /// The endpoint's hostname (lowercase, no port).
    pub(super) fn hostname(&self) -> String {
        host_without_port(&self.host).unwrap_or_default()
    }

    /// `scheme://host[:port]` of the endpoint, rebuilt from the hostname and a numeric port
    /// only (whatever else a `Host` header held never reaches a `Location`).
    pub(super) fn origin(&self) -> Option<String> {
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

/// Ties cookies to one action configuration: a session from another provider or client id
/// does not count here.
pub(super) fn binding(req: &LoginRequest) -> String {
    use sha2::Digest as _;
    let provider = match &req.config.provider {
        Provider::Oidc { issuer_url } => format!("oidc {issuer_url}"),
        Provider::OAuth { name } => format!("oauth {name}"),
    };
    let digest = sha2::Sha256::digest(format!("{provider}\n{}", req.config.client_id));
    hex::encode(&digest[..12])
}
