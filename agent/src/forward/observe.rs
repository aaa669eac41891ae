//! The forwarder's one seam for watchers (request inspector, status screen): an [`Observer`]
//! sees each request as it arrives and each response as it leaves, and may wrap their bodies;
//! it also sees each TCP connection of a `tcp://` or `tls://` endpoint open and close.

use super::body::ProxyBody;
use http::{Request, Response};
pub use sluice_proto::splice::ByteCounts;
use sluice_proto::splice::SpliceFailure;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What the forwarder knows about a request besides the request itself.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// Index of the endpoint in [`crate::AgentConfig::endpoints`].
    pub endpoint: usize,
    /// The public client's address as the edge saw it (`None` for a replay).
    pub remote_addr: Option<SocketAddr>,
    /// Id of the captured request this one replays, if it is a replay.
    pub replay_of: Option<String>,
}

/// A client connection to a `tcp://` or `tls://` endpoint, as it opens.
#[derive(Debug, Clone)]
pub struct ConnectionMeta {
    /// Index of the endpoint in [`crate::AgentConfig::endpoints`].
    pub endpoint: usize,
    /// The edge's id for the connection (also in both sides' logs).
    pub id: String,
    /// The client's address as the edge saw it.
    pub client_addr: SocketAddr,
    /// When the edge handed the connection to the agent.
    pub start: SystemTime,
    /// Its bytes so far, counted as they flow (`from_stream` is the client's, toward the
    /// upstream; `to_stream` the upstream's), for watchers that show open connections.
    pub bytes: Arc<ByteCounts>,
}

/// How a connection ended, see [`ConnectionObserver::closed`].
#[derive(Debug, Clone)]
pub struct ConnectionClosed {
    /// Bytes from the client to the upstream.
    pub bytes_in: u64,
    /// Bytes from the upstream to the client.
    pub bytes_out: u64,
    /// Time from the connection's start to its end.
    pub duration: Duration,
    /// Why it ended early; `None` when both directions ended cleanly.
    pub failure: Option<ConnectionFailure>,
}

/// Why a connection ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionFailure {
    /// The upstream could not be reached: no byte was moved.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The bytes stopped flowing: the tunnel stream or a socket broke.
    #[error(transparent)]
    Broken(#[from] SpliceFailure),
}

/// Watches forwarded exchanges. Implementations must not block: they run on the request path.
pub trait Observer: Send + Sync + 'static {
    /// Called when a request arrives, before it is sent upstream. May wrap the body (without
    /// buffering it) and returns a watcher for this exchange's response, if it wants one.
    fn request(
        &self,
        meta: &RequestMeta,
        req: Request<ProxyBody>,
    ) -> (Request<ProxyBody>, Option<Box<dyn ExchangeObserver>>);

    /// Called when a TCP connection arrives, before its upstream is dialled; returns a watcher
    /// for its end, if it wants one. The default watches nothing, so an observer of requests
    /// only costs connections nothing.
    fn connection(&self, meta: &ConnectionMeta) -> Option<Box<dyn ConnectionObserver>> {
        let _ = meta;
        None
    }
}

/// Watches one TCP connection's end.
pub trait ConnectionObserver: Send {
    /// Called once, when both directions are done or the connection failed.
    fn closed(self: Box<Self>, closed: &ConnectionClosed);
}

/// Watches one exchange's response.
pub trait ExchangeObserver: Send {
    /// Called with the response head (upstream's or the agent's own error); may wrap the body.
    fn response(self: Box<Self>, resp: Response<ProxyBody>) -> Response<ProxyBody>;
}

/// Several observers in order; each sees what the previous one returned.
#[derive(Clone, Default)]
pub struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    /// No observers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `observer` after the others.
    pub fn push(&mut self, observer: Arc<dyn Observer>) {
        self.0.push(observer);
    }

    /// Runs every observer on `req`; the returned [`Exchange`] takes the response.
    pub(crate) fn request(
        &self,
        meta: &RequestMeta,
        mut req: Request<ProxyBody>,
    ) -> (Request<ProxyBody>, Exchange) {
        let mut watchers = Vec::new();
        for observer in &self.0 {
            let (r, watcher) = observer.request(meta, req);
            req = r;
            watchers.extend(watcher);
        }
        (req, Exchange(watchers))
    }

    /// Runs every observer on a new connection; the returned [`Connection`] takes its end.
    /// Allocates nothing unless an observer watches connections.
    pub(crate) fn connection(&self, meta: &ConnectionMeta) -> Connection {
        Connection(
            self.0
                .iter()
                .filter_map(|observer| observer.connection(meta))
                .collect(),
        )
    }
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Observers({})", self.0.len())
    }
}

/// The watchers of one exchange, see [`Observers::request`].
pub(crate) struct Exchange(Vec<Box<dyn ExchangeObserver>>);

impl Exchange {
    /// Hands the response to every watcher in order.
    pub(crate) fn response(self, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
        for watcher in self.0 {
            resp = watcher.response(resp);
        }
        resp
    }
}

/// The watchers of one connection, see [`Observers::connection`].
pub(crate) struct Connection(Vec<Box<dyn ConnectionObserver>>);

impl Connection {
    /// Hands the connection's end to every watcher in order.
    pub(crate) fn closed(self, closed: &ConnectionClosed) {
        for watcher in self.0 {
            watcher.closed(closed);
        }
    }
}
