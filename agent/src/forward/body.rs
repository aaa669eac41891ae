//! The body type every agent hop uses, and small constructors for it.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Any error a body or an application service may raise.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Body type of everything the agent sends and receives.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body with nothing in it.
pub fn empty() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A body that fails when `inner` yields no frame for `limit`: an upstream that stalls in the
/// middle of a response must end in an error the client sees, not an open connection forever.
pub(crate) fn idle_timeout(inner: ProxyBody, limit: Duration) -> ProxyBody {
    IdleTimeout {
        inner,
        limit,
        timer: Box::pin(tokio::time::sleep(limit)),
    }
    .boxed_unsync()
}

/// The error an [`idle_timeout`] body ends with.
#[derive(Debug, thiserror::Error)]
#[error("upstream body idle for {0:?}")]
pub(crate) struct BodyIdle(pub(crate) Duration);

struct IdleTimeout {
    inner: ProxyBody,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + this.limit;
                this.timer.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyIdle(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
