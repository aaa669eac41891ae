//! [`AppService`]: an application's own request handler, run inside the agent's process
//! instead of behind a local port (the SDK's "hand me the requests" mode).

use super::body::{boxed, BoxError, ProxyBody};
use bytes::Bytes;
use http::{Request, Response};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

/// A cloneable, type-erased `tower` service that answers an endpoint's requests.
///
/// Requests arrive with a streaming [`ProxyBody`] (read it with
/// `http_body_util::BodyExt`). Built from any `tower::Service<Request<ProxyBody>>` with
/// [`AppService::new`], or from an async function with [`AppService::from_fn`]. A service
/// error becomes a 502 with `ERR_SLUICE_8012` for the client, as an unreachable upstream would.
#[derive(Clone)]
pub struct AppService {
    name: Arc<str>,
    inner: BoxCloneSyncService<Request<ProxyBody>, Response<ProxyBody>, BoxError>,
}

impl AppService {
    /// Wraps a tower service; `name` shows up as the upstream (`app://NAME`) in logs.
    pub fn new<S, B>(name: impl Into<String>, service: S) -> Self
    where
        S: Service<Request<ProxyBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let inner = service
            .map_response(|resp: Response<B>| resp.map(boxed))
            .map_err(Into::into);
        Self {
            name: name.into().into(),
            inner: BoxCloneSyncService::new(inner),
        }
    }

    /// Wraps an async function from request to response.
    pub fn from_fn<F, Fut, B>(name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Request<ProxyBody>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::new(
            name,
            tower::service_fn(move |req| {
                let fut = f(req);
                async move { Ok::<_, Infallible>(fut.await) }
            }),
        )
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Answers one request.
    pub fn call(
        &self,
        req: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<ProxyBody>, BoxError>> + Send + 'static {
        // An owned future (not an `async fn` borrowing `self`) keeps the forwarder's future
        // `Send` for every lifetime hyper asks about.
        self.inner.clone().oneshot(req)
    }
}

impl fmt::Debug for AppService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppService")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
