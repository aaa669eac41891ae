//! One request stream from the edge: frames in, an `http::Request` to the endpoint's handler,
//! frames out. When both directions ended cleanly the same stream carries the edge's next
//! request; after a `101` it carries the upgraded connection's bytes both ways. A stream that
//! opens with a connect frame carries one TCP connection (`connection.rs`).

use super::body::{BoxError, ProxyBody};
use super::forwarder::{Failure, Forwarded, Forwarder};
use super::observe::RequestMeta;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame as BodyFrame, SizeHint};
use hyper_util::rt::TokioIo;
use sluice_proto::frame::{AgentFailure, Frame, RequestHead, ResponseHead};
use sluice_proto::framed::{FrameReader, FrameWriter, StreamError};
use sluice_proto::link::{RecvHalf, SendHalf};
use sluice_proto::splice::splice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tracing::{debug, info_span, warn, Instrument};

/// Request body chunks waiting for the upstream: a small queue, so QUIC's flow control is what
/// holds a fast client back, not memory here.
const BODY_QUEUE: usize = 4;

/// Serves an edge-opened stream until the edge ends it or an exchange on it fails;
/// `in_flight` counts the requests being answered (a stream idle between requests is not
/// one), so a shutting-down agent waits only for those.
pub(crate) async fn serve_stream(
    forwarder: Arc<Forwarder>,
    send: SendHalf,
    recv: RecvHalf,
    in_flight: Arc<AtomicUsize>,
) {
    let mut reader = FrameReader::new(recv);
    let mut writer = FrameWriter::new(send);
    loop {
        let head = match reader.next().await {
            Ok(Some(Frame::RequestHead(head))) => head,
            Ok(Some(Frame::Connect(head))) => {
                let span = info_span!(
                    "connection",
                    connection_id = %head.connection_id,
                    stream = reader.id(),
                    client = %head.client_addr,
                );
                in_flight.fetch_add(1, Ordering::Relaxed);
                super::connection::serve(&forwarder, &mut reader, &mut writer, *head)
                    .instrument(span)
                    .await;
                in_flight.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            // The edge let an idle stream go.
            Ok(None) => {
                writer.finish();
                return;
            }
            Ok(Some(other)) => {
                debug!(
                    stream = reader.id(),
                    "a stream began with {other:?}, not a request head"
                );
                return;
            }
            Err(e) => {
                debug!(stream = reader.id(), "stream ended: {e}");
                return;
            }
        };
        let span = info_span!(
            "stream",
            request_id = %head.request_id,
            stream = reader.id(),
            client = %head.client_addr,
        );
        in_flight.fetch_add(1, Ordering::Relaxed);
        let reusable = exchange(&forwarder, &mut reader, &mut writer, *head)
            .instrument(span)
            .await;
        in_flight.fetch_sub(1, Ordering::Relaxed);
        if !reusable {
            // Dropping the writer resets whatever this side left unfinished.
            return;
        }
    }
}

/// One request and its response; whether the stream may carry another.
async fn exchange(
    forwarder: &Forwarder,
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    head: RequestHead,
) -> bool {
    let meta = RequestMeta {
        endpoint: head.endpoint_id as usize,
        remote_addr: Some(head.client_addr),
        replay_of: None,
    };
    let (req, feed) = request(head);
    let (informational_tx, mut informational) = mpsc::unbounded_channel();
    let forward = forwarder.forward_from_edge(req, &meta, informational_tx);
    let respond = async {
        tokio::pin!(forward);
        // 1xx heads (100 Continue) go out as they come, before the final response.
        let forwarded = loop {
            tokio::select! {
                forwarded = &mut forward => break forwarded,
                Some(info) = informational.recv() => {
                    if writer.send(&Frame::ResponseHead(Box::new(info))).await.is_err() {
                        return Written::Broken;
                    }
                }
            }
        };
        write_response(writer, forwarded).await
    };
    // The request body flows while the handler works; once it is whole, the edge resetting
    // its half means the client gave up, and the handler's work is dropped (an HTTP/2 upstream
    // sees the cancel as RST_STREAM).
    let body_whole = AtomicBool::new(feed.is_none());
    let watch = async {
        if let Some(feed) = feed {
            match feed_body(reader, feed).await {
                Fed::Whole => body_whole.store(true, Ordering::Relaxed),
                Fed::Partial => return std::future::pending().await,
            }
        }
        reader.reset().await
    };
    let written = tokio::select! {
        written = respond => written,
        code = watch => {
            debug!(code, "the edge cancelled the request");
            return false;
        }
    };
    let fed = if body_whole.load(Ordering::Relaxed) {
        Fed::Whole
    } else {
        // The handler answered before reading the whole body; the rest is not wanted.
        reader.stop();
        Fed::Partial
    };
    match written {
        Written::Whole if matches!(fed, Fed::Partial) => {
            // The response is whole: end it cleanly before the stream goes, or the reset
            // that dropping it sends could overtake its last bytes.
            writer.finish();
            false
        }
        Written::Whole => true,
        Written::Upgraded(upstream) => {
            let spliced = splice(reader, writer, TokioIo::new(upstream)).await;
            if let Some(failure) = spliced.failure {
                debug!("upgraded connection ended: {failure}");
            }
            false
        }
        Written::Broken => {
            writer.abort();
            false
        }
    }
}

/// The request the handler gets, and the queue its body arrives through (none without a
/// body).
fn request(head: RequestHead) -> (Request<ProxyBody>, Option<mpsc::Sender<BodyItem>>) {
    let (body, feed) = if head.end_stream {
        (super::body::empty(), None)
    } else {
        let (tx, rx) = mpsc::channel(BODY_QUEUE);
        let remaining = head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (QueuedBody { rx, remaining }.boxed_unsync(), Some(tx))
    };
    let mut req = Request::new(body);
    *req.method_mut() = head.method;
    *req.uri_mut() = head.uri;
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers;
    (req, feed)
}

type BodyItem = Result<BodyFrame<Bytes>, BoxError>;

/// How the request body went.
enum Fed {
    /// Read to its end: the stream is clean on this side.
    Whole,
    /// Not read to its end (the handler stopped reading, or the edge gave up).
    Partial,
}

/// Moves the request body's frames from the stream to the handler's body.
async fn feed_body(reader: &mut FrameReader, feed: mpsc::Sender<BodyItem>) -> Fed {
    loop {
        let item = match reader.next().await {
            Ok(Some(Frame::Data(data))) => Ok(BodyFrame::data(data)),
            Ok(Some(Frame::Trailers(trailers))) => {
                let _ = feed.send(Ok(BodyFrame::trailers(trailers))).await;
                return Fed::Whole;
            }
            Ok(Some(Frame::End)) => return Fed::Whole,
            Ok(Some(_)) => Err(BoxError::from("the edge sent a head inside a request body")),
            Ok(None) => Err(BoxError::from(
                "the edge ended the stream inside a request body",
            )),
            Err(e) => Err(BoxError::from(e)),
        };
        let failed = item.is_err();
        if feed.send(item).await.is_err() {
            // The handler no longer reads the body: the rest is not wanted.
            reader.stop();
            return Fed::Partial;
        }
        if failed {
            return Fed::Partial;
        }
    }
}

/// A request body fed frame by frame from the stream.
struct QueuedBody {
    rx: mpsc::Receiver<BodyItem>,
    /// What `content-length` says is still to come: a client that stops reading once it has
    /// that many bytes still sees the body as whole.
    remaining: Option<u64>,
}

impl Body for QueuedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, BoxError>>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Some(left)) = (frame.data_ref(), self.remaining) {
                self.remaining = Some(left.saturating_sub(data.len() as u64));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// How the response went.
enum Written {
    /// Sent whole (or a failure frame instead of it).
    Whole,
    /// A `101` went out: the stream now carries the upgraded connection.
    Upgraded(hyper::upgrade::Upgraded),
    /// The stream broke, or the response body failed midway.
    Broken,
}

/// Writes the response, or the failure frame when the handler produced none.
async fn write_response(writer: &mut FrameWriter, forwarded: Forwarded) -> Written {
    let (response, upgrade) = match forwarded {
        Forwarded::Response { response, upgrade } => (response, upgrade),
        Forwarded::Failed(Failure { code, cause }) => {
            let frame = Frame::Error(AgentFailure {
                code,
                message: cause,
            });
            return match writer.send(&frame).await {
                Ok(()) => Written::Whole,
                Err(_) => Written::Broken,
            };
        }
    };
    let (parts, mut body) = response.into_parts();
    let upgraded = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    let head = ResponseHead {
        status: parts.status,
        headers: parts.headers,
        end_stream: !upgraded && body.is_end_stream(),
    };
    let end_stream = head.end_stream;
    if writer
        .send(&Frame::ResponseHead(Box::new(head)))
        .await
        .is_err()
    {
        return Written::Broken;
    }
    if upgraded {
        return match upgrade {
            Some(on) => match on.await {
                Ok(io) => Written::Upgraded(io),
                Err(e) => {
                    warn!("the upstream's upgrade failed: {e}");
                    Written::Broken
                }
            },
            None => Written::Broken,
        };
    }
    if end_stream {
        return Written::Whole;
    }
    match send_body(writer, &mut body).await {
        Ok(()) => Written::Whole,
        Err(e) => {
            warn!("response body cut: {e}");
            Written::Broken
        }
    }
}

/// Why a response body could not be sent whole.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the upstream failed: {0}")]
    Upstream(BoxError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// Streams a response body as data frames, then trailers or the end.
async fn send_body(writer: &mut FrameWriter, body: &mut ProxyBody) -> Result<(), BodyError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Upstream)?;
        match frame.into_data() {
            Ok(data) => writer.send_data(data).await?,
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    writer.send(&Frame::Trailers(trailers)).await?;
                    return Ok(());
                }
            }
        }
    }
    writer.send(&Frame::End).await?;
    Ok(())
}
