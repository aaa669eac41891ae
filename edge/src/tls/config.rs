//! HTTPS listener configuration: where certificates come from and how plain HTTP is treated.

use crate::acme::config::AcmeConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A certificate chain and its private key in PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The public HTTPS listener.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Address to listen on (port 0 picks a free port).
    pub addr: SocketAddr,
    /// `--tls-cert/--tls-key`: usually the base domain's wildcard; also served to clients
    /// without SNI or asking for a name no other certificate covers.
    pub default_cert: Option<CertFiles>,
    /// `edge.yaml` `tls_certificates`: more certificates, selected by the names they carry.
    pub certificates: Vec<CertFiles>,
    /// Answer plain-HTTP requests for https endpoints with a 308 to the https URL (otherwise
    /// they get 404, as the endpoint does not exist on http).
    pub redirect_http: bool,
    /// How often certificate files are checked for changes.
    pub reload_interval: Duration,
    /// The built-in ACME client, when enabled.
    pub acme: Option<AcmeConfig>,
}

impl HttpsConfig {
    /// A listener on `addr` with no certificates yet and the default reload interval (10 s).
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            default_cert: None,
            certificates: Vec::new(),
            redirect_http: false,
            reload_interval: Duration::from_secs(10),
            acme: None,
        }
    }
}
