//! Sealed cookies: ChaCha20-Poly1305 (ring) with keys from the edge's state dir, so a browser
//! can hold its session and sign-in state without being able to read or change them.

use crate::key_file::{self, KeyFileError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The file in the state dir holding the keys, one hex line each; the first seals.
pub const KEY_FILE: &str = "session-keys";

/// Why the session keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SessionKeyError {
    /// Reading or creating the file failed.
    #[error("session key file {0}")]
    File(#[from] KeyFileError),
    /// A line is not a 32-byte key in hex.
    #[error("session key file {path}, line {line}: expected 64 hex digits (a 32-byte key)")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
}

/// The keys cookies are sealed with: the first seals and opens, the others (older keys kept
/// for a rotation) only open.
pub struct SessionKeys {
    keys: Vec<LessSafeKey>,
    /// SHA-256 of the sealing key's bytes: edges of a cluster compare it (keyed again), never
    /// the key.
    primary: [u8; 32],
    rng: SystemRandom,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKeys({} keys, ***)", self.keys.len())
    }
}

impl SessionKeys {
    /// Loads `<state_dir>/session-keys`, creating it (mode 0600, one new random key) when
    /// missing. To rotate, put a new key on the first line and keep the old one below it
    /// until the sessions it sealed have expired.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, SessionKeyError> {
        let path = state_dir.join(KEY_FILE);
        let text = key_file::read_or_create(&path)?;
        let mut keys = Vec::new();
        let mut primary = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || SessionKeyError::BadLine {
                path: path.clone(),
                line: i + 1,
            };
            let bytes = hex::decode(line).map_err(|_| bad())?;
            primary.get_or_insert_with(|| ring::digest::digest(&ring::digest::SHA256, &bytes));
            let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| bad())?;
            keys.push(LessSafeKey::new(unbound));
        }
        let Some(primary) = primary.filter(|_| !keys.is_empty()) else {
            return Err(SessionKeyError::BadLine { path, line: 1 });
        };
        let mut digest = [0u8; 32];
        digest.copy_from_slice(primary.as_ref());
        Ok(Self {
            keys,
            primary: digest,
            rng: SystemRandom::new(),
        })
    }

    /// Where `state_dir` keeps the keys.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(KEY_FILE)
    }

    /// A digest of the sealing key, for comparing keys between edges.
    pub fn primary_digest(&self) -> &[u8; 32] {
        &self.primary
    }

    /// `value` as JSON, sealed for the cookie `name` (the name is authenticated too, so one
    /// cookie's value does not open as another's), base64url.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> Option<String> {
        let mut buf = serde_json::to_vec(value).ok()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        self.keys[0]
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut buf,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// The value sealed into cookie `name`, when some key opens it and it parses.
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.trim()).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        self.keys.iter().find_map(|key| {
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut buf = sealed.to_vec();
            let plain = key
                .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buf)
                .ok()?;
            serde_json::from_slice(plain).ok()
        })
    }

    /// `n` random bytes as base64url (ids, nonces).
    pub fn random_token(&self, n: usize) -> String {
        let mut bytes = vec![0u8; n];
        // SystemRandom only fails when the OS has no randomness; an all-zero id would then
        // only weaken uniqueness, and sealing fails closed on the same condition.
        let _ = self.rng.fill(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(dir: &str) -> (SessionKeys, PathBuf) {
        let d = std::env::temp_dir().join(format!("sluice-keys-{dir}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        (SessionKeys::load_or_create(&d).expect("keys"), d)
    }

    #[test]
    fn sealed_values_open_only_unchanged_and_under_their_name() {
        let (k, d) = keys("seal");
        let sealed = k.seal("a", &("x", 1)).expect("seal");
        assert_eq!(k.open::<(String, i32)>("a", &sealed), Some(("x".into(), 1)));
        assert_eq!(k.open::<(String, i32)>("b", &sealed), None);
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).expect("test step");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            k.open::<(String, i32)>("a", &URL_SAFE_NO_PAD.encode(raw)),
            None
        );
        std::fs::remove_dir_all(d).ok();
    }

    #[test]
    fn the_key_file_persists_and_old_keys_still_open() {
        let (k, d) = keys("rotate");
        let old = k.seal("a", &7).expect("test step");
        let again = SessionKeys::load_or_create(&d).expect("test step");
        assert_eq!(again.open::<i32>("a", &old), Some(7));
        let file = d.join(KEY_FILE);
        let text = std::fs::read_to_string(&file).expect("test step");
        std::fs::write(&file, format!("{}\n{text}", "11".repeat(32))).expect("test step");
        let rotated = SessionKeys::load_or_create(&d).expect("test step");
        assert_eq!(rotated.open::<i32>("a", &old), Some(7));
        let new = rotated.seal("a", &8).expect("test step");
        assert_eq!(again.open::<i32>("a", &new), None);
        std::fs::write(&file, "zz\n").expect("test step");
        let err = SessionKeys::load_or_create(&d)
            .expect_err("a bad key line")
            .to_string();
        assert!(err.contains("line 1"), "{err}");
        std::fs::remove_dir_all(d).ok();
    }
}
