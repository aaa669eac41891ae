//! HTTPS and ACME counters: certificate reloads and certificate issuance outcomes.

use super::register::{counter, counter_vec};
use prometheus::{IntCounter, IntCounterVec, Registry};

/// Certificate reloads and ACME outcomes, registered in the edge's registry.
#[derive(Clone)]
pub struct TlsMetrics {
    /// Certificate files reloaded after a change.
    pub cert_reloads: IntCounter,
    /// Certificate files that changed but could not be loaded (the old one keeps serving).
    pub cert_reload_failures: IntCounter,
    /// ACME orders that ended with a certificate, by reason (`initial`, `renewal`, `on_demand`).
    pub acme_issued: IntCounterVec,
    /// ACME attempts that failed, by reason (as `acme_issued`).
    pub acme_failures: IntCounterVec,
    /// On-demand requests refused (`not_allowed`, `rate_limited`).
    pub acme_on_demand_refused: IntCounterVec,
}

impl TlsMetrics {
    /// Creates the counters and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let r = registry;
        Ok(Self {
            cert_reloads: counter(
                r,
                "tls_cert_reloads_total",
                "Certificate files reloaded after they changed.",
            )?,
            cert_reload_failures: counter(
                r,
                "tls_cert_reload_failures_total",
                "Certificate files that changed but could not be loaded.",
            )?,
            acme_issued: counter_vec(
                r,
                "acme_certificates_issued_total",
                "Certificates obtained from the ACME CA.",
                &["reason"],
            )?,
            acme_failures: counter_vec(
                r,
                "acme_failures_total",
                "ACME attempts that failed (retried with backoff).",
                &["reason"],
            )?,
            acme_on_demand_refused: counter_vec(
                r,
                "acme_on_demand_refused_total",
                "On-demand certificate requests refused.",
                &["why"],
            )?,
        })
    }
}
