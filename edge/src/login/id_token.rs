//! Verifying an OpenID Connect ID token: signature by a key of the provider's JWKS (through the
//! edge's JWKS cache, the one jwt-validation uses), issuer, audience, expiry and nonce.

use super::jwks::JwksCache;
use sluice_policy::jws::{self, Algorithm, JwsError};
use sluice_policy::{KeyError, KeySource as _};
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

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// The provider's signing keys could not be had.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The signature does not verify with them.
    #[error(transparent)]
    Signature(#[from] JwsError),
    /// Expired or not valid yet ([`jws::check_time`]'s reason).
    #[error("{0}")]
    Time(&'static str),
    /// Issued by another issuer.
    #[error("issued by `{issued_by}`, not `{expected}`")]
    Issuer {
        /// The token's `iss` (empty when absent).
        issued_by: String,
        /// The provider's issuer.
        expected: String,
    },
    /// The audience does not name this client.
    #[error("not issued for this client")]
    Audience,
    /// The nonce is not this sign-in's.
    #[error("the nonce does not match this sign-in")]
    Nonce,
}

/// The verified claims of `token`, or why it was refused.
pub async fn verify(
    jwks: &JwksCache,
    jwks_uri: &str,
    token: &str,
    want: &Expect<'_>,
) -> Result<serde_json::Value, IdTokenError> {
    let mut refreshed = false;
    let claims = loop {
        let set = jwks.key_set(jwks_uri, refreshed).await?;
        match jws::verify(token, &set.keys, ALGORITHMS) {
            Ok(claims) => break claims,
            // A kid the cached set lacks: the provider may have rotated its keys.
            Err(JwsError::UnknownKey) if !refreshed => refreshed = true,
            Err(e) => return Err(e.into()),
        }
    };
    jws::check_time(&claims, want.now).map_err(IdTokenError::Time)?;
    let iss = claims.get("iss").and_then(|v| v.as_str()).unwrap_or("");
    if iss != want.issuer {
        return Err(IdTokenError::Issuer {
            issued_by: iss.to_string(),
            expected: want.issuer.to_string(),
        });
    }
    if !jws::audience_contains(&claims, &[want.client_id.to_string()]) {
        return Err(IdTokenError::Audience);
    }
    let nonce = claims.get("nonce").and_then(|v| v.as_str()).unwrap_or("");
    if !bool::from(nonce.as_bytes().ct_eq(want.nonce.as_bytes())) {
        return Err(IdTokenError::Nonce);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        let keys = KeyError {
            url: "https://idp/jwks".into(),
            reason: "status 500 Internal Server Error".into(),
        };
        for (err, want) in [
            (
                IdTokenError::from(keys),
                "signing keys from https://idp/jwks unavailable: status 500 Internal Server Error",
            ),
            (
                IdTokenError::from(JwsError::UnknownKey),
                "no signing key matches the token",
            ),
            (
                IdTokenError::Time("the token has expired"),
                "the token has expired",
            ),
            (
                IdTokenError::Issuer {
                    issued_by: "https://evil".into(),
                    expected: "https://idp".into(),
                },
                "issued by `https://evil`, not `https://idp`",
            ),
            (IdTokenError::Audience, "not issued for this client"),
            (IdTokenError::Nonce, "the nonce does not match this sign-in"),
        ] {
            assert_eq!(err.to_string(), want);
        }
    }
}
