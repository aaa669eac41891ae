//! The key QUIC stateless resets are derived from, kept in the state dir so that an edge
//! restarted after a crash resets its predecessor's connections.
//!
//! An agent whose edge died without a close frame keeps sending on a connection nobody holds.
//! With a fresh key each run, the new edge cannot prove it may end that connection and stays
//! silent, so the agent waits out its idle timeout (8 s). With the old key, the new edge answers
//! the agent's next packet with a stateless reset (RFC 9000 §10.3) and the agent reconnects
//! at once.

use crate::key_file::{self, KeyFileError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file in the state dir holding the key (64 hex digits).
pub const RESET_KEY_FILE: &str = "quic-reset-key";

/// Why the reset key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ResetKeyError {
    /// Reading or creating the file failed.
    #[error("QUIC reset key {0}")]
    File(#[from] KeyFileError),
    /// The file does not hold a 32-byte key in hex.
    #[error("QUIC reset key {path}: expected 64 hex digits (a 32-byte key)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// The endpoint settings that derive reset tokens from `key` ([`load_or_create`]).
///
/// The connection-id generator's key is derived from it too: quinn drops packets whose
/// connection id its generator did not make before it would consider a reset, so a new edge
/// must recognise its predecessor's ids as well as sign resets for them.
pub fn endpoint_config(key: &[u8; 32]) -> quinn::EndpointConfig {
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let cid_key = cid_key(&hmac);
    let mut config = quinn::EndpointConfig::new(Arc::new(hmac));
    // quinn sends at most one reset per interval (20 ms by default); after a crash every agent
    // needs one, so 1,000 agents would wait 20 s. Resets are smaller than the packet that
    // prompted them (no amplification), and the hashed ids below reject stray packets.
    config.min_reset_interval(std::time::Duration::from_millis(2));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// A key for connection ids, one-way from the reset key (ids travel in clear text).
fn cid_key(reset: &ring::hmac::Key) -> u64 {
    let tag = ring::hmac::sign(reset, b"sluice connection ids");
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag.as_ref()[..8]);
    u64::from_le_bytes(first)
}

/// Loads `<state_dir>/quic-reset-key`, creating it (mode 0600, a new random key) when missing.
/// The QUIC endpoint derives reset tokens from it; a cluster checks no two edges share it.
pub(crate) fn load_or_create(state_dir: &Path) -> Result<[u8; 32], ResetKeyError> {
    let path = state_dir.join(RESET_KEY_FILE);
    let text = key_file::read_or_create(&path)?;
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or(ResetKeyError::Malformed { path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("sluice-reset-key-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let first = load_or_create(&dir).expect("create");
        assert_eq!(load_or_create(&dir).expect("read"), first);
        std::fs::write(dir.join(RESET_KEY_FILE), "abc\n").expect("write");
        let err = load_or_create(&dir).expect_err("malformed");
        assert!(err.to_string().contains("expected 64 hex digits"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
