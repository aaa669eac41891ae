//! The forwarder's one seam for watchers (request inspector, status screen): an [`Observer`]
//! sees each request as it arrives and each response as it leaves, and may wrap their bodies.

use super::body::ProxyBody;
use http::{Request, Response};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

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

/// Watches forwarded exchanges. Implementations must not block: they run on the request path.
pub trait Observer: Send + Sync + 'static {
    /// Called when a request arrives, before it is sent upstream. May wrap the body (without
    /// buffering it) and returns a watcher for this exchange's response, if it wants one.
    fn request(
        &self,
        meta: &RequestMeta,
        req: Request<ProxyBody>,
    ) -> (Request<ProxyBody>, Option<Box<dyn ExchangeObserver>>);
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
