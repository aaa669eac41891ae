//! Secret keys the edge generates once and keeps in its state dir (cookie sealing, QUIC resets).

use ring::rand::{SecureRandom, SystemRandom};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why a key file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or creating the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The system random source failed.
    #[error("{path}: no randomness for a new key")]
    Random {
        /// The file that was to be created.
        path: PathBuf,
    },
}

/// The text of `path`. When it is missing it is created first (mode 0600, parent directories
/// too) holding one new random 32-byte key in hex. An existing file is never overwritten: if
/// another process created it meanwhile, that one is read.
pub fn read_or_create(path: &Path) -> Result<String, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        read => return read.map_err(io),
    }
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| KeyFileError::Random {
            path: path.to_path_buf(),
        })?;
    let text = format!("{}\n", hex::encode(key));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match create_private(path) {
        Ok(mut f) => f.write_all(text.as_bytes()).map_err(io).map(|()| text),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("sluice-key-file-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let path = dir.join("nested").join("k");
        let first = read_or_create(&path).expect("create");
        assert_eq!(first.trim().len(), 64);
        assert_eq!(read_or_create(&path).expect("read"), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
