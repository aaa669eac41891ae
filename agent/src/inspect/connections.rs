//! The inspector's record of TCP connections: the last ones (open or closed) in a ring bounded
//! by count, and per-endpoint totals that outlive the ring (ngrok's `metrics.conns`).

use crate::forward::observe::{ByteCounts, ConnectionClosed, ConnectionFailure, ConnectionMeta};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One recorded connection.
#[derive(Debug, Clone)]
pub struct CapturedConnection {
    /// Position in arrival order; the public id is derived from it.
    pub seq: u64,
    /// Index of the endpoint it came in on.
    pub endpoint: usize,
    /// The edge's id for the connection.
    pub connection_id: String,
    /// The client's address as the edge saw it.
    pub client_addr: SocketAddr,
    /// When it arrived.
    pub start: SystemTime,
    /// When it arrived, for the duration of an open connection.
    pub started: Instant,
    /// Its bytes as they flow, for an open connection.
    pub bytes: Arc<ByteCounts>,
    /// How it ended; `None` while open.
    pub end: Option<ConnectionEnd>,
}

/// How a recorded connection ended.
#[derive(Debug, Clone)]
pub struct ConnectionEnd {
    /// Bytes from the client to the upstream.
    pub bytes_in: u64,
    /// Bytes from the upstream to the client.
    pub bytes_out: u64,
    /// Time open.
    pub duration: Duration,
    /// Why it ended early, if it did.
    pub failure: Option<ConnectionFailure>,
}

impl CapturedConnection {
    /// The public id, `conn_<seq>`.
    pub fn id(&self) -> String {
        id_of(self.seq)
    }
}

/// The public id of the connection with sequence number `seq`.
pub fn id_of(seq: u64) -> String {
    format!("conn_{seq:012}")
}

fn seq_of(id: &str) -> Option<u64> {
    id.strip_prefix("conn_")?.parse().ok()
}

/// Connections of one endpoint since the inspector started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Connections received.
    pub total: u64,
    /// Connections open now.
    pub open: u64,
}

/// The ring and the counts; the [`super::Store`] holds it behind its lock.
#[derive(Debug, Default)]
pub(crate) struct ConnectionRing {
    entries: VecDeque<CapturedConnection>,
    next_seq: u64,
    counts: Vec<ConnectionCounts>,
}

impl ConnectionRing {
    /// Records a new connection, keeping at most `max` (the oldest go first); returns its
    /// sequence number.
    pub(crate) fn open(&mut self, meta: &ConnectionMeta, max: usize) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.push_back(CapturedConnection {
            seq,
            endpoint: meta.endpoint,
            connection_id: meta.id.clone(),
            client_addr: meta.client_addr,
            start: meta.start,
            started: Instant::now(),
            bytes: meta.bytes.clone(),
            end: None,
        });
        while self.entries.len() > max {
            self.entries.pop_front();
        }
        let counts = self.counts_mut(meta.endpoint);
        counts.total += 1;
        counts.open += 1;
        seq
    }

    /// Records how connection `seq` of `endpoint` ended (the counts even if it was evicted).
    pub(crate) fn close(&mut self, seq: u64, endpoint: usize, closed: &ConnectionClosed) {
        let counts = self.counts_mut(endpoint);
        counts.open = counts.open.saturating_sub(1);
        if let Some(entry) = self.index(seq).and_then(|i| self.entries.get_mut(i)) {
            entry.end = Some(ConnectionEnd {
                bytes_in: closed.bytes_in,
                bytes_out: closed.bytes_out,
                duration: closed.duration,
                failure: closed.failure.clone(),
            });
        }
    }

    fn counts_mut(&mut self, endpoint: usize) -> &mut ConnectionCounts {
        if self.counts.len() <= endpoint {
            self.counts
                .resize(endpoint + 1, ConnectionCounts::default());
        }
        &mut self.counts[endpoint]
    }

    /// The counts of `endpoint`.
    pub(crate) fn counts(&self, endpoint: usize) -> ConnectionCounts {
        self.counts.get(endpoint).copied().unwrap_or_default()
    }

    /// The connection with public id `id`, if still kept.
    pub(crate) fn get(&self, id: &str) -> Option<CapturedConnection> {
        let i = self.index(seq_of(id)?)?;
        self.entries.get(i).cloned()
    }

    /// Up to `limit` connections, newest first, optionally only those of `endpoint`.
    pub(crate) fn list(&self, limit: usize, endpoint: Option<usize>) -> Vec<CapturedConnection> {
        self.entries
            .iter()
            .rev()
            .filter(|c| endpoint.is_none_or(|ep| c.endpoint == ep))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Forgets the kept connections (the counts stay: they count since the start).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Entries are appended with increasing `seq` and evicted from the front.
    fn index(&self, seq: u64) -> Option<usize> {
        let first = self.entries.front()?.seq;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        (i < self.entries.len()).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(endpoint: usize) -> ConnectionMeta {
        ConnectionMeta {
            endpoint,
            id: "c".into(),
            client_addr: "192.0.2.1:5000".parse().expect("addr"),
            start: SystemTime::now(),
            bytes: Arc::default(),
        }
    }

    fn closed(bytes: u64) -> ConnectionClosed {
        ConnectionClosed {
            bytes_in: bytes,
            bytes_out: bytes,
            duration: Duration::from_millis(1),
            failure: None,
        }
    }

    #[test]
    fn keeps_the_newest_and_counts_all() {
        let mut ring = ConnectionRing::default();
        let seqs: Vec<u64> = (0..5).map(|i| ring.open(&meta(i % 2), 3)).collect();
        ring.close(seqs[0], 0, &closed(1)); // evicted: only the counts change
        ring.close(seqs[4], 0, &closed(9));
        let kept: Vec<u64> = ring.list(10, None).iter().map(|c| c.seq).collect();
        assert_eq!(kept, [4, 3, 2]);
        assert_eq!(ring.counts(0), ConnectionCounts { total: 3, open: 1 });
        assert_eq!(ring.counts(1), ConnectionCounts { total: 2, open: 2 });
        assert_eq!(ring.counts(7), ConnectionCounts::default());
        let last = ring.get(&id_of(seqs[4])).expect("kept");
        assert_eq!(last.end.as_ref().map(|e| e.bytes_in), Some(9));
        assert!(ring.get(&id_of(seqs[0])).is_none());
        assert_eq!(ring.list(10, Some(1)).len(), 1);
        ring.clear();
        assert!(ring.list(10, None).is_empty());
        assert_eq!(ring.counts(1).total, 2);
        assert!(seq_of("req_000000000001").is_none());
    }
}
