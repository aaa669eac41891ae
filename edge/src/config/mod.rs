//! Edge configuration: command-line flags, `SLUICE_*` env vars and `edge.yaml`, merged and
//! validated into [`EdgeConfig`].
//!
//! Precedence: flag > env var > config file > default.

mod args;
mod cloud;
mod edge;
mod error;
mod file;
mod operator;
pub(crate) mod secrets;

pub use args::EdgeArgs;
pub use cloud::CloudEndpointSpec;
pub use edge::{EdgeConfig, H1Server, LogFormat, TunnelTcp, TunnelTls};
pub use error::ConfigError;
pub use operator::OperatorPolicy;
pub use secrets::{SecretVault, VaultSource};
