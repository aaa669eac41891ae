//! `cluster:` in edge.yaml (and its flags): the shared store several edges use, this edge's id,
//! the secret edges share, where peers reach it, and what rate limits do without the store.
//! Raw values are checked into a [`ClusterConfig`] that cannot be half set.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;

/// Shortest accepted peer secret: it authenticates edges to each other.
pub const MIN_PEER_SECRET_LEN: usize = 16;

/// The `cluster:` section as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCluster {
    pub(crate) store: Option<String>,
    pub(crate) edge_id: Option<String>,
    pub(crate) peer_secret: Option<String>,
    pub(crate) advertise_addr: Option<SocketAddr>,
    pub(crate) rate_limit_fallback: Option<String>,
}

/// What a rate-limit decision does while the cluster store does not answer
/// (`cluster.rate_limit_fallback`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RateLimitFallback {
    /// Count in this edge's memory, from zero: each edge lets up to the capacity through, so
    /// the cluster as a whole lets up to edges × capacity (the default: neither opens the
    /// service to unlimited traffic nor takes it down with the store).
    #[default]
    Local,
    /// Refuse: 429 with `retry-after: 1`.
    Deny,
    /// Let every request through, uncounted.
    Allow,
}

impl std::str::FromStr for RateLimitFallback {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Self::Local),
            "deny" => Ok(Self::Deny),
            "allow" => Ok(Self::Allow),
            other => Err(format!(
                "cluster.rate_limit_fallback '{other}' must be local, deny or allow"
            )),
        }
    }
}

/// A checked cluster configuration. Its `Debug` hides the peer secret (and the store URL's
/// password, if any).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The shared store: `redis://` or `rediss://` (Redis or Valkey).
    pub store: String,
    /// This edge's id, unique in the cluster: letters, digits, `.`, `_`, `-`, at most 64.
    pub edge_id: String,
    /// The secret edges prove to each other.
    pub peer_secret: String,
    /// Where other edges reach this one, when it forwards for them.
    pub advertise_addr: Option<SocketAddr>,
    /// What rate limits do while the store does not answer.
    pub rate_limit_fallback: RateLimitFallback,
}

impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let store = match self.store.split_once('@') {
            Some((_, host)) => format!("redis://…@{host}"),
            None => self.store.clone(),
        };
        f.debug_struct("ClusterConfig")
            .field("store", &store)
            .field("edge_id", &self.edge_id)
            .field("advertise_addr", &self.advertise_addr)
            .field("rate_limit_fallback", &self.rate_limit_fallback)
            .finish_non_exhaustive()
    }
}

impl FileCluster {
    /// Whether any field is set.
    pub(crate) fn is_empty(&self) -> bool {
        self.store.is_none()
            && self.edge_id.is_none()
            && self.peer_secret.is_none()
            && self.advertise_addr.is_none()
            && self.rate_limit_fallback.is_none()
    }

    /// The checked configuration; `None` when nothing is set (one edge on its own). The error
    /// names the field.
    pub(crate) fn check(self) -> Result<Option<ClusterConfig>, String> {
        if self.is_empty() {
            return Ok(None);
        }
        let store = self
            .store
            .ok_or("cluster.store is missing (e.g. redis://127.0.0.1:6379)")?;
        if !(store.starts_with("redis://") || store.starts_with("rediss://")) {
            return Err(format!(
                "cluster.store '{}' is not a redis:// or rediss:// URL",
                store.split('@').next_back().unwrap_or_default()
            ));
        }
        let edge_id = self.edge_id.ok_or("cluster.edge_id is missing")?;
        let id_ok = !edge_id.is_empty()
            && edge_id.len() <= 64
            && edge_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !id_ok {
            return Err(format!(
                "cluster.edge_id '{edge_id}' must be 1-64 letters, digits, '.', '_' or '-'"
            ));
        }
        let peer_secret = self.peer_secret.ok_or("cluster.peer_secret is missing")?;
        if peer_secret.len() < MIN_PEER_SECRET_LEN {
            return Err(format!(
                "cluster.peer_secret must be at least {MIN_PEER_SECRET_LEN} characters"
            ));
        }
        let rate_limit_fallback = self
            .rate_limit_fallback
            .as_deref()
            .map_or(Ok(RateLimitFallback::default()), str::parse)?;
        Ok(Some(ClusterConfig {
            store,
            edge_id,
            peer_secret,
            advertise_addr: self.advertise_addr,
            rate_limit_fallback,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> FileCluster {
        FileCluster {
            store: Some("redis://:pw@127.0.0.1:6379".into()),
            edge_id: Some("edge-1".into()),
            peer_secret: Some("0123456789abcdef".into()),
            advertise_addr: None,
            rate_limit_fallback: None,
        }
    }

    #[test]
    fn nothing_set_is_a_single_edge_and_everything_set_checks() {
        assert_eq!(FileCluster::default().check(), Ok(None));
        let config = full().check().expect("valid").expect("set");
        assert_eq!(config.edge_id, "edge-1");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("pw") && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
    }

    /// A change that spoils a valid section.
    type Spoil = fn(&mut FileCluster);

    #[test]
    fn the_rate_limit_fallback_is_local_by_default_and_named_when_wrong() {
        let fallback = |c: FileCluster| c.check().map(|c| c.map(|c| c.rate_limit_fallback));
        assert_eq!(fallback(full()), Ok(Some(RateLimitFallback::Local)));
        let mut c = full();
        c.rate_limit_fallback = Some("deny".into());
        assert_eq!(fallback(c), Ok(Some(RateLimitFallback::Deny)));
        let mut c = full();
        c.rate_limit_fallback = Some("open".into());
        let err = c.check().expect_err("refused");
        assert!(err.contains("cluster.rate_limit_fallback 'open'"), "{err}");
        // Alone, it is a half-set section.
        let alone = FileCluster {
            rate_limit_fallback: Some("allow".into()),
            ..FileCluster::default()
        };
        let err = alone.check().expect_err("refused");
        assert!(err.contains("cluster.store is missing"), "{err}");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: [(Spoil, &str); 4] = [
            (|c| c.store = None, "cluster.store is missing"),
            (|c| c.store = Some("http://x".into()), "not a redis://"),
            (|c| c.edge_id = Some("edge one".into()), "cluster.edge_id"),
            (
                |c| c.peer_secret = Some("short".into()),
                "cluster.peer_secret",
            ),
        ];
        for (spoil, says) in cases {
            let mut c = full();
            spoil(&mut c);
            let err = c.check().expect_err(says);
            assert!(err.contains(says), "{err}");
        }
    }
}
