//! [`BridgeSession`]: one HTTP/1.x request as pingora's custom downstream session. pingora's
//! proxy reads the request body and writes the response through it exactly as through its own
//! HTTP/1 session; the body comes from hyper's `Incoming` (request trailers go to the
//! [`RequestTrailers`] slot for the agent side), the response goes to hyper through the
//! [`Pipe`], and after a 101 both directions use the upgraded connection.

use super::head::hyper_head;
use super::pipe::{Pipe, PipeError};
use crate::policy::body::MAX_BUFFERED_BODY;
use crate::request_trailers::RequestTrailers;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::body_buffer::FixedBuffer;
use pingora::protocols::http::custom::server::Session;
use pingora::protocols::http::custom::CustomMessageWrite;
use pingora::protocols::http::v1::common::is_upgrade_req;
use pingora::protocols::http::HttpTask;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::Digest;
use pingora::{Error, ErrorType};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The smallest and largest read of an upgraded connection. Reads start small and double while
/// they come back full, so an idle websocket holds a small buffer, a busy one a large one.
const UPGRADED_READ_MIN: usize = 4 * 1024;
const UPGRADED_READ_MAX: usize = 64 * 1024;

/// `T` behind a lock that is never taken: reached only through `&mut self`, it makes a value
/// that is `Send` but not `Sync` (hyper's body and upgraded connection) fit pingora's
/// `Send + Sync` session.
struct Exclusive<T>(std::sync::Mutex<T>);

impl<T> Exclusive<T> {
    fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    fn get(&mut self) -> &mut T {
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The connection after a 101, once hyper handed it over.
enum Upgrade {
    /// Not an upgrade request.
    None,
    /// hyper hands the connection over once it wrote the 101.
    Pending(OnUpgrade),
    /// The raw connection.
    Ready(Exclusive<TokioIo<Upgraded>>),
    /// Closed, or never handed over.
    Gone,
}

/// pingora's error for a hyper request body that failed: malformed framing is the client's bad
/// request (400, as pingora's own parser answered), anything else a broken connection.
fn body_error(e: &hyper::Error) -> Box<Error> {
    let malformed = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            )
        });
    let etype = if malformed {
        ErrorType::InvalidHTTPHeader
    } else {
        ErrorType::ConnectionClosed
    };
    Error::because(etype, "reading the request body", e.to_string()).into_down()
}

fn pipe_error(e: PipeError, what: &'static str) -> Box<Error> {
    let etype = match e {
        PipeError::Closed => ErrorType::ConnectionClosed,
        PipeError::Abandoned | PipeError::NoResponse => ErrorType::WriteError,
    };
    Error::because(etype, what, e).into_down()
}

fn io_error(etype: ErrorType, what: &'static str, e: std::io::Error) -> Box<Error> {
    Error::because(etype, what, e).into_down()
}

/// Facts about the client connection that every request on it reports (addresses, TLS).
pub struct ClientConn {
    digest: Digest,
}

impl ClientConn {
    /// The facts of `stream`, read before hyper owns it.
    pub fn of(stream: &pingora::protocols::Stream) -> Self {
        Self {
            digest: Digest {
                ssl_digest: stream.get_ssl_digest(),
                timing_digest: stream.get_timing_digest(),
                proxy_digest: stream.get_proxy_digest(),
                socket_digest: stream.get_socket_digest(),
            },
        }
    }

    /// The connection's digest, as pingora's own sessions report it.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

/// One HTTP/1.x request, as pingora's proxy sees it.
pub struct BridgeSession {
    req: RequestHeader,
    body: Exclusive<Incoming>,
    /// The request declared no body.
    body_empty: bool,
    /// The request body (or, upgraded, the client's side of the connection) ended.
    body_done: bool,
    body_read: usize,
    retry: Option<FixedBuffer>,
    trailers: RequestTrailers,
    pipe: Arc<Pipe>,
    conn: Arc<ClientConn>,
    /// The final response head written, for the proxy's logging.
    written: Option<ResponseHeader>,
    body_sent: usize,
    upgrade: Upgrade,
    upgraded: bool,
    upgraded_read: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    drain_timeout: Option<Duration>,
}

impl BridgeSession {
    /// The session for a request hyper read: its head (already pingora's), body and, for an
    /// upgrade request, hyper's promise of the connection.
    pub fn new(
        mut req: RequestHeader,
        body: Incoming,
        upgrade: Option<OnUpgrade>,
        pipe: Arc<Pipe>,
        conn: Arc<ClientConn>,
    ) -> Self {
        let trailers = RequestTrailers::new();
        // pingora clones the extensions into the upstream request, where the agent exchange
        // finds the slot.
        req.extensions_mut().insert(trailers.clone());
        let body_empty = body.is_end_stream();
        Self {
            req,
            body: Exclusive::new(body),
            body_empty,
            body_done: body_empty,
            body_read: 0,
            retry: None,
            trailers,
            pipe,
            conn,
            written: None,
            body_sent: 0,
            upgrade: upgrade.map_or(Upgrade::None, Upgrade::Pending),
            upgraded: false,
            upgraded_read: UPGRADED_READ_MIN,
            read_timeout: None,
            write_timeout: None,
            drain_timeout: None,
        }
    }

    /// The next piece of the request body; its trailer fields go to the slot.
    async fn read_http_body(&mut self) -> pingora::Result<Option<Bytes>> {
        loop {
            if self.body_done {
                return Ok(None);
            }
            let body = self.body.get();
            let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await;
            let frame: Frame<Bytes> = match frame {
                None => {
                    self.body_done = true;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.body_done = true;
                    return Err(body_error(&e));
                }
                Some(Ok(frame)) => frame,
            };
            match frame.into_data() {
                Ok(data) => {
                    if self.body.get().is_end_stream() {
                        self.body_done = true;
                    }
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        self.trailers.put(trailers);
                    }
                }
            }
        }
    }

    /// The upgraded connection, once hyper handed it over.
    async fn upgraded_io(&mut self) -> pingora::Result<&mut TokioIo<Upgraded>> {
        if let Upgrade::Pending(on_upgrade) = &mut self.upgrade {
            match on_upgrade.await {
                Ok(io) => self.upgrade = Upgrade::Ready(Exclusive::new(TokioIo::new(io))),
                Err(e) => {
                    self.upgrade = Upgrade::Gone;
                    return Err(Error::because(
                        ErrorType::ConnectionClosed,
                        "waiting for the upgraded connection",
                        e,
                    )
                    .into_down());
                }
            }
        }
        match &mut self.upgrade {
            Upgrade::Ready(io) => Ok(io.get()),
            _ => Err(
                Error::explain(ErrorType::ConnectionClosed, "no upgraded connection").into_down(),
            ),
        }
    }

    /// The next bytes the client sent on the upgraded connection; `None` at its end.
    async fn read_upgraded(&mut self) -> pingora::Result<Option<Bytes>> {
        if self.body_done {
            return Ok(None);
        }
        let size = self.upgraded_read;
        let io = self.upgraded_io().await?;
        let mut buf = BytesMut::with_capacity(size);
        let n = io
            .read_buf(&mut buf)
            .await
            .map_err(|e| io_error(ErrorType::ReadError, "reading the upgraded connection", e))?;
        if n == 0 {
            self.body_done = true;
            return Ok(None);
        }
        self.upgraded_read = if n == size {
            (size * 2).min(UPGRADED_READ_MAX)
        } else {
            UPGRADED_READ_MIN
        };
        Ok(Some(buf.freeze()))
    }

    async fn write_upgraded(&mut self, data: Option<Bytes>, end: bool) -> pingora::Result<()> {
        if let Some(data) = data.filter(|d| !d.is_empty()) {
            let len = data.len();
            let io = self.upgraded_io().await?;
            io.write_all(&data).await.map_err(|e| {
                io_error(ErrorType::WriteError, "writing the upgraded connection", e)
            })?;
            io.flush().await.map_err(|e| {
                io_error(ErrorType::WriteError, "writing the upgraded connection", e)
            })?;
            self.body_sent += len;
        }
        if end {
            self.close_upgraded().await;
        }
        Ok(())
    }

    async fn close_upgraded(&mut self) {
        if let Upgrade::Ready(io) = &mut self.upgrade {
            let _ = io.get().shutdown().await;
        }
    }

    /// Writes the final response head; informational heads other than 101 are hyper's own
    /// business (it answers `Expect: 100-continue` when the body is first read).
    fn put_head(&mut self, resp: ResponseHeader, end: bool) -> pingora::Result<()> {
        if resp.status.is_informational() && resp.status != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(());
        }
        if self.written.is_some() {
            return Ok(());
        }
        let upgrade = resp.status == StatusCode::SWITCHING_PROTOCOLS
            && matches!(self.upgrade, Upgrade::Pending(_));
        self.pipe
            .put_head(hyper_head(&resp), end || upgrade, upgrade)
            .map_err(|e| pipe_error(e, "writing the response head"))?;
        if upgrade {
            self.upgraded = true;
            // The request's own (empty) body is over; the client's raw bytes follow.
            self.body_done = false;
        }
        self.written = Some(resp);
        Ok(())
    }

    fn count_frame(&mut self, frame: &Frame<Bytes>) {
        if let Some(data) = frame.data_ref() {
            self.body_sent += data.len();
        }
    }

    async fn send(&mut self, frames: Vec<Frame<Bytes>>, end: bool) -> pingora::Result<()> {
        if self.written.is_none() {
            return Err(
                Error::explain(ErrorType::InternalError, "response body before its head").into_in(),
            );
        }
        for frame in &frames {
            self.count_frame(frame);
        }
        self.pipe
            .send(frames, end)
            .await
            .map_err(|e| pipe_error(e, "writing the response body"))
    }
}

impl Drop for BridgeSession {
    fn drop(&mut self) {
        self.pipe.session_gone();
    }
}

#[async_trait]
impl Session for BridgeSession {
    fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    async fn read_body_bytes(&mut self) -> pingora::Result<Option<Bytes>> {
        let timeout = self.read_timeout;
        let read = async {
            if self.upgraded {
                self.read_upgraded().await
            } else {
                self.read_http_body().await
            }
        };
        let read = match timeout {
            Some(t) => tokio::time::timeout(t, read).await.map_err(|_| {
                Error::explain(
                    ErrorType::ReadTimedout,
                    format!("reading body, timeout: {t:?}"),
                )
                .into_down()
            })??,
            None => read.await?,
        };
        if let Some(bytes) = &read {
            self.body_read += bytes.len();
            if let Some(buffer) = self.retry.as_mut() {
                buffer.write_to_buffer(bytes);
            }
        }
        Ok(read)
    }

    async fn drain_request_body(&mut self) -> pingora::Result<()> {
        let timeout = self.drain_timeout;
        let drain = async {
            while self.read_body_bytes().await?.is_some() {}
            Ok(())
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, drain).await.map_err(|_| {
                Error::explain(
                    ErrorType::ReadTimedout,
                    format!("draining body, timeout: {t:?}"),
                )
                .into_down()
            })?,
            None => drain.await,
        }
    }

    async fn write_response_header(
        &mut self,
        resp: Box<ResponseHeader>,
        end: bool,
    ) -> pingora::Result<()> {
        self.put_head(*resp, end)
    }

    async fn write_response_header_ref(
        &mut self,
        resp: &ResponseHeader,
        end: bool,
    ) -> pingora::Result<()> {
        self.put_head(resp.clone(), end)
    }

    async fn write_body(&mut self, data: Bytes, end: bool) -> pingora::Result<()> {
        if self.upgraded {
            return self.write_upgraded(Some(data), end).await;
        }
        let frames = if data.is_empty() {
            Vec::new()
        } else {
            vec![Frame::data(data)]
        };
        self.send(frames, end).await
    }

    async fn write_trailers(&mut self, trailers: HeaderMap) -> pingora::Result<()> {
        if self.upgraded {
            return Ok(());
        }
        self.send(vec![Frame::trailers(trailers)], true).await
    }

    async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> pingora::Result<bool> {
        let mut frames = Vec::with_capacity(tasks.len());
        let mut end = false;
        for task in tasks {
            match task {
                HttpTask::Header(head, head_end) => {
                    self.put_head(*head, head_end)?;
                    end = head_end;
                }
                HttpTask::Body(data, body_end) => {
                    if let Some(data) = data.filter(|d| !d.is_empty()) {
                        frames.push(Frame::data(data));
                    }
                    end = body_end;
                }
                HttpTask::UpgradedBody(data, body_end) => {
                    self.write_upgraded(data, body_end).await?;
                    end = body_end;
                }
                HttpTask::Trailer(trailers) => {
                    if let Some(trailers) = trailers {
                        frames.push(Frame::trailers(*trailers));
                    }
                    end = true;
                }
                HttpTask::Done => end = true,
                HttpTask::Failed(e) => {
                    if !frames.is_empty() {
                        self.send(frames, false).await?;
                    }
                    return Err(e);
                }
            }
        }
        if !self.upgraded && self.written.is_some() && (end || !frames.is_empty()) {
            self.send(frames, end).await?;
        }
        if self.upgraded && end {
            // The upstream's side ended (its close handshake done, say): the client sees the
            // end at once, as it would from the upstream itself, rather than waiting for its
            // own side to end first.
            self.close_upgraded().await;
        }
        // hyper has the whole response once it released the body (its length was reached).
        Ok(end || (!self.upgraded && self.pipe.is_released()))
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    fn get_read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// Kept for pingora; hyper writes, and a client that stops reading is bounded by the
    /// connection, as with pingora's own server without a write timeout.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    fn get_write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        self.drain_timeout = timeout;
    }

    fn get_total_drain_timeout(&self) -> Option<Duration> {
        self.drain_timeout
    }

    fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {}",
            self.req.method,
            String::from_utf8_lossy(self.req.raw_path()),
            self.req
                .headers
                .get(http::header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()))
                .unwrap_or_default()
        )
    }

    fn response_written(&self) -> Option<&ResponseHeader> {
        self.written.as_ref()
    }

    async fn shutdown(&mut self, _code: u32, _ctx: &str) {
        self.pipe.abandon();
        self.close_upgraded().await;
        self.upgrade = Upgrade::Gone;
    }

    fn is_body_done(&mut self) -> bool {
        self.body_done || (!self.upgraded && self.body.get().is_end_stream())
    }

    async fn finish(&mut self) -> pingora::Result<()> {
        if self.upgraded {
            self.close_upgraded().await;
        } else {
            self.pipe.end();
        }
        Ok(())
    }

    fn is_body_empty(&mut self) -> bool {
        self.body_empty
    }

    async fn read_body_or_idle(
        &mut self,
        no_body_expected: bool,
    ) -> pingora::Result<Option<Bytes>> {
        if !no_body_expected && !self.is_body_done() {
            return self.read_body_bytes().await;
        }
        // Nothing more to read: wait for the client to go away, which ends the request as
        // pingora's own server does when it reads the connection's end here.
        if !self.upgraded {
            self.pipe.closed().await;
        }
        Err(Error::explain(
            ErrorType::ConnectionClosed,
            if self.written.is_none() {
                "Prematurely before response header is sent"
            } else {
                "Prematurely before response body is complete"
            },
        )
        .into_down())
    }

    fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    fn digest(&self) -> Option<&Digest> {
        Some(self.conn.digest())
    }

    fn digest_mut(&mut self) -> Option<&mut Digest> {
        None
    }

    fn client_addr(&self) -> Option<&SocketAddr> {
        self.conn.digest().socket_digest.as_ref()?.peer_addr()
    }

    fn server_addr(&self) -> Option<&SocketAddr> {
        self.conn.digest().socket_digest.as_ref()?.local_addr()
    }

    fn pseudo_raw_h1_request_header(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(self.req.method.as_str().as_bytes());
        buf.extend_from_slice(b" ");
        buf.extend_from_slice(self.req.raw_path());
        buf.extend_from_slice(b" HTTP/1.1\r\n");
        self.req.header_to_h1_wire(&mut buf);
        buf.extend_from_slice(b"\r\n");
        buf.freeze()
    }

    fn enable_retry_buffering(&mut self) {
        if self.retry.is_none() {
            self.retry = Some(FixedBuffer::new(MAX_BUFFERED_BODY));
        }
    }

    fn retry_buffer_truncated(&self) -> bool {
        self.retry.as_ref().is_some_and(FixedBuffer::is_truncated)
    }

    fn get_retry_buffer(&self) -> Option<Bytes> {
        self.retry
            .as_ref()
            .filter(|b| !b.is_truncated())
            .and_then(FixedBuffer::get_buffer)
    }

    async fn finish_custom(&mut self) -> pingora::Result<()> {
        Ok(())
    }

    fn take_custom_message_reader(
        &mut self,
    ) -> Option<Box<dyn Stream<Item = pingora::Result<Bytes>> + Unpin + Send + Sync + 'static>>
    {
        // pingora requires a reader; HTTP/1 carries no custom messages.
        Some(Box::new(futures_util::stream::empty()))
    }

    fn restore_custom_message_reader(
        &mut self,
        _reader: Box<dyn Stream<Item = pingora::Result<Bytes>> + Unpin + Send + Sync + 'static>,
    ) -> pingora::Result<()> {
        Ok(())
    }

    fn take_custom_message_writer(&mut self) -> Option<Box<dyn CustomMessageWrite>> {
        Some(Box::new(()))
    }

    fn restore_custom_message_writer(
        &mut self,
        _writer: Box<dyn CustomMessageWrite>,
    ) -> pingora::Result<()> {
        Ok(())
    }

    fn is_upgrade_req(&self) -> bool {
        is_upgrade_req(&self.req)
    }

    fn was_upgraded(&self) -> bool {
        self.upgraded
    }
}
