//! Traffic numbers for the status screen: request counters, rates over one and five minutes,
//! latency percentiles, and the last requests; for TCP endpoints, connection counters, the
//! open connections and the last closed ones. Fed by an [`Observer`] on the forwarder.

use http::{Method, Request, Response, StatusCode};
use sluice_agent::body::ProxyBody;
use sluice_agent::observe::{
    ByteCounts, ConnectionClosed, ConnectionMeta, ConnectionObserver, ExchangeObserver, Observer,
    RequestMeta,
};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Latencies kept for the percentiles.
const LATENCY_WINDOW: usize = 1000;
/// Last requests kept for the list.
const RECENT: usize = 50;
/// Seconds of per-second counts kept for the rates.
const RATE_WINDOW_SECS: u64 = 300;

/// One line of the request list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Response status.
    pub status: StatusCode,
    /// Time to the response head.
    pub duration: Duration,
}

/// One line of the connection list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLine {
    /// The client's address.
    pub client: SocketAddr,
    /// Bytes from the client and to it: so far while open, in total once closed.
    pub bytes: (u64, u64),
    /// Time open so far, or in total once closed.
    pub duration: Duration,
    /// Where it stands.
    pub state: ConnectionState,
}

/// Where a listed connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Bytes are still flowing.
    Open,
    /// Both directions ended cleanly.
    Closed,
    /// It ended early; why.
    Failed(String),
}

/// Connection numbers, for one redraw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connections {
    /// Connections received in total.
    pub total: u64,
    /// Connections open now.
    pub open: u64,
    /// The open connections (newest first), then the last closed ones (newest first).
    pub lines: Vec<ConnectionLine>,
}

/// A snapshot of the numbers, for one redraw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Requests received in total.
    pub total: u64,
    /// Requests waiting for their response head.
    pub open: u64,
    /// Requests per second over the last minute.
    pub rate1: f64,
    /// Requests per second over the last five minutes.
    pub rate5: f64,
    /// Median time to response head of the recent requests.
    pub p50: Option<Duration>,
    /// 90th percentile of the same.
    pub p90: Option<Duration>,
    /// The last requests, newest first.
    pub recent: Vec<RequestLine>,
    /// TCP connections (all zero for HTTP endpoints).
    pub connections: Connections,
}

/// The live counters.
pub struct Stats {
    started: Instant,
    inner: Mutex<Inner>,
}

/// A connection while it is open.
struct OpenConnection {
    client: SocketAddr,
    start: Instant,
    /// Its bytes as they flow.
    bytes: Arc<ByteCounts>,
}

#[derive(Default)]
struct Inner {
    total: u64,
    open: u64,
    /// (second since start, requests in that second), oldest first.
    per_second: VecDeque<(u64, u32)>,
    latencies: VecDeque<Duration>,
    recent: VecDeque<RequestLine>,
    connections_total: u64,
    /// Open connections by arrival number.
    open_connections: BTreeMap<u64, OpenConnection>,
    /// Closed connections, newest first.
    closed_connections: VecDeque<ConnectionLine>,
}

impl Stats {
    /// Empty counters; rates are measured from now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a request that arrived at `at`.
    pub fn arrived(&self, at: Instant) {
        let sec = at.saturating_duration_since(self.started).as_secs();
        let mut inner = self.inner();
        inner.total += 1;
        inner.open += 1;
        match inner.per_second.back_mut() {
            Some((s, n)) if *s == sec => *n += 1,
            _ => inner.per_second.push_back((sec, 1)),
        }
        while inner
            .per_second
            .front()
            .is_some_and(|(s, _)| s + RATE_WINDOW_SECS < sec)
        {
            inner.per_second.pop_front();
        }
    }

    /// Records the response head of a request.
    pub fn answered(&self, line: RequestLine) {
        let mut inner = self.inner();
        inner.open = inner.open.saturating_sub(1);
        inner.latencies.push_back(line.duration);
        if inner.latencies.len() > LATENCY_WINDOW {
            inner.latencies.pop_front();
        }
        inner.recent.push_front(line);
        inner.recent.truncate(RECENT);
    }

    /// Counts a connection from `client` that opened at `start`, whose bytes so far are in
    /// `bytes`; returns its number for [`Stats::connection_closed`].
    pub fn connection_opened(
        &self,
        client: SocketAddr,
        start: Instant,
        bytes: Arc<ByteCounts>,
    ) -> u64 {
        let mut inner = self.inner();
        let number = inner.connections_total;
        inner.connections_total += 1;
        let open = OpenConnection {
            client,
            start,
            bytes,
        };
        inner.open_connections.insert(number, open);
        number
    }

    /// Records how connection `number` ended.
    pub fn connection_closed(&self, number: u64, closed: &ConnectionClosed) {
        let mut inner = self.inner();
        let Some(open) = inner.open_connections.remove(&number) else {
            return;
        };
        let line = ConnectionLine {
            client: open.client,
            bytes: (closed.bytes_in, closed.bytes_out),
            duration: closed.duration,
            state: match &closed.failure {
                None => ConnectionState::Closed,
                Some(f) => ConnectionState::Failed(f.to_string()),
            },
        };
        inner.closed_connections.push_front(line);
        inner.closed_connections.truncate(RECENT);
    }

    /// The numbers as of `now`.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let sec = now.saturating_duration_since(self.started).as_secs();
        let inner = self.inner();
        let in_last = |secs: u64| -> u64 {
            inner
                .per_second
                .iter()
                .filter(|(s, _)| s + secs > sec)
                .map(|(_, n)| u64::from(*n))
                .sum()
        };
        // Before a full window has passed, average over the time actually elapsed.
        let elapsed = (sec + 1) as f64;
        let rate = |secs: u64| in_last(secs) as f64 / elapsed.min(secs as f64);
        let mut sorted: Vec<Duration> = inner.latencies.iter().copied().collect();
        sorted.sort_unstable();
        Snapshot {
            total: inner.total,
            open: inner.open,
            rate1: rate(60),
            rate5: rate(RATE_WINDOW_SECS),
            p50: percentile(&sorted, 50),
            p90: percentile(&sorted, 90),
            recent: inner.recent.iter().cloned().collect(),
            connections: connections(&inner, now),
        }
    }
}

/// The connection numbers: open ones first (at most [`RECENT`]), then the last closed ones.
fn connections(inner: &Inner, now: Instant) -> Connections {
    let open = inner
        .open_connections
        .values()
        .rev()
        .take(RECENT)
        .map(|open| ConnectionLine {
            client: open.client,
            bytes: (open.bytes.from_stream(), open.bytes.to_stream()),
            duration: now.saturating_duration_since(open.start),
            state: ConnectionState::Open,
        });
    Connections {
        total: inner.connections_total,
        open: inner.open_connections.len() as u64,
        lines: open
            .chain(inner.closed_connections.iter().cloned())
            .collect(),
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Feeds [`Stats`] from the forwarder.
pub struct StatsObserver(pub Arc<Stats>);

impl Observer for StatsObserver {
    fn request(
        &self,
        _meta: &RequestMeta,
        req: Request<ProxyBody>,
    ) -> (Request<ProxyBody>, Option<Box<dyn ExchangeObserver>>) {
        let started = Instant::now();
        self.0.arrived(started);
        let watcher = Answer {
            stats: self.0.clone(),
            method: req.method().clone(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.to_string()),
            started,
        };
        (req, Some(Box::new(watcher)))
    }

    fn connection(&self, meta: &ConnectionMeta) -> Option<Box<dyn ConnectionObserver>> {
        let number = self
            .0
            .connection_opened(meta.client_addr, Instant::now(), meta.bytes.clone());
        Some(Box::new(Closing {
            stats: self.0.clone(),
            number,
        }))
    }
}

struct Closing {
    stats: Arc<Stats>,
    number: u64,
}

impl ConnectionObserver for Closing {
    fn closed(self: Box<Self>, closed: &ConnectionClosed) {
        self.stats.connection_closed(self.number, closed);
    }
}

struct Answer {
    stats: Arc<Stats>,
    method: Method,
    path: String,
    started: Instant,
}

impl ExchangeObserver for Answer {
    fn response(self: Box<Self>, resp: Response<ProxyBody>) -> Response<ProxyBody> {
        self.stats.answered(RequestLine {
            method: self.method,
            path: self.path,
            status: resp.status(),
            duration: self.started.elapsed(),
        });
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ms: u64) -> RequestLine {
        RequestLine {
            method: Method::GET,
            path: format!("/{ms}"),
            status: StatusCode::OK,
            duration: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counts_rates_and_percentiles() {
        let stats = Stats::new();
        let t0 = stats.started;
        for i in 0..10 {
            stats.arrived(t0 + Duration::from_secs(i));
        }
        for ms in 1..=10 {
            stats.answered(line(ms));
        }
        stats.arrived(t0 + Duration::from_secs(9));
        let s = stats.snapshot(t0 + Duration::from_secs(9));
        assert_eq!((s.total, s.open), (11, 1));
        // 11 requests in the 10 seconds elapsed.
        assert!((s.rate1 - 1.1).abs() < 1e-9, "{}", s.rate1);
        assert_eq!(s.p50, Some(Duration::from_millis(5)));
        assert_eq!(s.p90, Some(Duration::from_millis(9)));
        assert_eq!(s.recent[0].path, "/10", "newest first");
        // Two minutes later the one-minute rate has emptied, the five-minute one has not.
        let later = stats.snapshot(t0 + Duration::from_secs(130));
        assert_eq!(later.rate1, 0.0);
        assert!((later.rate5 - 11.0 / 131.0).abs() < 1e-9, "{}", later.rate5);
    }

    #[test]
    fn windows_stay_bounded() {
        let stats = Stats::new();
        let t0 = stats.started;
        for i in 0..2000u64 {
            stats.arrived(t0 + Duration::from_secs(i));
            stats.answered(line(i));
        }
        let inner = stats.inner();
        assert!(inner.per_second.len() <= RATE_WINDOW_SECS as usize + 1);
        assert_eq!(inner.latencies.len(), LATENCY_WINDOW);
        assert_eq!(inner.recent.len(), RECENT);
    }

    #[test]
    fn lists_open_connections_then_the_last_closed() {
        let stats = Stats::new();
        let t0 = stats.started;
        let client = |port| SocketAddr::from(([192, 0, 2, 1], port));
        let numbers: Vec<u64> = (0..RECENT as u16 + 3)
            .map(|i| stats.connection_opened(client(i), t0, Arc::default()))
            .collect();
        for &n in &numbers[..RECENT + 1] {
            let failure = (n == 0)
                .then(|| sluice_agent::observe::ConnectionFailure::Unreachable("refused".into()));
            stats.connection_closed(
                n,
                &ConnectionClosed {
                    bytes_in: n,
                    bytes_out: 2 * n,
                    duration: Duration::from_millis(n),
                    failure,
                },
            );
        }
        // Closing twice (or an unknown number) changes nothing.
        stats.connection_closed(
            numbers[1],
            &ConnectionClosed {
                bytes_in: 0,
                bytes_out: 0,
                duration: Duration::ZERO,
                failure: None,
            },
        );
        let c = stats.snapshot(t0 + Duration::from_secs(2)).connections;
        assert_eq!((c.total, c.open), (RECENT as u64 + 3, 2));
        assert_eq!(
            c.lines.len(),
            2 + RECENT,
            "open ones, then the closed ones kept"
        );
        assert_eq!(
            c.lines[0].client,
            client(RECENT as u16 + 2),
            "newest open first"
        );
        assert_eq!(c.lines[0].state, ConnectionState::Open);
        assert_eq!(c.lines[0].duration, Duration::from_secs(2));
        assert_eq!(c.lines[2].bytes, (RECENT as u64, 2 * RECENT as u64));
        assert_eq!(c.lines[2].state, ConnectionState::Closed);
        assert!(
            !c.lines.iter().any(|l| l.client == client(0)),
            "the oldest closed one fell off"
        );
    }

    #[test]
    fn percentile_edges() {
        assert_eq!(percentile(&[], 50), None);
        let one = [Duration::from_millis(7)];
        assert_eq!(percentile(&one, 50), Some(one[0]));
        assert_eq!(percentile(&one, 90), Some(one[0]));
    }
}
