//! Error codes and the error responses the policy engine produces.
//!
//! Every response the engine itself generates because a check failed or the policy broke carries
//! [`HEADER`]` : ERR_SLUICE_<n>`, reusing ngrok's number where ngrok documents one.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Response, StatusCode};

/// The header naming the error; upstream responses carrying it should be stripped by the edge.
pub const HEADER: &str = "sluice-error-code";

/// `restrict-ips` refused the client address (ngrok's 3205), status 403.
pub const IP_RESTRICTED: u32 = 3205;
/// `deny` refused the request (no ngrok number; ours), with its configured status.
pub const DENIED: u32 = 3220;
/// `basic-auth` wants credentials (no ngrok number; ours), status 401.
pub const BASIC_AUTH_REQUIRED: u32 = 3221;
/// `rate-limit` found the bucket full (no ngrok number; ours), status 429.
pub const RATE_LIMITED: u32 = 3222;
/// `circuit-breaker` is tripped: too many recent server errors (ngrok's 3202), status 503.
pub const CIRCUIT_BREAKER_TRIPPED: u32 = 3202;
/// `verify-webhook` found no valid signature (ngrok's 3204), status 403.
pub const WEBHOOK_VERIFICATION_FAILED: u32 = 3204;
/// The request body is larger than the edge buffers for actions that read it (ours), status 413.
pub const REQUEST_BODY_TOO_LARGE: u32 = 3223;
/// `jwt-validation`: a token is missing, malformed, badly signed or expired (ngrok's 3401),
/// status 401.
pub const JWT_INVALID: u32 = 3401;
/// `jwt-validation`: a valid token from an issuer or for an audience not allowed (ngrok's
/// 3403), status 403.
pub const JWT_NOT_ALLOWED: u32 = 3403;
/// oauth / openid-connect: the identity provider is unreachable or answered badly (discovery,
/// code exchange, user info) (ours), status 502, HTML page.
pub const LOGIN_PROVIDER_FAILED: u32 = 3240;
/// oauth / openid-connect: a callback without a sign-in started in this browser (or older than
/// 10 minutes) (ours), status 400, HTML page.
pub const LOGIN_NOT_STARTED: u32 = 3241;
/// oauth / openid-connect: the callback's `state` is not the one this browser started with
/// (ours), status 400, HTML page.
pub const LOGIN_STATE_MISMATCH: u32 = 3242;
/// oauth / openid-connect: the provider answered with an error, e.g. consent denied (ours),
/// status 403, HTML page.
pub const LOGIN_REFUSED: u32 = 3243;
/// openid-connect: the ID token does not verify (signature, issuer, audience, expiry, nonce)
/// (ours), status 502, HTML page.
pub const LOGIN_ID_TOKEN_INVALID: u32 = 3244;
/// oauth / openid-connect evaluated without the edge (dry run) (ours), status 500.
pub const LOGIN_UNAVAILABLE: u32 = 3245;
/// Edge-wide auth host: the sign-in request is not one this edge sealed (forged, changed,
/// truncated) or is older than 10 minutes (ours), status 400, HTML page.
pub const LOGIN_START_INVALID: u32 = 3246;
/// Edge-wide auth host: the sign-in would return to a host this edge does not serve (ours),
/// status 400, HTML page.
pub const LOGIN_RETURN_HOST_UNKNOWN: u32 = 3247;
/// Edge-wide auth host: the one-time code handing the session to the endpoint is unknown,
/// already used or expired (ours), status 400, HTML page.
pub const LOGIN_CODE_INVALID: u32 = 3248;
/// Edge-wide auth host: the one-time code was issued for another endpoint host or sign-in
/// configuration (ours), status 400, HTML page. The code is spent.
pub const LOGIN_CODE_WRONG_HOST: u32 = 3249;
/// `forward-internal`: the request already passed the most endpoints one request may
/// (a forwarding loop) (ngrok's 3501), status 508.
pub const FORWARD_LOOP: u32 = 3501;
/// `forward-internal`: no internal endpoint with the URL is online in the caller's namespace
/// (ours), status 503.
pub const FORWARD_TARGET_NOT_FOUND: u32 = 3502;
/// `forward-internal`: the internal endpoint exists but none of its agents can take a request
/// (ours), status 503.
pub const FORWARD_TARGET_OFFLINE: u32 = 3503;
/// `forward-internal`: the target speaks another protocol (tcp:// from HTTP) or is online only
/// under the other scheme (ours), status 502.
pub const FORWARD_SCHEME_MISMATCH: u32 = 3504;
/// `forward-internal`: the interpolated URL is not an internal endpoint URL (ours), status 500.
pub const FORWARD_URL_INVALID: u32 = 3505;
/// A cloud endpoint's policy ran to its end without answering or forwarding (ngrok's 6029
/// names the same mistake at creation), status 502.
pub const CLOUD_ENDPOINT_NO_RESPONSE: u32 = 3506;
/// `http-request`: the response body is larger than 256 KiB (ngrok's 3601), status 502.
pub const HTTP_REQUEST_TOO_LARGE: u32 = 3601;
/// `http-request`: no answer within `timeout` (ngrok's 3602), status 504.
pub const HTTP_REQUEST_TIMEOUT: u32 = 3602;
/// `http-request`: too many redirects, or the call would pass through too many
/// http-request actions (ngrok's 3603), status 502.
pub const HTTP_REQUEST_LOOP: u32 = 3603;
/// `http-request`: the target is an address the edge's `outbound` rules keep policies away
/// from (loopback, private ranges; ours), status 502.
pub const HTTP_REQUEST_REFUSED: u32 = 3604;
/// `http-request`: the call failed otherwise (DNS, connection, TLS, broken response; ours),
/// status 502.
pub const HTTP_REQUEST_FAILED: u32 = 3605;
/// A `${}` interpolation failed at runtime (ngrok's 3900), status 500.
pub const INTERPOLATION_FAILED: u32 = 3900;
/// An interpolated regex did not compile (ngrok's 3901), status 500.
pub const BAD_INTERPOLATED_REGEX: u32 = 3901;

/// `ERR_SLUICE_<code>`.
pub fn code_text(code: u32) -> String {
    format!("ERR_SLUICE_{code}")
}

/// A response generated by the engine for error `code`: the header, and a short text body
/// (empty when `message` is empty).
pub fn error_response(status: StatusCode, code: u32, message: &str) -> Response<Bytes> {
    let text = code_text(code);
    let body = if message.is_empty() {
        Bytes::new()
    } else {
        Bytes::from(format!("{message}\n\n{text}\n"))
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&text) {
        headers.insert(HEADER, v);
    }
    if !message.is_empty() {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    res
}

/// A small HTML page for people (sign-in failures, logout): `title`, `message`, and when
/// `code` is given the `sluice-error-code` header and the code shown on the page. Never
/// cached.
pub fn html_page(
    status: StatusCode,
    title: &str,
    message: &str,
    code: Option<u32>,
) -> Response<Bytes> {
    let code_line = code.map_or(String::new(), |c| {
        format!("<p><code>{}</code></p>\n", code_text(c))
    });
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
         <body><h1>{t}</h1>\n<p>{m}</p>\n{code_line}<p><a href=\"/\">Back to the site</a></p>\n</body></html>\n",
        t = escape_html(title),
        m = escape_html(message),
    );
    let mut res = Response::new(Bytes::from(body));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = code {
        if let Ok(v) = HeaderValue::from_str(&code_text(c)) {
            headers.insert(HEADER, v);
        }
    }
    res
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
