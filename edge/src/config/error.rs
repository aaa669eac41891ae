//! [`ConfigError`]: why the edge's configuration is unusable, naming the setting.

use crate::acme::config::AcmeConfigError;
use crate::events::config::EventConfigError;
use crate::hostname::HostnameError;
use crate::outbound::config::OutboundConfigError;
use std::path::PathBuf;

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid YAML for this schema.
    #[error("{path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML error, with line and column.
        source: serde_yaml::Error,
    },
    /// The domain is not a hostname.
    #[error("domain: {0}")]
    Domain(#[from] HostnameError),
    /// `auth_host` is not a plain hostname.
    #[error("auth_host: {0}")]
    AuthHost(String),
    /// `tcp_ports` is not a port range.
    #[error("tcp_ports: {0}")]
    TcpPorts(#[from] crate::tunnel::ports::PortRangeError),
    /// `cluster:` is incomplete or invalid, or asks for what cluster mode refuses.
    #[error("{0}")]
    Cluster(String),
    /// `tunnel_tcp_addr` is not an address, `same` or `off`.
    #[error("tunnel_tcp_addr: {0}")]
    TunnelTcp(String),
    /// Unknown log format.
    #[error("log_format: '{0}' is not one of term, json")]
    LogFormat(String),
    /// Unknown HTTP/1.x server.
    #[error("h1_server: '{0}' is not one of hyper, pingora")]
    H1Server(String),
    /// No authtoken and not in dev mode.
    #[error("no authtoken configured: pass --authtoken TOKEN (or SLUICE_AUTHTOKENS), or --dev to generate one")]
    NoAuthtoken,
    /// The admin API's settings do not fit together (an address without a token, the reverse,
    /// or a short token).
    #[error("admin API: {0}")]
    Admin(String),
    /// An `endpoints:` or `cloud_endpoints:` entry is unusable.
    #[error("{section}[{index}]: {msg}")]
    Endpoint {
        /// `endpoints` or `cloud_endpoints`.
        section: &'static str,
        /// Index in the list.
        index: usize,
        /// What is wrong.
        msg: String,
    },
    /// A `secret_vaults:` entry is unusable.
    #[error("secret_vaults.{name}: {msg}")]
    Vault {
        /// The vault's name.
        name: String,
        /// What is wrong (never a secret's value).
        msg: String,
    },
    /// A `login_apps:` entry is unusable.
    #[error("login_apps.{key}: {msg}")]
    LoginApp {
        /// `oauth.google`, `oidc[0]`.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// The `outbound:` section is unusable.
    #[error(transparent)]
    Outbound(#[from] OutboundConfigError),
    /// Only one of cert/key given in the file.
    #[error("{0}_cert and {0}_key must be given together")]
    HalfTls(&'static str),
    /// Certificates or an HTTPS option without an HTTPS listener, or the reverse.
    #[error("{0}")]
    Https(String),
    /// The `acme:` block is unusable.
    #[error(transparent)]
    Acme(#[from] AcmeConfigError),
    /// An `event_destinations:` entry is unusable.
    #[error(transparent)]
    Events(#[from] EventConfigError),
}
