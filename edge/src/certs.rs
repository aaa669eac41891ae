//! The QUIC listener's certificate: from PEM files, or self-signed and kept in the state dir.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A certificate chain and key for the agent-facing QUIC listener.
#[derive(Debug)]
pub struct TunnelIdentity {
    /// Certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// Where the leaf certificate is stored (what agents pass to `--edge-ca`).
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub fingerprint: String,
}

/// Why the certificate could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file held no usable PEM item.
    #[error("{path}: no {what} found in PEM file")]
    Missing {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// Generating the self-signed certificate failed.
    #[error("generating self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads a PEM certificate chain and private key.
pub fn load_pem(cert_path: &Path, key_path: &Path) -> Result<TunnelIdentity, CertError> {
    let cert_pem = fs::read(cert_path).map_err(io_err(cert_path))?;
    let chain = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(cert_path))?;
    if chain.is_empty() {
        return Err(CertError::Missing {
            path: cert_path.to_path_buf(),
            what: "certificate",
        });
    }
    let key_pem = fs::read(key_path).map_err(io_err(key_path))?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(io_err(key_path))?
        .ok_or_else(|| CertError::Missing {
            path: key_path.to_path_buf(),
            what: "private key",
        })?;
    Ok(TunnelIdentity {
        fingerprint: hex::encode(Sha256::digest(&chain[0])),
        chain,
        key,
        cert_path: cert_path.to_path_buf(),
    })
}

/// Reuses the self-signed certificate in `state_dir`, or creates one valid for `names`
/// (DNS names and IP addresses). Reusing it keeps agents that pinned it via `--edge-ca`
/// working across edge restarts.
pub fn load_or_create_self_signed(
    state_dir: &Path,
    names: Vec<String>,
) -> Result<TunnelIdentity, CertError> {
    let cert_path = state_dir.join("tunnel.crt");
    let key_path = state_dir.join("tunnel.key");
    if cert_path.exists() && key_path.exists() {
        return load_pem(&cert_path, &key_path);
    }
    fs::create_dir_all(state_dir).map_err(io_err(state_dir))?;
    let generated = rcgen::generate_simple_self_signed(names)?;
    write_private(&key_path, generated.key_pair.serialize_pem().as_bytes())?;
    fs::write(&cert_path, generated.cert.pem()).map_err(io_err(&cert_path))?;
    load_pem(&cert_path, &key_path)
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), CertError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(contents).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("sluice-certs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let first = load_or_create_self_signed(&dir, names.clone()).expect("create");
        let second = load_or_create_self_signed(&dir, names).expect("reuse");
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.fingerprint.len(), 64);
        let _ = fs::remove_dir_all(&dir);
    }
}
