//! Reading cookies from a request and writing `Set-Cookie` values with the login flow's
//! attributes (`HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` on https endpoints).

use http::HeaderValue;
use sluice_policy::identity::LoginRequest;

/// The session cookie (identity and expiry, sealed).
pub const SESSION: &str = "sluice_session";
/// The sign-in in progress (state, nonce, PKCE verifier, where to go back; sealed).
pub const PENDING: &str = "sluice_login";

/// The value of cookie `name` in the request (the first one).
pub fn get<'a>(req: &'a LoginRequest, name: &str) -> Option<&'a str> {
    req.cookies
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for `name=value` living `max_age` seconds (0 deletes it).
pub fn set(req: &LoginRequest, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if req.scheme == "https" {
        c.push_str("; Secure");
    }
    if let Some(domain) = &req.config.auth_cookie_domain {
        c.push_str("; Domain=");
        c.push_str(domain);
    }
    // Sealed values are base64url and domains are checked at compile time, so this holds.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("sluice_invalid=1"))
}

/// `Set-Cookie` deleting `name`.
pub fn clear(req: &LoginRequest, name: &str) -> HeaderValue {
    set(req, name, "", 0)
}
