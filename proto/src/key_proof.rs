//! [`KeyProof`]: the one check left when a peer's certificate is taken without asking who
//! issued it (the agent's `https://` upstreams by default; terminate-tls's `require-any` and
//! `request`; links between edges, which authenticate otherwise): the handshake's signature,
//! which proves the peer holds the certificate's key. [`AnyServerCertificate`] is the client
//! verifier built on it.

use quinn::rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Verifies handshake signatures with a crypto provider's algorithms; certificate verifiers
/// that accept any certificate delegate their signature methods here.
#[derive(Debug, Clone, Copy)]
pub struct KeyProof(WebPkiSupportedAlgorithms);

impl KeyProof {
    /// With `provider`'s signature algorithms.
    pub fn new(provider: &CryptoProvider) -> Self {
        Self(provider.signature_verification_algorithms)
    }

    /// A TLS 1.2 handshake signature over `message` by `cert`'s key.
    pub fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    /// A TLS 1.3 handshake signature over `message` by `cert`'s key.
    pub fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    /// The signature schemes it verifies.
    pub fn schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A server-certificate verifier that accepts any certificate and checks only the handshake
/// signature: for peers that are authenticated some other way, or not at all on purpose.
#[derive(Debug)]
pub struct AnyServerCertificate(pub KeyProof);

impl ServerCertVerifier for AnyServerCertificate {
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
