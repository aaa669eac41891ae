//! Sessions ended by logout (or by the provider), remembered until they would have expired
//! anyway, in memory and in a file in the state dir so a restart does not revive them. In a
//! cluster, the other edges' logouts are learned here too (`crate::cluster::sign_in`).

use super::clock::unix;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The file in the state dir: one `<session id> <end, unix seconds>` line per ended session.
pub const REVOKED_FILE: &str = "revoked-sessions";

/// The file is rewritten without expired lines when it holds this many more lines than live
/// entries.
const COMPACT_SLACK: usize = 1000;

/// Ended sessions: session id → when it would have expired.
pub struct Revocations {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    ended: HashMap<String, u64>,
    /// Lines in the file (live or not).
    lines: usize,
}

impl Revocations {
    /// Loads `<state_dir>/revoked-sessions` (missing: none ended), dropping lines whose
    /// session has expired, and rewrites it without them when there were any. A malformed line is skipped with a
    /// warning, not fatal: the file only ever holds what this edge wrote.
    pub fn load(state_dir: &Path) -> std::io::Result<Self> {
        let path = state_dir.join(REVOKED_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let now = unix(SystemTime::now());
        let mut ended = HashMap::new();
        let mut dropped = false;
        for (i, line) in text.lines().enumerate() {
            let parsed = line
                .split_once(' ')
                .and_then(|(sid, t)| Some((sid, t.trim().parse::<u64>().ok()?)));
            match parsed {
                Some((sid, until)) if !sid.is_empty() && until > now => {
                    ended.insert(sid.to_string(), until);
                }
                Some((sid, _)) if !sid.is_empty() => dropped = true,
                _ => {
                    dropped = true;
                    tracing::warn!(file = %path.display(), line = i + 1, "ignoring a malformed line");
                }
            }
        }
        let this = Self {
            path,
            inner: Mutex::new(Inner {
                lines: ended.len(),
                ended,
            }),
        };
        if dropped {
            this.rewrite(&this.inner.lock())?;
        }
        Ok(this)
    }

    /// Remembers `session_id` as ended until `until` (unix seconds, the session's own
    /// expiry), written through to the file; a write failure is logged and the session stays
    /// refused for this run.
    pub fn revoke(&self, session_id: String, until: u64) {
        let now = unix(SystemTime::now());
        let mut inner = self.inner.lock();
        inner.ended.retain(|_, t| *t > now);
        let line = format!("{session_id} {until}\n");
        inner.ended.insert(session_id, until);
        inner.lines += 1;
        // Small synchronous writes under the lock: logouts are rare, and the line must be on
        // disk before the browser is told it is signed out.
        let written = if inner.lines > inner.ended.len() + COMPACT_SLACK {
            inner.lines = inner.ended.len();
            self.rewrite(&inner)
        } else {
            append(&self.path, &line)
        };
        if let Err(e) = written {
            tracing::warn!(file = %self.path.display(), "could not record an ended session: {e}");
        }
    }

    /// Remembers `session_id` as ended until `until` when it is not already (another edge's
    /// logout): written to the file like this edge's own. True when it was new.
    pub fn learn(&self, session_id: &str, until: u64) -> bool {
        let fresh = until > unix(SystemTime::now()) && !self.contains(session_id);
        if fresh {
            self.revoke(session_id.to_string(), until);
        }
        fresh
    }

    /// Whether `session_id` was ended.
    pub fn contains(&self, session_id: &str) -> bool {
        self.inner.lock().ended.contains_key(session_id)
    }

    /// The ended sessions that have not expired yet, with their ends (Unix seconds).
    pub fn live(&self) -> Vec<(String, u64)> {
        let now = unix(SystemTime::now());
        let inner = self.inner.lock();
        (inner.ended.iter())
            .filter(|(_, until)| **until > now)
            .map(|(sid, until)| (sid.clone(), *until))
            .collect()
    }

    /// Writes the live entries to a new file and renames it over the old one, so a crash
    /// mid-write never loses the list.
    fn rewrite(&self, inner: &Inner) -> std::io::Result<()> {
        let text: String = inner
            .ended
            .iter()
            .map(|(sid, t)| format!("{sid} {t}\n"))
            .collect();
        let tmp = self.path.with_extension("tmp");
        crate::certs::write_private(&tmp, text.as_bytes())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Appends `line` to the file, creating it readable only by its owner.
fn append(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_sessions_survive_a_reload_until_they_expire() {
        let dir = std::env::temp_dir().join(format!("sluice-revoked-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).expect("dir");
        let r = Revocations::load(&dir).expect("load");
        let now = unix(SystemTime::now());
        r.revoke("live".into(), now + 3600);
        r.revoke("old".into(), now - 1);
        assert!(r.contains("live"));
        let again = Revocations::load(&dir).expect("reload");
        assert!(again.contains("live"));
        assert!(!again.contains("old"));
        let text = std::fs::read_to_string(dir.join(REVOKED_FILE)).expect("file");
        assert_eq!(text.lines().count(), 1, "{text}");
        // Another edge's logout: learned once, kept in the file too; an expired one is not.
        assert!(again.learn("remote", now + 60));
        assert!(!again.learn("remote", now + 60));
        assert!(!again.learn("stale", now - 1));
        let mut live = again.live();
        live.sort();
        assert_eq!(
            live,
            [("live".into(), now + 3600), ("remote".into(), now + 60)]
        );
        assert!(Revocations::load(&dir).expect("reload").contains("remote"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
