//! TLS to `https://` upstreams. As with ngrok, the upstream's certificate is not verified by
//! default: local apps usually run with self-signed certificates, and the traffic never leaves
//! the machine or the user's network. The handshake signature is still checked, so the session
//! is bound to the key the upstream presented. `--upstream-tls-verify` checks the chain and the
//! name against the system roots, or only against `--upstream-tls-verify-cas`.

use crate::config::endpoint::UpstreamTlsVerify;
use crate::trust::{self, TlsError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sluice_proto::key_proof::KeyProof;
use std::sync::Arc;

/// Accepts any upstream certificate (see the module docs for why).
#[derive(Debug)]
struct AcceptAnyCertificate(KeyProof);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.schemes()
    }
}

/// rustls client settings for upstream connections: TLS 1.2 and 1.3, the certificate checked
/// as `verify` says. ALPN is left to the connector builder, which offers what it is enabled for.
pub fn client_config(verify: &UpstreamTlsVerify) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match verify {
        UpstreamTlsVerify::Off => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(KeyProof::new(
                &provider,
            )))),
        UpstreamTlsVerify::SystemRoots => builder.with_root_certificates(trust::roots(None)?),
        UpstreamTlsVerify::CaFile(path) => {
            builder.with_root_certificates(trust::roots(Some(path))?)
        }
    };
    Ok(config.with_no_client_auth())
}
