//! [`AgentStream`]: one request stream to an agent, and [`StreamPool`], the streams an agent
//! session keeps open between requests.
//!
//! A stream whose last exchange completed in both directions goes back to its session's pool
//! and carries the next request, so most requests cost no stream setup on either side. The pool
//! is small and bounded; a stream idle for too long is finished instead of reused.

use parking_lot::Mutex;
use prometheus::IntGauge;
use sluice_proto::framed::{FrameReader, FrameWriter};
use sluice_proto::link::{RecvHalf, SendHalf};
use std::time::{Duration, Instant};

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
