//! [`OperatorPolicy`]: an `edge.yaml` `endpoints:` entry, validated.

use crate::hostname::Hostname;
use sluice_proto::control::PolicySource;

/// An operator endpoint (`edge.yaml` `endpoints:`): a hostname pattern, optionally with a
/// traffic policy. Named patterns also become values of the `endpoint` metric label.
#[derive(Debug, Clone)]
pub struct OperatorPolicy {
    /// Exact hostname or wildcard (`*.example.com`).
    pub pattern: Hostname,
    /// The policy document, if the entry has one.
    pub source: Option<PolicySource>,
}
