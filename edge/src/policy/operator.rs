//! [`OperatorEndpoints`]: the operator's policies from `edge.yaml`, compiled once at start.
//! Their rules run before the agent's on every matching endpoint, and with no agent online
//! they answer on their own; their patterns also name the `endpoint` metric label.

use super::compile::{self, CompileError, PolicyServices};
use crate::config::OperatorPolicy;
use crate::hostname::Hostname;
use crate::metrics::labels::OTHER_ENDPOINT;
use crate::urls::PublicUrls;
use sluice_policy::{EndpointInfo, Engine};
use sluice_proto::control::PolicySource;
use std::sync::Arc;

/// An operator policy attached to a hostname pattern in `edge.yaml`.
struct OperatorEndpoint {
    /// Exact hostname or wildcard (`*.example.com`).
    pattern: Hostname,
    /// The policy text, compiled again for each matching agent endpoint (own rate-limit state);
    /// `None` for an entry that only names endpoints (for the `endpoint` metric label).
    source: Option<PolicySource>,
    /// Compiled once for requests that reach no agent.
    engine: Option<Arc<Engine>>,
    /// `endpoint.*` facts for those requests.
    endpoint: Arc<EndpointInfo>,
}

/// An operator policy in `edge.yaml` that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("operator policy for '{pattern}':\n{source}")]
pub struct OperatorPolicyError {
    /// The hostname pattern.
    pub pattern: String,
    /// Every problem, one per line.
    pub source: CompileError,
}

/// Every operator endpoint, in `edge.yaml` order.
#[derive(Default)]
pub struct OperatorEndpoints(Vec<OperatorEndpoint>);

impl OperatorEndpoints {
    /// Compiles `edge.yaml`'s operator policies up front: a bad file stops the edge at start,
    /// not at the first request.
    pub fn compile(
        config: &[OperatorPolicy],
        services: &PolicyServices,
        urls: &PublicUrls,
    ) -> Result<Self, OperatorPolicyError> {
        config
            .iter()
            .map(|op| {
                let failed = |source| OperatorPolicyError {
                    pattern: op.pattern.to_string(),
                    source,
                };
                let engine = match &op.source {
                    // Requests for a host no agent holds: the pattern names the buckets.
                    Some(source) => compile::compile(
                        [source],
                        std::iter::empty(),
                        services,
                        None,
                        &format!("operator/{}", op.pattern),
                    )
                    .map_err(failed)?,
                    None => None,
                };
                Ok(OperatorEndpoint {
                    pattern: op.pattern.clone(),
                    source: op.source.clone(),
                    engine,
                    endpoint: Arc::new(urls.endpoint_info(
                        format!("operator/{}", op.pattern),
                        &op.pattern,
                        urls.default_scheme(),
                    )),
                })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The operator policies that apply to `host`, in `edge.yaml` order.
    pub fn sources_for<'a>(
        &'a self,
        host: &'a Hostname,
    ) -> impl Iterator<Item = &'a PolicySource> + 'a {
        self.0
            .iter()
            .filter(move |o| o.pattern.covers(host))
            .filter_map(|o| o.source.as_ref())
    }

    /// The engine and endpoint facts of the first operator policy covering `host`, which
    /// answers requests no agent takes.
    pub fn answering(&self, host: &Hostname) -> Option<(Arc<Engine>, Arc<EndpointInfo>)> {
        self.0.iter().find_map(|o| {
            o.engine
                .as_ref()
                .filter(|_| o.pattern.covers(host))
                .map(|engine| (engine.clone(), o.endpoint.clone()))
        })
    }

    /// The `endpoint` metric label for a request to `host`: the first `edge.yaml` endpoint
    /// pattern covering it, else [`OTHER_ENDPOINT`] (random agent hostnames must not create
    /// series).
    pub fn endpoint_label(&self, host: &str) -> &str {
        if self.0.is_empty() {
            return OTHER_ENDPOINT;
        }
        Hostname::parse(host)
            .ok()
            .and_then(|h| self.0.iter().find(|o| o.pattern.covers(&h)))
            .map_or(OTHER_ENDPOINT, |o| o.pattern.as_str())
    }
}
