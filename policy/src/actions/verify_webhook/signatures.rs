//! Webhook signature schemes of the providers `verify-webhook` knows, as pure functions.
//!
//! Each scheme recomputes the provider's MAC over what the provider documents as signed and
//! compares it with the presented one in constant time (`Mac::verify_slice`).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// Where a generic HMAC-SHA256 signature is and how it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GenericHmac {
    /// The header holding the signature.
    pub header: String,
    /// Text before the encoded MAC in the header (e.g. `sha256=`).
    pub prefix: String,
    /// Base64 instead of lowercase hex.
    pub base64: bool,
    /// When set, the signed content is `<timestamp>.<body>` with the timestamp (Unix seconds)
    /// from this header, checked against the tolerance.
    pub timestamp_header: Option<String>,
}

/// A provider's signature scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Provider {
    /// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
    Github,
    /// `X-Gitlab-Token: <secret>` (GitLab sends the token itself, no MAC).
    Gitlab,
    /// `Stripe-Signature: t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<body>")>`.
    Stripe,
    /// `X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<ts>:<body>")>`,
    /// `X-Slack-Request-Timestamp: <ts>`.
    Slack,
    /// `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(secret, body)>`.
    Shopify,
    /// `X-Twilio-Signature: <base64 HMAC-SHA1(token, url + sorted form params)>`.
    Twilio,
    /// A configurable HMAC-SHA256 header.
    Generic(GenericHmac),
}

/// The provider ids `verify-webhook` accepts, in the order documented.
pub(crate) const PROVIDERS: &[&str] = &[
    "github",
    "gitlab",
    "stripe",
    "slack",
    "shopify",
    "twilio",
    "hmac-sha256",
];

impl Provider {
    /// The built-in provider named `id` (the generic one is configured separately).
    pub fn named(id: &str) -> Option<Self> {
        Some(match id {
            "github" => Provider::Github,
            "gitlab" => Provider::Gitlab,
            "stripe" => Provider::Stripe,
            "slack" => Provider::Slack,
            "shopify" => Provider::Shopify,
            "twilio" => Provider::Twilio,
            _ => return None,
        })
    }
}

/// What a webhook request presents.
pub(crate) struct Delivery<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The public URL the provider called (`https://host/path?query`), for Twilio.
    pub url: &'a str,
    pub now: SystemTime,
}

/// Why a delivery failed verification.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// The signature (or token, or timestamp) header is absent or unreadable.
    #[error("missing or unreadable `{0}` header")]
    Missing(&'static str),
    /// The signature does not match.
    #[error("the signature does not match")]
    Mismatch,
    /// The signed timestamp is outside the tolerance (a replay, or a skewed clock).
    #[error("the signed timestamp is more than {0}s away from now")]
    Stale(u64),
}

type HmacSha256 = Hmac<Sha256>;
type HmacSha1 = Hmac<Sha1>;

impl Provider {
    /// Checks `d` signed with `secret`, timestamps within `tolerance` of `d.now`.
    pub fn verify(&self, secret: &[u8], d: &Delivery, tolerance: Duration) -> Result<(), Failure> {
        match self {
            Provider::Github => {
                let sig = header(d, "x-hub-signature-256")?;
                let hex_sig = sig.strip_prefix("sha256=").ok_or(Failure::Mismatch)?;
                check_sha256(secret, &[d.body], &from_hex(hex_sig)?)
            }
            Provider::Gitlab => {
                let token = header(d, "x-gitlab-token")?;
                if bool::from(token.as_bytes().ct_eq(secret)) {
                    Ok(())
                } else {
                    Err(Failure::Mismatch)
                }
            }
            Provider::Stripe => stripe(secret, d, tolerance),
            Provider::Slack => {
                let ts = header(d, "x-slack-request-timestamp")?;
                fresh(ts, d.now, tolerance)?;
                let sig = header(d, "x-slack-signature")?;
                let hex_sig = sig.strip_prefix("v0=").ok_or(Failure::Mismatch)?;
                let prefix = format!("v0:{ts}:");
                check_sha256(secret, &[prefix.as_bytes(), d.body], &from_hex(hex_sig)?)
            }
            Provider::Shopify => {
                let sig = header(d, "x-shopify-hmac-sha256")?;
                check_sha256(secret, &[d.body], &from_base64(sig)?)
            }
            Provider::Twilio => twilio(secret, d),
            Provider::Generic(g) => generic(g, secret, d, tolerance),
        }
    }
}

/// The value of a header that must be present, as text.
fn header<'a>(d: &'a Delivery, name: &'static str) -> Result<&'a str, Failure> {
    d.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or(Failure::Missing(name))
}

fn from_hex(s: &str) -> Result<Vec<u8>, Failure> {
    hex::decode(s.trim()).map_err(|_| Failure::Mismatch)
}

fn from_base64(s: &str) -> Result<Vec<u8>, Failure> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| Failure::Mismatch)
}

/// HMAC-SHA256 over the concatenated `parts`, compared in constant time with `presented`.
fn check_sha256(secret: &[u8], parts: &[&[u8]], presented: &[u8]) -> Result<(), Failure> {
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| Failure::Mismatch)?;
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(presented).map_err(|_| Failure::Mismatch)
}

/// A Unix-seconds timestamp within `tolerance` of `now` (either direction).
fn fresh(ts: &str, now: SystemTime, tolerance: Duration) -> Result<(), Failure> {
    let ts: u64 = ts.trim().parse().map_err(|_| Failure::Mismatch)?;
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    if ts.abs_diff(now) > tolerance.as_secs() {
        return Err(Failure::Stale(tolerance.as_secs()));
    }
    Ok(())
}

/// Stripe: any `v1` entry may match (several during a secret roll).
fn stripe(secret: &[u8], d: &Delivery, tolerance: Duration) -> Result<(), Failure> {
    const NAME: &str = "stripe-signature";
    let sig = header(d, NAME)?;
    let mut ts = None;
    let mut v1 = Vec::new();
    for item in sig.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => ts = Some(t),
            Some(("v1", s)) => v1.push(s),
            _ => {}
        }
    }
    let ts = ts.ok_or(Failure::Missing(NAME))?;
    if v1.is_empty() {
        return Err(Failure::Missing(NAME));
    }
    let prefix = format!("{ts}.");
    let matched = v1.iter().any(|s| {
        from_hex(s).is_ok_and(|presented| {
            check_sha256(secret, &[prefix.as_bytes(), d.body], &presented).is_ok()
        })
    });
    if !matched {
        return Err(Failure::Mismatch);
    }
    fresh(ts, d.now, tolerance)
}

/// Twilio: HMAC-SHA1 over the URL, plus the sorted form parameters of a form body; a JSON body
/// is instead bound by the URL's `bodySHA256` parameter, which must match the body's hash.
fn twilio(secret: &[u8], d: &Delivery) -> Result<(), Failure> {
    let presented = from_base64(header(d, "x-twilio-signature")?)?;
    let mut mac = HmacSha1::new_from_slice(secret).map_err(|_| Failure::Mismatch)?;
    mac.update(d.url.as_bytes());
    let is_form = d
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let mut params: Vec<(String, String)> =
            form_urlencoded::parse(d.body).into_owned().collect();
        params.sort();
        for (k, v) in params {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
    } else {
        let query = d.url.split_once('?').map_or("", |(_, q)| q);
        let declared = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "bodySHA256")
            .map(|(_, v)| v.into_owned());
        if let Some(declared) = declared {
            let actual = hex::encode(Sha256::digest(d.body));
            if !bool::from(
                actual
                    .as_bytes()
                    .ct_eq(declared.to_ascii_lowercase().as_bytes()),
            ) {
                return Err(Failure::Mismatch);
            }
        } else if !d.body.is_empty() {
            // A body nobody signed: Twilio always binds a non-form body through bodySHA256.
            return Err(Failure::Mismatch);
        }
    }
    mac.verify_slice(&presented).map_err(|_| Failure::Mismatch)
}

fn generic(
    g: &GenericHmac,
    secret: &[u8],
    d: &Delivery,
    tolerance: Duration,
) -> Result<(), Failure> {
    let sig = d
        .headers
        .get(g.header.as_str())
        .and_then(|v| v.to_str().ok())
        .ok_or(Failure::Missing("the configured signature"))?;
    let encoded = sig
        .trim()
        .strip_prefix(g.prefix.as_str())
        .ok_or(Failure::Mismatch)?;
    let presented = if g.base64 {
        from_base64(encoded)?
    } else {
        from_hex(encoded)?
    };
    match &g.timestamp_header {
        None => check_sha256(secret, &[d.body], &presented),
        Some(name) => {
            let ts = d
                .headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .ok_or(Failure::Missing("the configured timestamp"))?
                .trim();
            fresh(ts, d.now, tolerance)?;
            let prefix = format!("{ts}.");
            check_sha256(secret, &[prefix.as_bytes(), d.body], &presented)
        }
    }
}
