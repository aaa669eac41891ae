//! The capture ring: recent exchanges in memory only, bounded by count and by bytes, oldest
//! evicted first, beside the TCP connections' ring; every change is announced on a broadcast
//! channel for live updates.

use super::connections::{CapturedConnection, ConnectionCounts, ConnectionRing};
use crate::forward::observe::{ConnectionClosed, ConnectionMeta};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// How much the ring keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most exchanges kept; also the most TCP connections kept (in their own ring, not
    /// counted against `max_bytes`: they have no bodies).
    pub max_requests: usize,
    /// Most bytes kept (captured bodies plus an estimate of heads), over all exchanges.
    pub max_bytes: usize,
    /// Bodies are captured up to this many bytes each; the rest streams through uncaptured.
    pub body_limit: usize,
}

impl Default for Limits {
    /// 500 exchanges, 50 MiB (ngrok's `inspect_db_size` default), bodies cut at 256 KiB.
    fn default() -> Self {
        Self {
            max_requests: 500,
            max_bytes: 50 * 1024 * 1024,
            body_limit: 256 * 1024,
        }
    }
}

/// Which body of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request body.
    Request,
    /// The response body.
    Response,
}

/// A body as captured: the first `body_limit` bytes and what was seen in total.
#[derive(Debug, Clone, Default)]
pub struct BodyCapture {
    /// The captured prefix.
    pub bytes: Bytes,
    /// Bytes seen in total (captured or not).
    pub size: u64,
    /// Whether bytes beyond the captured prefix were seen.
    pub truncated: bool,
    /// Whether the body ended normally (false if it failed or was abandoned).
    pub complete: bool,
}

/// Head of a captured request.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Request target as received (`/path?query`).
    pub uri: Uri,
    /// HTTP version.
    pub version: Version,
    /// Headers as received from the edge.
    pub headers: HeaderMap,
}

/// Head of a captured response.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// Status.
    pub status: StatusCode,
    /// HTTP version.
    pub version: Version,
    /// Headers as sent back to the edge.
    pub headers: HeaderMap,
}

/// One captured exchange.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Position in capture order; the public id is derived from it.
    pub seq: u64,
    /// Index of the endpoint it came in on.
    pub endpoint: usize,
    /// The public client's address (`None` for replays).
    pub remote_addr: Option<SocketAddr>,
    /// Id of the exchange this one replays.
    pub replay_of: Option<String>,
    /// When the request arrived.
    pub start: SystemTime,
    /// The request head.
    pub request: RequestHead,
    /// The request body once it has ended.
    pub request_body: Option<BodyCapture>,
    /// The response head once it has arrived.
    pub response: Option<ResponseHead>,
    /// The response body once it has ended.
    pub response_body: Option<BodyCapture>,
    /// Time from the request's arrival to the response head.
    pub duration: Option<Duration>,
}

impl Captured {
    /// The public id, `req_<seq>`.
    pub fn id(&self) -> String {
        id_of(self.seq)
    }

    /// Bytes this exchange counts against [`Limits::max_bytes`].
    fn cost(&self) -> usize {
        const OVERHEAD: usize = 256;
        let heads = headers_len(&self.request.headers)
            + self.request.uri.to_string().len()
            + self
                .response
                .as_ref()
                .map_or(0, |r| headers_len(&r.headers));
        let bodies = [&self.request_body, &self.response_body]
            .iter()
            .map(|b| b.as_ref().map_or(0, |b| b.bytes.len()))
            .sum::<usize>();
        OVERHEAD + heads + bodies
    }
}

fn headers_len(h: &HeaderMap) -> usize {
    h.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum()
}

/// The public id of the exchange with sequence number `seq`.
pub fn id_of(seq: u64) -> String {
    format!("req_{seq:012}")
}

fn seq_of(id: &str) -> Option<u64> {
    id.strip_prefix("req_")?.parse().ok()
}

/// A change to the ring, as announced to live listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This exchange was added or updated.
    Updated(String),
    /// Everything was deleted.
    Cleared,
    /// This connection opened or closed.
    Connection(String),
    /// Every kept connection was deleted.
    ConnectionsCleared,
}

#[derive(Default)]
struct Ring {
    entries: VecDeque<Captured>,
    bytes: usize,
    next_seq: u64,
}

/// The capture ring, shared by the capture observer and the inspector's API.
pub struct Store {
    limits: Limits,
    ring: Mutex<Ring>,
    connections: Mutex<ConnectionRing>,
    changes: broadcast::Sender<Change>,
}

impl Store {
    /// An empty ring with `limits`.
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            ring: Mutex::new(Ring::default()),
            connections: Mutex::new(ConnectionRing::default()),
            changes: broadcast::channel(256).0,
        })
    }

    /// The ring's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves the ring consistent enough to keep serving.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Live changes from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Records a new request; returns its sequence number.
    pub(crate) fn begin(
        &self,
        endpoint: usize,
        remote_addr: Option<SocketAddr>,
        replay_of: Option<String>,
        request: RequestHead,
    ) -> u64 {
        let mut ring = self.ring();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let entry = Captured {
            seq,
            endpoint,
            remote_addr,
            replay_of,
            start: SystemTime::now(),
            request,
            request_body: None,
            response: None,
            response_body: None,
            duration: None,
        };
        ring.bytes += entry.cost();
        ring.entries.push_back(entry);
        self.evict(&mut ring);
        drop(ring);
        let _ = self.changes.send(Change::Updated(id_of(seq)));
        seq
    }

    /// Records the response head of exchange `seq` (ignored if it was evicted).
    pub(crate) fn respond(&self, seq: u64, head: ResponseHead, duration: Duration) {
        self.update(seq, |e| {
            e.response = Some(head);
            e.duration = Some(duration);
        });
    }

    /// Records a finished body of exchange `seq` (ignored if it was evicted).
    pub(crate) fn body(&self, seq: u64, side: Side, body: BodyCapture) {
        self.update(seq, |e| match side {
            Side::Request => e.request_body = Some(body),
            Side::Response => e.response_body = Some(body),
        });
    }

    fn update(&self, seq: u64, change: impl FnOnce(&mut Captured)) {
        let mut ring = self.ring();
        let Some(i) = index(&ring, seq) else { return };
        let entry = &mut ring.entries[i];
        let before = entry.cost();
        change(entry);
        let after = entry.cost();
        ring.bytes = ring.bytes - before + after;
        self.evict(&mut ring);
        drop(ring);
        let _ = self.changes.send(Change::Updated(id_of(seq)));
    }

    fn evict(&self, ring: &mut Ring) {
        while ring.entries.len() > self.limits.max_requests || ring.bytes > self.limits.max_bytes {
            match ring.entries.pop_front() {
                Some(old) => ring.bytes -= old.cost(),
                None => break,
            }
        }
    }

    /// The exchange with public id `id`, if still kept.
    pub(crate) fn get(&self, id: &str) -> Option<Captured> {
        let seq = seq_of(id)?;
        let ring = self.ring();
        index(&ring, seq).map(|i| ring.entries[i].clone())
    }

    /// Up to `limit` exchanges, newest first, optionally only those of `endpoint`.
    pub(crate) fn list(&self, limit: usize, endpoint: Option<usize>) -> Vec<Captured> {
        self.ring()
            .entries
            .iter()
            .rev()
            .filter(|e| endpoint.is_none_or(|ep| e.endpoint == ep))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Exchanges and bytes currently kept.
    pub fn usage(&self) -> (usize, usize) {
        let ring = self.ring();
        (ring.entries.len(), ring.bytes)
    }

    /// Deletes every exchange.
    pub(crate) fn clear(&self) {
        let mut ring = self.ring();
        ring.entries.clear();
        ring.bytes = 0;
        drop(ring);
        let _ = self.changes.send(Change::Cleared);
    }
}

/// The TCP connections' side.
impl Store {
    fn connection_ring(&self) -> MutexGuard<'_, ConnectionRing> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a connection as it opens; returns its sequence number.
    pub(crate) fn open_connection(&self, meta: &ConnectionMeta) -> u64 {
        let seq = self.connection_ring().open(meta, self.limits.max_requests);
        let _ = self
            .changes
            .send(Change::Connection(super::connections::id_of(seq)));
        seq
    }

    /// Records how connection `seq` of `endpoint` ended.
    pub(crate) fn close_connection(&self, seq: u64, endpoint: usize, closed: &ConnectionClosed) {
        self.connection_ring().close(seq, endpoint, closed);
        let _ = self
            .changes
            .send(Change::Connection(super::connections::id_of(seq)));
    }

    /// The connection with public id `id`, if still kept.
    pub(crate) fn connection(&self, id: &str) -> Option<CapturedConnection> {
        self.connection_ring().get(id)
    }

    /// Up to `limit` connections, newest first, optionally only those of `endpoint`.
    pub(crate) fn connections(
        &self,
        limit: usize,
        endpoint: Option<usize>,
    ) -> Vec<CapturedConnection> {
        self.connection_ring().list(limit, endpoint)
    }

    /// Connections of `endpoint` since the start: total and open now.
    pub fn connection_counts(&self, endpoint: usize) -> ConnectionCounts {
        self.connection_ring().counts(endpoint)
    }

    /// Deletes every kept connection.
    pub(crate) fn clear_connections(&self) {
        self.connection_ring().clear();
        let _ = self.changes.send(Change::ConnectionsCleared);
    }
}

/// Entries are appended with increasing `seq` and evicted from the front, so they are
/// contiguous and the index is an offset.
fn index(ring: &Ring, seq: u64) -> Option<usize> {
    let first = ring.entries.front()?.seq;
    let i = usize::try_from(seq.checked_sub(first)?).ok()?;
    (i < ring.entries.len()).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str) -> RequestHead {
        RequestHead {
            method: Method::GET,
            uri: path.parse().expect("uri"),
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
        }
    }

    fn body(n: usize) -> BodyCapture {
        BodyCapture {
            bytes: Bytes::from(vec![b'x'; n]),
            size: n as u64,
            truncated: false,
            complete: true,
        }
    }

    #[test]
    fn evicts_oldest_by_count() {
        let store = Store::new(Limits {
            max_requests: 3,
            ..Limits::default()
        });
        let seqs: Vec<u64> = (0..5)
            .map(|i| store.begin(0, None, None, head(&format!("/{i}"))))
            .collect();
        let kept: Vec<String> = store
            .list(10, None)
            .iter()
            .map(|e| e.request.uri.to_string())
            .collect();
        assert_eq!(kept, ["/4", "/3", "/2"]);
        assert!(store.get(&id_of(seqs[1])).is_none());
        assert!(store.get(&id_of(seqs[2])).is_some());
    }

    #[test]
    fn evicts_oldest_by_bytes_and_accounts_updates() {
        let store = Store::new(Limits {
            max_requests: 100,
            max_bytes: 10_000,
            body_limit: 4_000,
        });
        let a = store.begin(0, None, None, head("/a"));
        store.body(a, Side::Request, body(4_000));
        let b = store.begin(0, None, None, head("/b"));
        store.body(b, Side::Response, body(4_000));
        assert!(store.get(&id_of(a)).is_some());
        let c = store.begin(0, None, None, head("/c"));
        store.body(c, Side::Response, body(4_000));
        assert!(store.get(&id_of(a)).is_none(), "a must be evicted to fit c");
        let (count, bytes) = store.usage();
        assert_eq!(count, 2);
        assert!(bytes <= 10_000, "{bytes}");
        // A body for an evicted exchange is dropped, not resurrected.
        store.body(a, Side::Response, body(10));
        assert_eq!(store.usage().0, 2);
    }

    #[test]
    fn filters_by_endpoint_and_clears() {
        let store = Store::new(Limits::default());
        store.begin(0, None, None, head("/zero"));
        store.begin(1, None, None, head("/one"));
        let only_one = store.list(10, Some(1));
        assert_eq!(only_one.len(), 1);
        assert_eq!(only_one[0].request.uri.path(), "/one");
        let mut changes = store.subscribe();
        store.clear();
        assert_eq!(store.usage(), (0, 0));
        assert_eq!(changes.try_recv().ok(), Some(Change::Cleared));
        assert!(seq_of("nope").is_none() && seq_of("req_x").is_none());
    }
}
