//! What ACME keeps in the state dir: the account credentials (one file per CA directory) and
//! each obtained certificate with its key, so a restarted edge serves and renews them without
//! asking the CA again.

use crate::certs::{self, CertError};
use crate::tls::config::CertFiles;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The account file is not valid JSON credentials.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<CertError> for StoreError {
    fn from(e: CertError) -> Self {
        match e {
            CertError::Io { path, source } => StoreError::Io { path, source },
            other => StoreError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}

/// `STATE_DIR/acme/`.
#[derive(Debug, Clone)]
pub struct AcmeStore {
    dir: PathBuf,
}

impl AcmeStore {
    /// The store under `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("acme"),
        }
    }

    /// `account-HASH.json`: one account per CA directory, so switching CAs never sends one
    /// CA's credentials to another.
    fn account_path(&self, directory: &str) -> PathBuf {
        let hash = hex::encode(&Sha256::digest(directory.as_bytes())[..6]);
        self.dir.join(format!("account-{hash}.json"))
    }

    /// The stored credentials for `directory`, if any.
    pub fn load_account(
        &self,
        directory: &str,
    ) -> Result<Option<instant_acme::AccountCredentials>, StoreError> {
        let path = self.account_path(directory);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Saves credentials (they hold the account's private key: owner-only file).
    pub fn save_account(
        &self,
        directory: &str,
        credentials: &instant_acme::AccountCredentials,
    ) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.account_path(directory);
        let json = serde_json::to_vec_pretty(credentials).map_err(|source| StoreError::Json {
            path: path.clone(),
            source,
        })?;
        certs::write_private(&path, &json)?;
        Ok(())
    }

    /// Forgets the account for `directory` (the CA no longer knows it).
    pub fn forget_account(&self, directory: &str) {
        let _ = std::fs::remove_file(self.account_path(directory));
    }

    /// Where the certificate for `name` lives.
    pub fn cert_files(&self, name: &str) -> CertFiles {
        let certs = self.dir.join("certs");
        CertFiles {
            cert: certs.join(format!("{name}.crt")),
            key: certs.join(format!("{name}.key")),
        }
    }

    /// Saves a new certificate for `name`: key first, then the chain, each written beside and
    /// renamed over the old file, so a crash never leaves a half-written pair.
    pub fn save_cert(
        &self,
        name: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<CertFiles, StoreError> {
        let files = self.cert_files(name);
        let dir = files.cert.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let key_tmp = files.key.with_extension("key.tmp");
        certs::write_private(&key_tmp, key_pem.as_bytes())?;
        std::fs::rename(&key_tmp, &files.key).map_err(io(&files.key))?;
        let cert_tmp = files.cert.with_extension("crt.tmp");
        std::fs::write(&cert_tmp, chain_pem).map_err(io(&cert_tmp))?;
        std::fs::rename(&cert_tmp, &files.cert).map_err(io(&files.cert))?;
        Ok(files)
    }

    /// Names that have a stored certificate.
    pub fn stored_names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("certs")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".crt")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        names
    }
}
