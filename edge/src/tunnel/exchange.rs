//! [`AgentExchange`]: one request and its response over a stream to the agent, as pingora's
//! custom upstream session. pingora hands it the request head, body chunks and (for upgrades)
//! raw bytes as values; it writes them as frames and reads the response frames back. No HTTP/1
//! is written or parsed on this hop.

use super::liveness::InFlight;
use super::stream::{AgentStream, OpenError, StreamLink};
use crate::coded_error::edge_error;
use crate::request_trailers::RequestTrailers;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use http::HeaderMap;
use parking_lot::Mutex;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::custom::client::Session;
use pingora::protocols::http::custom::{BodyWrite, CustomMessageWrite};
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::{Digest, UniqueIDType};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::frame::{ForwardHead, Frame, RequestHeadRef};
use sluice_proto::framed::{FrameWriter, StreamError};
use sluice_proto::scheme::Scheme;
use std::net::SocketAddr as InetAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::debug;

/// Where a request goes and the facts only the edge knows about it; the proxy puts it in the
/// upstream request's extensions, and the exchange takes it out when it writes the head.
#[derive(Clone)]
pub struct AgentTarget {
    /// The link the request goes over: the agent's session, or (in a cluster) the link to the
    /// edge that holds the endpoint.
    pub via: Arc<StreamLink>,
    /// The endpoint within the agent's session (over a link to another edge, that edge puts
    /// in its own member's).
    pub endpoint_id: u32,
    /// Over a link to another edge: the endpoint the request is for, sent before its head.
    pub forward: Option<ForwardHead>,
    /// Edge-assigned request id.
    pub request_id: String,
    /// The public client's address.
    pub client_addr: InetAddr,
    /// How the client reached the edge.
    pub scheme: Scheme,
    /// How long to wait for the agent to grant a new stream (it caps concurrent streams).
    pub open_timeout: Duration,
}

/// A body writer hands its half of the stream back here once the request ended cleanly, so
/// the stream can be kept for the next request.
type WriterSlot = Arc<Mutex<Option<FrameWriter>>>;

/// One exchange with an agent, created unbound by the connector and bound to a stream when
/// pingora writes the request head.
pub struct AgentExchange {
    stream: Option<AgentStream>,
    /// Counts this request as waiting on the agent until the exchange ends.
    waiting: Option<InFlight>,
    link: Option<Arc<StreamLink>>,
    body_writer: Option<RequestBody>,
    returned_writer: WriterSlot,
    response: Option<ResponseHeader>,
    response_done: bool,
    upgraded: bool,
    trailers: Option<HeaderMap>,
}

impl AgentExchange {
    /// An exchange not yet bound to a stream.
    pub fn new() -> Self {
        Self {
            stream: None,
            waiting: None,
            link: None,
            body_writer: None,
            returned_writer: Arc::new(Mutex::new(None)),
            response: None,
            response_done: false,
            upgraded: false,
            trailers: None,
        }
    }

    /// Gives the stream back to its link's pool when both directions ended cleanly;
    /// otherwise drops it, which resets what is unfinished.
    pub fn release(mut self) {
        let (Some(mut stream), Some(link)) = (self.stream.take(), self.link.take()) else {
            return;
        };
        let writer = self.returned_writer.lock().take();
        match writer {
            Some(writer) if self.response_done && !self.upgraded => {
                stream.writer = writer;
                link.pool.put(stream);
            }
            Some(mut writer) if self.upgraded => writer.finish(),
            _ => {}
        }
    }

    fn stream(&mut self) -> pingora::Result<&mut AgentStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| edge_error(ErrorCode::Internal, "no agent stream"))
    }

    /// A reused stream from the link's pool, or a new one. When the link is gone before a
    /// stream opened, nothing of the request reached the agent: the error is marked retryable,
    /// so the proxy may send the request to another member of the endpoint.
    async fn acquire(target: &AgentTarget) -> pingora::Result<AgentStream> {
        let unsent = |why: String| {
            let mut e = edge_error(ErrorCode::AgentOffline, why);
            e.set_retry(true);
            e
        };
        match target.via.stream(target.open_timeout).await {
            Ok(stream) => Ok(stream),
            Err(OpenError::Busy) => Err(edge_error(
                ErrorCode::AgentBusy,
                "no stream granted in time",
            )),
            Err(gone @ OpenError::Gone(_)) => Err(unsent(gone.to_string())),
        }
    }

    /// The next response frame; the stream's end or a reset before the response is complete
    /// means the agent is gone or gave up.
    async fn next_frame(&mut self) -> pingora::Result<Frame> {
        match self.stream()?.reader.next().await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(edge_error(
                ErrorCode::AgentOffline,
                "the agent ended the stream before the response was complete",
            )),
            Err(e) => Err(stream_error(&e)),
        }
    }
}

impl Default for AgentExchange {
    fn default() -> Self {
        Self::new()
    }
}

/// The pingora error for a failed stream read or write.
fn stream_error(e: &StreamError) -> Box<pingora::Error> {
    let code = match e {
        StreamError::Frame(_) | StreamError::Truncated => ErrorCode::InvalidUpstreamResponse,
        _ => ErrorCode::AgentOffline,
    };
    edge_error(code, e.to_string())
}

fn protocol_error(what: &str) -> Box<pingora::Error> {
    edge_error(
        ErrorCode::InvalidUpstreamResponse,
        format!("the agent broke the protocol: {what}"),
    )
}

/// The head frame's fields, borrowed from pingora's request header.
fn request_head<'a>(
    req: &'a RequestHeader,
    target: &'a AgentTarget,
    end: bool,
) -> RequestHeadRef<'a> {
    RequestHeadRef {
        endpoint_id: target.endpoint_id,
        request_id: &target.request_id,
        client_addr: target.client_addr,
        scheme: target.scheme,
        method: &req.method,
        uri: &req.uri,
        version: req.version,
        headers: &req.headers,
        end_stream: end,
    }
}

#[async_trait]
impl Session for AgentExchange {
    async fn write_request_header(
        &mut self,
        req: Box<RequestHeader>,
        end: bool,
    ) -> pingora::Result<()> {
        let mut req = req;
        let target = req
            .extensions_mut()
            .remove::<AgentTarget>()
            .ok_or_else(|| edge_error(ErrorCode::Internal, "request without an agent target"))?;
        // Present when the client's HTTP/1.1 body may end with trailer fields.
        let trailers = req.extensions_mut().remove::<RequestTrailers>();
        self.waiting = Some(target.via.liveness.begin());
        let mut stream = Self::acquire(&target).await?;
        debug!(stream = stream.id(), "request to the agent");
        if let Some(forward) = &target.forward {
            let frame = Frame::Forward(Box::new(forward.clone()));
            stream
                .writer
                .send(&frame)
                .await
                .map_err(|e| stream_error(&e))?;
        }
        let head = request_head(&req, &target, end);
        if let Err(e) = stream.writer.send_request_head(&head).await {
            return Err(stream_error(&e));
        }
        // The body writer owns the edge's half from now on; pingora drives it beside the
        // response reads.
        let writer = stream.writer.take();
        self.body_writer = Some(RequestBody {
            writer: Some(writer),
            ended: end,
            upgraded: false,
            returned: self.returned_writer.clone(),
            trailers,
        });
        if end {
            if let Some(body) = &mut self.body_writer {
                body.hand_back();
            }
        }
        self.stream = Some(stream);
        self.link = Some(target.via);
        Ok(())
    }

    async fn write_request_body(&mut self, mut data: Bytes, end: bool) -> pingora::Result<()> {
        let Some(body) = &mut self.body_writer else {
            return Err(edge_error(ErrorCode::Internal, "request body writer taken"));
        };
        body.write_all_buf(&mut data).await?;
        if end {
            body.finish().await?;
        }
        Ok(())
    }

    async fn finish_request_body(&mut self) -> pingora::Result<()> {
        match &mut self.body_writer {
            Some(body) => body.finish().await,
            None => Ok(()),
        }
    }

    fn set_read_timeout(&mut self, _timeout: Option<Duration>) {
        // The agent bounds silence from the upstream itself (`--upstream-timeout`), and a
        // dead agent is noticed on the connection, not per stream.
    }

    fn set_write_timeout(&mut self, _timeout: Option<Duration>) {}

    async fn read_response_header(&mut self) -> pingora::Result<()> {
        match self.next_frame().await? {
            Frame::ResponseHead(head) => {
                let mut resp = ResponseHeader::build(head.status, Some(head.headers.len()))?;
                for (name, value) in head.headers {
                    if let Some(name) = name {
                        resp.append_header(name, value)?;
                    }
                }
                self.upgraded = head.status == http::StatusCode::SWITCHING_PROTOCOLS;
                if self.upgraded {
                    // A websocket may stay quiet for hours: the connection's keep-alives watch
                    // it, not the per-request probes.
                    self.waiting = None;
                }
                self.response_done = head.end_stream && !self.upgraded;
                self.response = Some(resp);
                Ok(())
            }
            Frame::Error(failure) => Err(edge_error(failure.code, failure.message)),
            _ => Err(protocol_error("a response began without a head")),
        }
    }

    async fn read_response_body(&mut self) -> pingora::Result<Option<Bytes>> {
        if self.response_done {
            return Ok(None);
        }
        if self.upgraded {
            return match self.stream()?.reader.next_raw().await {
                Ok(Some(bytes)) => Ok(Some(bytes)),
                Ok(None) => {
                    self.response_done = true;
                    Ok(None)
                }
                Err(e) => Err(stream_error(&e)),
            };
        }
        match self.next_frame().await? {
            Frame::Data(bytes) => Ok(Some(bytes)),
            Frame::Trailers(trailers) => {
                self.trailers = Some(trailers);
                self.response_done = true;
                Ok(None)
            }
            Frame::End => {
                // An empty last chunk marked as the end: body filters (compress-response)
                // learn the body is complete before pingora finishes the response.
                self.response_done = true;
                Ok(Some(Bytes::new()))
            }
            _ => Err(protocol_error("a head inside a response body")),
        }
    }

    fn response_finished(&self) -> bool {
        self.response_done
    }

    async fn shutdown(&mut self, _code: u32, _ctx: &str) {
        // Dropping the stream resets both halves.
        self.stream = None;
        self.link = None;
    }

    fn response_header(&self) -> Option<&ResponseHeader> {
        self.response.as_ref()
    }

    fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    fn digest(&self) -> Option<&Digest> {
        None
    }

    fn digest_mut(&mut self) -> Option<&mut Digest> {
        None
    }

    fn server_addr(&self) -> Option<&SocketAddr> {
        None
    }

    fn client_addr(&self) -> Option<&SocketAddr> {
        None
    }

    async fn read_trailers(&mut self) -> pingora::Result<Option<HeaderMap>> {
        Ok(self.trailers.take())
    }

    fn fd(&self) -> UniqueIDType {
        0
    }

    async fn check_response_end_or_error(&mut self, _headers: bool) -> pingora::Result<bool> {
        Ok(self.response_done)
    }

    fn take_request_body_writer(&mut self) -> Option<Box<dyn BodyWrite>> {
        self.body_writer
            .take()
            .map(|body| Box::new(body) as Box<dyn BodyWrite>)
    }

    async fn finish_custom(&mut self) -> pingora::Result<()> {
        Ok(())
    }

    fn take_custom_message_reader(
        &mut self,
    ) -> Option<Box<dyn Stream<Item = pingora::Result<Bytes>> + Unpin + Send + Sync + 'static>>
    {
        // pingora requires a reader; this protocol has no custom messages.
        Some(Box::new(futures_util::stream::empty()))
    }

    async fn drain_custom_messages(&mut self) -> pingora::Result<()> {
        Ok(())
    }

    fn take_custom_message_writer(&mut self) -> Option<Box<dyn CustomMessageWrite>> {
        Some(Box::new(()))
    }
}

/// The request body on its way to the agent: data frames, then `End` (or trailers), or raw
/// bytes after an upgrade.
struct RequestBody {
    writer: Option<FrameWriter>,
    /// The request head said no body follows, or the body's end was sent.
    ended: bool,
    upgraded: bool,
    returned: WriterSlot,
    /// The client's trailer fields, filled by the public side once its body ended.
    trailers: Option<RequestTrailers>,
}

impl RequestBody {
    fn writer(&mut self) -> pingora::Result<&mut FrameWriter> {
        if self.writer.is_none() && self.upgraded {
            // An upgrade request's (empty) body ended before the 101 arrived: the half comes
            // back for the raw bytes.
            self.writer = self.returned.lock().take();
        }
        self.writer
            .as_mut()
            .ok_or_else(|| edge_error(ErrorCode::Internal, "request body already ended"))
    }

    /// The request is complete: the stream's half goes back to the exchange.
    fn hand_back(&mut self) {
        self.ended = true;
        *self.returned.lock() = self.writer.take();
    }
}

#[async_trait]
impl BodyWrite for RequestBody {
    async fn write_all_buf(&mut self, data: &mut Bytes) -> pingora::Result<()> {
        let data = std::mem::take(data);
        if data.is_empty() {
            return Ok(());
        }
        let upgraded = self.upgraded;
        if self.ended && !upgraded {
            return Err(edge_error(
                ErrorCode::Internal,
                "request body after its end",
            ));
        }
        let writer = self.writer()?;
        let sent = if upgraded {
            writer.send_raw(data).await
        } else {
            writer.send_data(data).await
        };
        sent.map_err(|e| stream_error(&e))
    }

    async fn finish(&mut self) -> pingora::Result<()> {
        if self.upgraded {
            if let Ok(writer) = self.writer() {
                writer.finish();
            }
            return Ok(());
        }
        if self.ended {
            return Ok(());
        }
        // The body's last frame: its trailer fields when the client sent any, else `End`.
        let last = match self.trailers.as_ref().and_then(RequestTrailers::take) {
            Some(trailers) => Frame::Trailers(trailers),
            None => Frame::End,
        };
        self.writer()?
            .send(&last)
            .await
            .map_err(|e| stream_error(&e))?;
        self.hand_back();
        Ok(())
    }

    async fn cleanup(&mut self) -> pingora::Result<()> {
        Ok(())
    }

    fn upgrade_body_writer(&mut self) {
        self.upgraded = true;
    }
}
