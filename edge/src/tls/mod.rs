//! HTTPS at the edge: certificates selected per SNI from files and ACME, reloaded without a
//! restart, and the HTTPS listener's own TLS ([`front`]): the ClientHello read first
//! ([`client_hello`]), TLS passthrough by SNI, rustls (TLS 1.2/1.3, ALPN h2 and http/1.1)
//! otherwise, the result handed to the HTTP servers as a pingora stream ([`stream`]).

pub mod certificate;
pub mod client_hello;
pub mod config;
pub mod files;
pub mod front;
pub mod resolver;
pub mod stream;

use resolver::CertResolver;
use rustls::version::{TLS12, TLS13};
use rustls::ServerConfig;
use std::sync::Arc;

/// The shared rustls configuration of the HTTPS listener: every certificate comes from
/// `resolver`; TLS 1.2 and 1.3; HTTP/2 is offered first, HTTP/1.1 second (as pingora's
/// listener had it).
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS12, &TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = http_alpn();
    Ok(Arc::new(config))
}

/// The ALPN protocols HTTPS endpoints offer: HTTP/2 first, HTTP/1.1 second.
pub fn http_alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}
