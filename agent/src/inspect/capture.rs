//! The capture observer: records each exchange's heads in the [`Store`] and tees its bodies
//! into it up to the body limit while they stream, never holding more than that; records each
//! TCP connection as it opens and closes.

use super::store::{BodyCapture, RequestHead, ResponseHead, Side, Store};
use crate::forward::body::ProxyBody;
use crate::forward::observe::{
    ConnectionClosed, ConnectionMeta, ConnectionObserver, ExchangeObserver, Observer, RequestMeta,
};
use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// Records every exchange into a [`Store`].
pub struct Capture {
    store: Arc<Store>,
}

impl Capture {
    /// A capture observer writing to `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }
}

impl Observer for Capture {
    fn request(
        &self,
        meta: &RequestMeta,
        req: Request<ProxyBody>,
    ) -> (Request<ProxyBody>, Option<Box<dyn ExchangeObserver>>) {
        let (parts, body) = req.into_parts();
        let head = RequestHead {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
        };
        let seq = self.store.begin(
            meta.endpoint,
            meta.remote_addr,
            meta.replay_of.clone(),
            head,
        );
        let body = TeeBody::new(body, self.sink(seq, Side::Request)).boxed_unsync();
        let watcher = ResponseCapture {
            store: self.store.clone(),
            seq,
            started: Instant::now(),
        };
        (Request::from_parts(parts, body), Some(Box::new(watcher)))
    }

    fn connection(&self, meta: &ConnectionMeta) -> Option<Box<dyn ConnectionObserver>> {
        let seq = self.store.open_connection(meta);
        Some(Box::new(ConnectionCapture {
            store: self.store.clone(),
            seq,
            endpoint: meta.endpoint,
        }))
    }
}

struct ConnectionCapture {
    store: Arc<Store>,
    seq: u64,
    endpoint: usize,
}

impl ConnectionObserver for ConnectionCapture {
    fn closed(self: Box<Self>, closed: &ConnectionClosed) {
        self.store.close_connection(self.seq, self.endpoint, closed);
    }
}

impl Capture {
    fn sink(&self, seq: u64, side: Side) -> Sink {
        Sink {
            store: self.store.clone(),
            seq,
            side,
        }
    }
}

struct ResponseCapture {
    store: Arc<Store>,
    seq: u64,
    started: Instant,
}

impl ExchangeObserver for ResponseCapture {
    fn response(self: Box<Self>, resp: Response<ProxyBody>) -> Response<ProxyBody> {
        let (parts, body) = resp.into_parts();
        let head = ResponseHead {
            status: parts.status,
            version: parts.version,
            headers: parts.headers.clone(),
        };
        self.store.respond(self.seq, head, self.started.elapsed());
        let sink = Sink {
            store: self.store.clone(),
            seq: self.seq,
            side: Side::Response,
        };
        Response::from_parts(parts, TeeBody::new(body, sink).boxed_unsync())
    }
}

/// Where a finished body capture goes.
struct Sink {
    store: Arc<Store>,
    seq: u64,
    side: Side,
}

/// A body that passes every frame through unchanged and copies data into a capture buffer
/// until the limit; the capture is stored when the body ends, fails or is dropped.
pub struct TeeBody {
    inner: ProxyBody,
    captured: BytesMut,
    size: u64,
    truncated: bool,
    limit: usize,
    sink: Option<Sink>,
}

impl TeeBody {
    fn new(inner: ProxyBody, sink: Sink) -> Self {
        let limit = sink.store.limits().body_limit;
        Self {
            inner,
            captured: BytesMut::new(),
            size: 0,
            truncated: false,
            limit,
            sink: Some(sink),
        }
    }

    fn copy(&mut self, data: &Bytes) {
        self.size += data.len() as u64;
        let room = self.limit.saturating_sub(self.captured.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.captured
            .extend_from_slice(&data[..data.len().min(room)]);
    }

    fn finish(&mut self, complete: bool) {
        if let Some(sink) = self.sink.take() {
            let capture = BodyCapture {
                bytes: std::mem::take(&mut self.captured).freeze(),
                size: self.size,
                truncated: self.truncated,
                complete,
            };
            sink.store.body(sink.seq, sink.side, capture);
        }
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = crate::forward::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.copy(data);
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // An empty body may never be polled; one dropped midway was cut off.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}
