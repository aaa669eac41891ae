//! One ACME order for one name (RFC 8555 §7.4): HTTP-01 challenge published for the edge to
//! serve, order finalized with a CSR for a fresh key, chain downloaded.

use super::challenges::Http01Challenges;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;

/// Why an order failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The CA or the connection to it failed.
    #[error("{step}: {source}")]
    Acme {
        /// What was being done.
        step: &'static str,
        /// instant-acme's error (ACME problem documents included).
        source: instant_acme::Error,
    },
    /// The CA offered no HTTP-01 challenge for the name.
    #[error("the CA offered no http-01 challenge for {0}")]
    NoHttp01(String),
    /// An authorization or the order ended in a state other than the one needed.
    #[error("{what} is {status}")]
    State {
        /// Authorization or order.
        what: &'static str,
        /// Its status.
        status: String,
    },
    /// The certificate request could not be built.
    #[error("building the CSR: {0}")]
    Csr(#[from] rcgen::Error),
}

impl OrderError {
    /// Whether the CA said the account does not exist (a reset test CA, a deactivated
    /// account): the stored credentials are useless then.
    pub fn account_missing(&self) -> bool {
        matches!(self, OrderError::Acme { source: instant_acme::Error::Api(p), .. }
            if p.r#type.as_deref().is_some_and(|t| t.ends_with(":accountDoesNotExist")))
    }
}

fn acme(step: &'static str) -> impl FnOnce(instant_acme::Error) -> OrderError {
    move |source| OrderError::Acme { step, source }
}

/// Removes published tokens when the order is done, failed or cancelled.
struct Published<'a> {
    challenges: &'a Http01Challenges,
    tokens: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.challenges.remove(t);
        }
    }
}

/// A certificate chain and its private key, PEM.
pub struct Issued {
    /// Leaf first.
    pub chain_pem: String,
    /// PKCS#8 key.
    pub key_pem: String,
}

/// Obtains a certificate for `name` from `account`'s CA, answering HTTP-01 through
/// `challenges` (served by the edge's plain-HTTP listener).
pub async fn obtain(
    account: &Account,
    name: &str,
    challenges: &Http01Challenges,
) -> Result<Issued, OrderError> {
    let ids = [Identifier::Dns(name.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(acme("creating the order"))?;
    let mut published = Published {
        challenges,
        tokens: Vec::new(),
    };
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz.map_err(acme("fetching the authorization"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(OrderError::State {
                    what: "authorization",
                    status: format!("{other:?}"),
                })
            }
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| OrderError::NoHttp01(name.to_string()))?;
        let key_auth = challenge.key_authorization();
        challenges.insert(&challenge.token, key_auth.as_str());
        published.tokens.push(challenge.token.clone());
        challenge
            .set_ready()
            .await
            .map_err(acme("answering the challenge"))?;
    }
    let patience = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(90));
    let status = order
        .poll_ready(&patience)
        .await
        .map_err(acme("waiting for validation"))?;
    drop(published);
    if status != OrderStatus::Ready {
        return Err(OrderError::State {
            what: "order",
            status: format!("{status:?}"),
        });
    }
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(acme("finalizing"))?;
    let chain_pem = order
        .poll_certificate(&patience)
        .await
        .map_err(acme("downloading the certificate"))?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}
