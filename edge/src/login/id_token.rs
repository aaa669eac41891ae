//! Verifying an OpenID Connect ID token: signature by a key of the provider's JWKS (through the
//! edge's JWKS cache, the one jwt-validation uses), issuer, audience, expiry and nonce.

use super::jwks::JwksCache;
use sluice_policy::jws::{self, Algorithm, JwsError};
use sluice_policy::KeySource as _;
use subtle::ConstantTimeEq as _;

/// Algorithms accepted on ID tokens: the asymmetric ones (keys from the JWKS).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What the token must say.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: u64,
}

/// The verified claims of `token`, or why it was refused.
pub async fn verify(
    jwks: &JwksCache,
    jwks_uri: &str,
    token: &str,
    want: &Expect<'_>,
) -> Result<serde_json::Value, String> {
    let mut refreshed = false;
    let claims = loop {
        let set = jwks
            .key_set(jwks_uri, refreshed)
            .await
            .map_err(|e| e.to_string())?;
        match jws::verify(token, &set.keys, ALGORITHMS) {
            Ok(claims) => break claims,
            // A kid the cached set lacks: the provider may have rotated its keys.
            Err(JwsError::UnknownKey) if !refreshed => refreshed = true,
            Err(e) => return Err(e.to_string()),
        }
    };
    jws::check_time(&claims, want.now)?;
    let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    if iss != want.issuer {
        return Err(format!("issued by `{iss}`, not `{}`", want.issuer));
    }
    if !jws::audience_contains(&claims, &[want.client_id.to_string()]) {
        return Err("not issued for this client".into());
    }
    let nonce = claims.get("nonce").and_then(|v| v.as_str()).unwrap_or("");
    if !bool::from(nonce.as_bytes().ct_eq(want.nonce.as_bytes())) {
        return Err("the nonce does not match this sign-in".into());
    }
    Ok(claims)
}
