//! [`AuthHost`]: where the edge-wide auth host is reached, and [`AuthHostRequest`], a request
//! for it as the proxy passes it on (see docs/policy.md, "The edge-wide auth host").

use crate::hostname::Hostname;
use http::{HeaderValue, Method, Uri};
use sluice_policy::identity::{LoginConfig, LoginRequest};
use std::time::SystemTime;

/// Where the edge-wide auth host is reached.
#[derive(Clone, Debug)]
pub struct AuthHost {
    host: Hostname,
    /// `host[:port]`, the port left out when it is the scheme's default.
    authority: String,
    pub(super) https: bool,
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

    pub(super) fn scheme(&self) -> &'static str {
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
    pub(super) fn request(&self, mut config: LoginConfig, req: &AuthHostRequest) -> LoginRequest {
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

/// A request on the auth host, as the proxy passes it on.
#[derive(Debug)]
pub struct AuthHostRequest {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    /// The `Cookie` header values.
    pub cookies: Vec<HeaderValue>,
    /// Now.
    pub now: SystemTime,
}
