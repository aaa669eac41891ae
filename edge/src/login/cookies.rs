//! Reading cookies from a request and writing `Set-Cookie` values with the login flow's
//! attributes (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` on https endpoints).

use http::HeaderValue;
use sluice_policy::identity::LoginRequest;

/// The session cookie (identity and expiry, sealed).
pub const SESSION: &str = "sluice_session";
/// The sign-in in progress (state, nonce, PKCE verifier, where to go back; sealed).
pub const PENDING: &str = "sluice_login";
/// On an endpoint whose sign-in runs on the auth host: a random value naming this browser, so
/// only the browser that started a sign-in can swap its one-time code.
pub const HANDOFF: &str = "sluice_handoff";

/// The value of cookie `name` in the `Cookie` header values (the first one).
pub fn get<'a>(cookies: &'a [HeaderValue], name: &str) -> Option<&'a str> {
    cookies
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for `name=value` living `max_age` seconds (0 deletes it), on the request's
/// host with its action's cookie domain.
pub fn set(req: &LoginRequest, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let domain = req.config.auth_cookie_domain.as_deref();
    set_with(req.scheme == "https", domain, name, value, max_age)
}

/// `Set-Cookie` for `name=value`: `Secure` when `secure`, `Domain` when given.
pub fn set_with(
    secure: bool,
    domain: Option<&str>,
    name: &str,
    value: &str,
    max_age: u64,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(domain) = domain {
        c.push_str("; Domain=");
        c.push_str(domain);
    }
    // Sealed values and random tokens are base64url and domains are checked at compile time,
    // so this holds.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("sluice_invalid=1"))
}

/// `Set-Cookie` deleting `name`.
pub fn clear(req: &LoginRequest, name: &str) -> HeaderValue {
    set(req, name, "", 0)
}
