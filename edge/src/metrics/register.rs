//! Registering metric families under the edge's namespace: one home for the name prefix and
//! the register-or-fail boilerplate every family shares.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Prefix of every Sluice metric (process metrics keep their standard `process_` names).
pub(crate) const NAMESPACE: &str = "sluice_edge";

/// Options for a family named `name` under [`NAMESPACE`].
pub(crate) fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

/// A counter, registered in `registry`.
pub(crate) fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::with_opts(opts(name, help))?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// A counter family with `labels`, registered in `registry`.
pub(crate) fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(opts(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// A gauge, registered in `registry`.
pub(crate) fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<IntGauge, prometheus::Error> {
    let g = IntGauge::with_opts(opts(name, help))?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// A gauge family with `labels`, registered in `registry`.
pub(crate) fn gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(opts(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}
