//! terminate-tls's compiled configuration: TLS versions, the server identity and mutual TLS,
//! each checked when the policy loads, so the edge builds its TLS settings from values that
//! cannot be invalid.

use crate::secrets::REDACTED;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::sync::Arc;

/// A TLS protocol version terminate-tls may allow. Only 1.2 and 1.3: rustls, which the edge
/// terminates TLS with, has no older version, so `"1.0"` and `"1.1"` are refused at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// Parses ngrok's spelling (`"1.2"`, `"1.3"`); the error says what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "1.2" => Ok(Self::Tls12),
            "1.3" => Ok(Self::Tls13),
            "1.0" | "1.1" => Err(format!(
                "TLS {s} is not supported: the edge's TLS library (rustls) has only TLS 1.2 and \
                 1.3, so use \"1.2\" or \"1.3\""
            )),
            other => Err(format!("expected \"1.2\" or \"1.3\", got `{other}`")),
        }
    }

    /// `"1.2"` or `"1.3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a client certificate is asked for (`mutual_tls_verification_strategy`), with the
/// meanings of the Go TLS client-auth modes ngrok names them after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MtlsStrategy {
    /// `require-and-verify` (the default): a certificate is required and must chain to one of
    /// the configured authorities.
    RequireAndVerify,
    /// `require-any`: a certificate is required; it is not verified.
    RequireAny,
    /// `request`: a certificate is asked for, not required, and not verified.
    Request,
}

impl MtlsStrategy {
    /// Parses ngrok's spelling.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "require-and-verify" => Ok(Self::RequireAndVerify),
            "require-any" => Ok(Self::RequireAny),
            "request" => Ok(Self::Request),
            other => Err(format!(
                "expected one of require-and-verify, require-any, request, got `{other}`"
            )),
        }
    }

    /// ngrok's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequireAndVerify => "require-and-verify",
            Self::RequireAny => "require-any",
            Self::Request => "request",
        }
    }
}

/// The certificate chain and private key the edge presents instead of its own, loaded and
/// matched: the key is one rustls can sign with, and it belongs to the first certificate.
pub struct ServerIdentity {
    key: Arc<CertifiedKey>,
}

impl ServerIdentity {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS #8, PKCS #1 or
    /// SEC1). The error never quotes the key.
    pub fn from_pem(cert_chain_pem: &str, key_pem: &str) -> Result<Self, String> {
        let cert_chain =
            certificates(cert_chain_pem).map_err(|e| format!("`server_certificate`: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            format!(
                "`server_private_key`: no private key in the PEM text: {}",
                pem_error(&e)
            )
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let key = CertifiedKey::from_der(cert_chain, key, &provider).map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "`server_private_key` does not belong to the first certificate of \
                 `server_certificate`"
                    .to_string()
            }
            other => format!("`server_private_key` cannot be used: {other}"),
        })?;
        Ok(Self { key: Arc::new(key) })
    }

    /// The certificates, leaf first, as DER.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.key.cert
    }

    /// The chain and its signing key, for a rustls certificate resolver.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.key)
    }
}

/// Shows the certificates' count, never the key.
impl fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("certificates", &self.key.cert.len())
            .field("key", &REDACTED)
            .finish()
    }
}

/// Mutual TLS: how client certificates are asked for and which authorities sign them.
#[derive(Debug)]
pub struct MutualTls {
    strategy: MtlsStrategy,
    authorities: Vec<CertificateDer<'static>>,
}

impl MutualTls {
    /// `authorities` may be empty only when the strategy does not verify.
    pub(crate) fn new(
        strategy: MtlsStrategy,
        authorities: Vec<CertificateDer<'static>>,
    ) -> Result<Self, String> {
        if strategy == MtlsStrategy::RequireAndVerify && authorities.is_empty() {
            return Err(
                "`require-and-verify` needs `mutual_tls_certificate_authorities` to \
                        verify client certificates against"
                    .to_string(),
            );
        }
        Ok(Self {
            strategy,
            authorities,
        })
    }

    /// The strategy.
    pub fn strategy(&self) -> MtlsStrategy {
        self.strategy
    }

    /// The certificate authorities (DER), never empty with `RequireAndVerify`.
    pub fn authorities(&self) -> &[CertificateDer<'static>] {
        &self.authorities
    }
}

/// terminate-tls's configuration, as the edge applies it to a connection: the versions to
/// offer (`min_version` ≤ `max_version`), the certificate to present (`None`: the edge's own
/// for the name), and mutual TLS (`None`: no client certificate is asked for).
#[derive(Debug)]
pub struct TerminateTls {
    min_version: TlsVersion,
    max_version: TlsVersion,
    server: Option<ServerIdentity>,
    mutual_tls: Option<MutualTls>,
}

impl TerminateTls {
    /// Checks that `min` ≤ `max`.
    pub(crate) fn new(
        min_version: TlsVersion,
        max_version: TlsVersion,
        server: Option<ServerIdentity>,
        mutual_tls: Option<MutualTls>,
    ) -> Result<Self, String> {
        if min_version > max_version {
            return Err(format!(
                "`min_version` {min_version} is above `max_version` {max_version}"
            ));
        }
        Ok(Self {
            min_version,
            max_version,
            server,
            mutual_tls,
        })
    }

    /// The lowest version offered (default 1.2).
    pub fn min_version(&self) -> TlsVersion {
        self.min_version
    }

    /// The highest version offered (default 1.3).
    pub fn max_version(&self) -> TlsVersion {
        self.max_version
    }

    /// The versions offered, lowest first.
    pub fn versions(&self) -> Vec<TlsVersion> {
        [TlsVersion::Tls12, TlsVersion::Tls13]
            .into_iter()
            .filter(|v| (self.min_version..=self.max_version).contains(v))
            .collect()
    }

    /// The certificate and key to present, when the policy gives one.
    pub fn server_identity(&self) -> Option<&ServerIdentity> {
        self.server.as_ref()
    }

    /// Mutual TLS, when the policy asks for client certificates.
    pub fn mutual_tls(&self) -> Option<&MutualTls> {
        self.mutual_tls.as_ref()
    }
}

/// Every certificate of a PEM text, each checked to be X.509; an error when there is none.
pub(crate) fn certificates(pem_text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for (i, item) in CertificateDer::pem_slice_iter(pem_text.as_bytes()).enumerate() {
        let der = item.map_err(|e| format!("certificate {}: {}", i + 1, pem_error(&e)))?;
        x509_parser::parse_x509_certificate(&der).map_err(|e| {
            format!(
                "certificate {} is not a valid X.509 certificate: {e}",
                i + 1
            )
        })?;
        out.push(der);
    }
    if out.is_empty() {
        return Err("no `-----BEGIN CERTIFICATE-----` block in the PEM text".to_string());
    }
    Ok(out)
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::NoItemsFound => "none found".to_string(),
        other => other.to_string(),
    }
}
