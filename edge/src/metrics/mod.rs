//! Prometheus metrics: one registry per edge (so several edges in one process, as in the tests,
//! never mix), served on the metrics listener by [`MetricsApp`]. Names and label choices are in
//! docs/metrics.md.

mod app;
mod handles;
pub(crate) mod labels;
mod quic;
mod register;
mod tls;

pub use app::MetricsApp;
pub use handles::EdgeMetrics;
pub use tls::TlsMetrics;
