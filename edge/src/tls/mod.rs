//! HTTPS at the edge: certificates selected per SNI from files and ACME, reloaded without a
//! restart, and pingora's rustls listener settings (TLS 1.2/1.3, ALPN h2 and http/1.1).

pub mod certificate;
pub mod config;
pub mod files;
pub mod resolver;

use pingora::listeners::tls::TlsSettings;
use resolver::CertResolver;
use std::sync::Arc;

/// pingora's TLS settings for the public HTTPS listener: every certificate comes from
/// `resolver`; HTTP/2 is offered first, HTTP/1.1 second.
pub fn listener_settings(resolver: Arc<CertResolver>) -> pingora::Result<TlsSettings> {
    // Paths stay empty: with a resolver set, pingora never reads certificate files.
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(resolver);
    settings.enable_h2();
    Ok(settings)
}
