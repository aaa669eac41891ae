//! One public certificate: PEM files turned into a rustls [`CertifiedKey`] plus the names and
//! expiry read from the leaf, which SNI selection and ACME renewal need.

use crate::certs::{self, CertError};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A certificate chain and key ready to serve, with the facts read from its leaf.
#[derive(Debug)]
pub struct LoadedCert {
    /// DNS names from the leaf's subjectAltName, lowercase (`*.example.com` for wildcards).
    pub names: Vec<String>,
    /// Start of the leaf's validity.
    pub not_before: SystemTime,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
    /// SHA-256 of the leaf (DER), lowercase hex: tells a rotated certificate from the old one.
    pub fingerprint: String,
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
}

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsCertError {
    /// Reading or PEM-decoding the files failed.
    #[error(transparent)]
    Files(#[from] CertError),
    /// The leaf is not a parsable X.509 certificate.
    #[error("{path}: not a valid X.509 certificate: {reason}")]
    Parse {
        /// The certificate file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The leaf names no DNS name, so no SNI could ever select it.
    #[error("{path}: the certificate has no DNS names in subjectAltName")]
    NoNames {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key is unusable or does not belong to the certificate.
    #[error("{key_path}: private key does not fit {cert_path}: {reason}")]
    Key {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
        /// What rustls said.
        reason: String,
    },
}

/// Loads a PEM chain and key, checks that they belong together, and reads the leaf's names and
/// expiry.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, TlsCertError> {
    let identity = certs::load_pem(cert_path, key_path)?;
    let (names, not_before, not_after) = leaf_facts(&identity.chain[0], cert_path)?;
    let key_err = |reason: String| TlsCertError::Key {
        cert_path: cert_path.to_path_buf(),
        key_path: key_path.to_path_buf(),
        reason,
    };
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(identity.chain, identity.key, &provider)
        .map_err(|e| key_err(e.to_string()))?;
    Ok(LoadedCert {
        names,
        not_before,
        not_after,
        fingerprint: identity.fingerprint,
        key: Arc::new(key),
    })
}

/// The leaf's DNS names (lowercase), notBefore and notAfter.
fn leaf_facts(
    der: &[u8],
    path: &Path,
) -> Result<(Vec<String>, SystemTime, SystemTime), TlsCertError> {
    use x509_parser::extensions::GeneralName;
    let parse_err = |reason: String| TlsCertError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| parse_err(e.to_string()))?;
    let names: Vec<String> = cert
        .subject_alternative_name()
        .map_err(|e| parse_err(e.to_string()))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Err(TlsCertError::NoNames {
            path: path.to_path_buf(),
        });
    }
    let time = |t: &x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
    };
    let validity = cert.validity();
    Ok((names, time(&validity.not_before), time(&validity.not_after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_expiry_and_key_mismatch() {
        let dir = tempfile_dir("sluice-tlscert");
        let a =
            rcgen::generate_simple_self_signed(vec!["*.Example.com".into(), "127.0.0.1".into()])
                .expect("gen");
        let b = rcgen::generate_simple_self_signed(vec!["other.test".into()]).expect("gen");
        std::fs::write(dir.join("a.crt"), a.cert.pem()).expect("w");
        std::fs::write(dir.join("a.key"), a.key_pair.serialize_pem()).expect("w");
        std::fs::write(dir.join("b.key"), b.key_pair.serialize_pem()).expect("w");
        let loaded = load(&dir.join("a.crt"), &dir.join("a.key")).expect("load");
        assert_eq!(loaded.names, ["*.example.com"]);
        assert!(loaded.not_after > SystemTime::now());
        let err = load(&dir.join("a.crt"), &dir.join("b.key")).expect_err("mismatch");
        assert!(err.to_string().contains("does not fit"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    fn tempfile_dir(prefix: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }
}
