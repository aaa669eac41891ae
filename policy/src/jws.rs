//! Verifying a compact JWS against a JWKS, and the JWT claim checks around it: one home for
//! jwt-validation and the edge's OpenID Connect ID-token check.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};

pub use jsonwebtoken::Algorithm;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Why a token's signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a compact JWS, or an algorithm jsonwebtoken does not parse (`none` among them).
    #[error("malformed token or unsupported algorithm ({0})")]
    Malformed(String),
    /// The header's algorithm is not in the allowed list.
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Algorithm),
    /// No key in the set has the token's `kid` (the set may have rotated: refetch it).
    #[error("no signing key matches the token")]
    UnknownKey,
    /// A key matched but the signature does not verify with it.
    #[error("the signature does not verify ({0})")]
    BadSignature(String),
}

/// The claims of `token` once its signature verifies with one of `keys` (matched by `kid`;
/// every key when the token names none) under one of `algorithms`. Time, issuer and audience
/// are the caller's checks ([`check_time`], [`audience_contains`]).
pub fn verify(
    token: &str,
    keys: &[Jwk],
    algorithms: &[Algorithm],
) -> Result<serde_json::Value, JwsError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| JwsError::Malformed(e.to_string()))?;
    if !algorithms.contains(&header.alg) {
        return Err(JwsError::AlgorithmNotAllowed(header.alg));
    }
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(JwsError::UnknownKey);
    }
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    // Time, issuer and audience are checked by the caller, against its own clock and lists.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut last_err = String::from("no usable key");
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => last_err = e.to_string(),
        }
    }
    Err(JwsError::BadSignature(last_err))
}

/// Checks `exp` and `nbf` (both optional, as in RFC 7519) against `now` (Unix seconds) with
/// [`LEEWAY_SECS`].
pub fn check_time(claims: &serde_json::Value, now: u64) -> Result<(), &'static str> {
    if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_u64) {
        if now > exp + LEEWAY_SECS {
            return Err("the token has expired");
        }
    }
    if let Some(nbf) = claims.get("nbf").and_then(serde_json::Value::as_u64) {
        if now + LEEWAY_SECS < nbf {
            return Err("the token is not valid yet");
        }
    }
    Ok(())
}

/// Whether the `aud` claim (a string or a list) contains one of `allowed`.
pub fn audience_contains(claims: &serde_json::Value, allowed: &[String]) -> bool {
    let aud: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    aud.iter().any(|a| allowed.iter().any(|x| x == a))
}
