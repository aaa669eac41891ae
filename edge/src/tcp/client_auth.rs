//! How terminate-tls asks for client certificates (mutual TLS): verified against the action's
//! authorities (`require-and-verify`), or taken as they come (`require-any`, `request`).

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sluice_policy::{MtlsStrategy, MutualTls};
use sluice_proto::key_proof::KeyProof;
use std::sync::Arc;

/// Why the authorities cannot verify client certificates.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// An authority rustls refuses as a trust anchor.
    #[error("certificate authority: {0}")]
    Authority(rustls::Error),
    /// The verifier could not be built (no authority for a strategy that verifies).
    #[error("{0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The verifier `mtls` asks for.
pub fn verifier(
    mtls: &MutualTls,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, ClientAuthError> {
    let mandatory = match mtls.strategy() {
        MtlsStrategy::RequireAndVerify => {
            let mut roots = RootCertStore::empty();
            for ca in mtls.authorities() {
                roots.add(ca.clone()).map_err(ClientAuthError::Authority)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            return Ok(verifier.build()?);
        }
        MtlsStrategy::RequireAny => true,
        MtlsStrategy::Request => false,
    };
    Ok(Arc::new(AnyClientCert {
        mandatory,
        proof: KeyProof::new(&provider),
    }))
}

/// `require-any` and `request`, with the meaning of Go's `RequireAnyClientCert` and
/// `RequestClientCert` that ngrok names them after: a certificate is asked for (required under
/// require-any) and not checked against any authority, so rules decide by its fields. The
/// client must still prove it holds the certificate's key: the handshake's signature is
/// verified.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    proof: KeyProof,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.proof.tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.proof.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.proof.schemes()
    }
}
