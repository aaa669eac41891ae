//! [`AgentStream`]: one request stream to an agent, [`StreamPool`], the streams an agent
//! session keeps open between requests, and [`StreamLink`], a link with its pool: what an
//! exchange opens streams on, whether the link goes to an agent or to another edge.
//!
//! A stream whose last exchange completed in both directions goes back to its session's pool
//! and carries the next request, so most requests cost no stream setup on either side. The pool
//! is small and bounded; a stream idle for too long is finished instead of reused.

use super::liveness::Liveness;
use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use prometheus::IntGauge;
use sluice_proto::framed::{FrameReader, FrameWriter};
use sluice_proto::link::{Link, RecvHalf, SendHalf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Idle streams one session keeps at most; more are finished.
const MAX_IDLE: usize = 64;

/// An idle stream older than this is finished instead of reused, so an agent that is quiet
/// for a while holds no streams.
const MAX_IDLE_FOR: Duration = Duration::from_secs(30);

/// Both halves of one request stream, counted in the open-streams gauge while they live.
#[derive(Debug)]
pub struct AgentStream {
    /// The edge's half: request frames.
    pub writer: FrameWriter,
    /// The agent's half: response frames.
    pub reader: FrameReader,
    _open: OpenStream,
}

impl AgentStream {
    /// A newly opened stream.
    pub fn new(send: SendHalf, recv: RecvHalf, gauge: &IntGauge) -> Self {
        Self {
            writer: FrameWriter::new(send),
            reader: FrameReader::new(recv),
            _open: OpenStream::new(gauge),
        }
    }

    /// The stream id, for logs.
    pub fn id(&self) -> u64 {
        self.reader.id()
    }
}

/// Counts a stream in the open-streams gauge until dropped.
#[derive(Debug)]
struct OpenStream(IntGauge);

impl OpenStream {
    fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Idle streams of one agent session, most recently used last.
#[derive(Debug)]
pub struct StreamPool {
    idle: Mutex<Vec<(AgentStream, Instant)>>,
    /// Off: every request opens its own stream (measured against reuse in the compare bench,
    /// `SLUICE_AGENT_STREAM_REUSE=0`).
    reuse: bool,
}

impl Default for StreamPool {
    fn default() -> Self {
        Self {
            idle: Mutex::default(),
            reuse: std::env::var("SLUICE_AGENT_STREAM_REUSE").map_or(true, |v| v != "0"),
        }
    }
}

impl StreamPool {
    /// The most recently used idle stream that is still fresh, if any.
    pub fn take(&self) -> Option<AgentStream> {
        let mut idle = self.idle.lock();
        let now = Instant::now();
        while let Some((stream, since)) = idle.pop() {
            if now.duration_since(since) < MAX_IDLE_FOR {
                return Some(stream);
            }
            finish(stream);
        }
        None
    }

    /// Keeps `stream` for the next request; a full pool finishes its oldest stream instead.
    pub fn put(&self, stream: AgentStream) {
        if !self.reuse {
            return finish(stream);
        }
        let mut idle = self.idle.lock();
        if idle.len() >= MAX_IDLE {
            let (oldest, _) = idle.remove(0);
            finish(oldest);
        }
        idle.push((stream, Instant::now()));
    }
}

/// Ends an idle stream cleanly: the agent sees the end between frames and lets it go.
fn finish(mut stream: AgentStream) {
    stream.writer.finish();
}

/// Why no stream could be had on a link.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The link ended: nothing reached the far side, so the exchange may go elsewhere.
    #[error("the link ended: {0}")]
    Gone(String),
    /// The far side granted no stream in time (it is at its concurrent-stream limit).
    #[error("no stream granted in time")]
    Busy,
}

/// A link that carries request streams, with the streams kept open on it between requests
/// and the watch on requests waiting over it: an agent's session, or (in a cluster) the link
/// to the edge that holds an endpoint.
#[derive(Debug)]
pub struct StreamLink {
    /// The link (QUIC, or HTTP/2 over TLS over TCP).
    pub conn: Link,
    /// Streams kept open between requests.
    pub pool: StreamPool,
    /// The open-streams gauge, raised while a stream on this link lives.
    pub open_gauge: IntGauge,
    /// Requests waiting on the far side, for the link's liveness watch.
    pub liveness: Arc<Liveness>,
}

impl StreamLink {
    /// `conn`, its streams counted in `open_gauge`.
    pub fn new(conn: Link, open_gauge: IntGauge) -> Self {
        Self {
            conn,
            pool: StreamPool::default(),
            open_gauge,
            liveness: Arc::default(),
        }
    }

    /// Whether the link is still up.
    pub fn is_alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// A stream for a new exchange: an idle one from the pool, else a new one if the far side
    /// grants it within `wait`.
    pub async fn stream(&self, wait: Duration) -> Result<AgentStream, OpenError> {
        if !self.is_alive() {
            return Err(OpenError::Gone("closed".to_string()));
        }
        if let Some(stream) = self.pool.take() {
            return Ok(stream);
        }
        match tokio::time::timeout(wait, self.conn.open_bi()).await {
            Err(_) => Err(OpenError::Busy),
            Ok(Err(e)) => Err(OpenError::Gone(e.to_string())),
            Ok(Ok((send, recv))) => Ok(AgentStream::new(send, recv, &self.open_gauge)),
        }
    }
}

/// The link to a far side that may be down at the moment (another edge, redialled by its
/// owner): requests use the current one, and a member behind an empty slot is not alive.
#[derive(Debug, Default)]
pub struct LinkSlot {
    current: ArcSwapOption<StreamLink>,
    changed: Notify,
}

impl LinkSlot {
    /// The live link, if there is one now.
    pub fn current(&self) -> Option<Arc<StreamLink>> {
        self.current.load_full().filter(|link| link.is_alive())
    }

    /// The live link, waiting up to `limit` for one (a link being dialled, the first time a
    /// request needs it).
    pub async fn wait(&self, limit: Duration) -> Option<Arc<StreamLink>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if let Some(link) = self.current() {
                return Some(link);
            }
            tokio::time::timeout_at(deadline, changed).await.ok()?;
        }
    }

    /// Puts `link` in (or takes the link out, with `None`).
    pub fn set(&self, link: Option<Arc<StreamLink>>) {
        self.current.store(link);
        self.changed.notify_waiters();
    }
}
