//! Request and response frames on a per-request QUIC stream: a binary, sans-IO codec.
//!
//! Every frame is `type: u8`, `length: u32` (big-endian), then `length` bytes of payload. The
//! edge sends a [`RequestHead`], body [`Frame::Data`] frames, and [`Frame::Trailers`] or
//! [`Frame::End`]; the agent answers the same way with a [`ResponseHead`] (informational
//! heads may come first), or with [`Frame::Error`] when it could not produce a response. A head
//! whose `end_stream` is set has no body frames and no `End`. After a `101` response both
//! directions carry raw bytes until the stream ends. A stream whose exchange completed in both
//! directions is reused for the next request of the same agent session.
//!
//! A stream for a TCP or TLS endpoint's connection starts with a [`ConnectHead`] instead; the
//! agent answers [`Frame::Connected`] once its upstream connection is open (or
//! [`Frame::Error`]), and from then on both directions carry the connection's raw bytes. Such
//! a stream is never reused.
//!
//! Between two edges of a cluster (never to an agent), each request on a stream starts with a
//! [`Frame::Forward`] naming the endpoint it is for; the receiving edge relays the rest to a
//! member it holds.
//!
//! Data payloads are never copied by the decoder: they are split off the read buffer.

use crate::error_code::ErrorCode;
use crate::scheme::Scheme;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};
use std::net::{IpAddr, SocketAddr};

/// Bytes before every payload: the type and the length.
pub const FRAME_HEADER_LEN: usize = 5;

/// Largest payload either side accepts. Heads are far smaller (the edge caps request heads at
/// 32 KiB); data chunks are cut to [`MAX_DATA_CHUNK`].
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Body chunks larger than this are sent as several frames.
pub const MAX_DATA_CHUNK: usize = 256 * 1024;

const REQUEST_HEAD: u8 = 1;
const RESPONSE_HEAD: u8 = 2;
const DATA: u8 = 3;
const TRAILERS: u8 = 4;
const END: u8 = 5;
const ERROR: u8 = 6;
const CONNECT: u8 = 7;
const CONNECTED: u8 = 8;
const FORWARD: u8 = 9;

/// One frame on a request stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Edge → agent: a request begins.
    RequestHead(Box<RequestHead>),
    /// Agent → edge: a response (or an informational `1xx`) begins.
    ResponseHead(Box<ResponseHead>),
    /// A chunk of the body.
    Data(Bytes),
    /// The body's trailer fields; the body is complete.
    Trailers(HeaderMap),
    /// The body is complete, without trailers.
    End,
    /// Agent → edge, instead of a response head: the agent could not produce a response.
    Error(AgentFailure),
    /// Edge → agent: a client connection to a TCP or TLS endpoint; raw bytes follow.
    Connect(Box<ConnectHead>),
    /// Agent → edge, after [`Frame::Connect`]: the upstream connection is open; raw bytes
    /// follow.
    Connected,
    /// Edge → edge, before a [`Frame::RequestHead`]: which endpoint the request is for.
    Forward(Box<ForwardHead>),
}

/// A request one edge forwards to another that holds the endpoint (docs/cluster.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardHead {
    /// The endpoint's key in the cluster store.
    pub endpoint: String,
    /// The digest of the policy the forwarding edge ran: the receiving edge hands the request
    /// only to a member running the same one.
    pub policy_id: [u8; 32],
    /// Edges the request passed before this one; the receiving edge relays only what came
    /// straight from the edge the client reached (1), so a request can never loop.
    pub hops: u8,
}

/// A client connection to a TCP or TLS endpoint, as the edge hands it to the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectHead {
    /// Which of the session's endpoints the connection is for.
    pub endpoint_id: u32,
    /// Edge-assigned connection id, for correlating edge and agent logs.
    pub connection_id: String,
    /// The client's address as the edge saw it (L4).
    pub client_addr: SocketAddr,
    /// The edge address the client connected to (a PROXY protocol header's destination).
    pub server_addr: SocketAddr,
}

/// A request as the edge hands it to the agent, with the facts only the edge knows.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHead {
    /// Which of the session's endpoints this request is for.
    pub endpoint_id: u32,
    /// Edge-assigned request id, for correlating edge and agent logs.
    pub request_id: String,
    /// The public client's address as the edge saw it (L4).
    pub client_addr: SocketAddr,
    /// How the client reached the edge.
    pub scheme: Scheme,
    /// The method.
    pub method: Method,
    /// Origin-form target: path and query.
    pub uri: Uri,
    /// The HTTP version the client spoke to the edge.
    pub version: Version,
    /// Header fields (`host` carries the authority).
    pub headers: HeaderMap,
    /// No body follows.
    pub end_stream: bool,
}

impl RequestHead {
    /// The head as borrowed fields, for encoding.
    pub fn fields(&self) -> RequestHeadRef<'_> {
        RequestHeadRef {
            endpoint_id: self.endpoint_id,
            request_id: &self.request_id,
            client_addr: self.client_addr,
            scheme: self.scheme,
            method: &self.method,
            uri: &self.uri,
            version: self.version,
            headers: &self.headers,
            end_stream: self.end_stream,
        }
    }
}

/// A request head's fields borrowed from wherever the sender keeps them (the edge encodes
/// straight from pingora's request header, without copying it into a [`RequestHead`]).
#[derive(Debug, Clone, Copy)]
pub struct RequestHeadRef<'a> {
    /// See [`RequestHead::endpoint_id`].
    pub endpoint_id: u32,
    /// See [`RequestHead::request_id`].
    pub request_id: &'a str,
    /// See [`RequestHead::client_addr`].
    pub client_addr: SocketAddr,
    /// See [`RequestHead::scheme`].
    pub scheme: Scheme,
    /// See [`RequestHead::method`].
    pub method: &'a Method,
    /// See [`RequestHead::uri`]; only its path and query are sent.
    pub uri: &'a Uri,
    /// See [`RequestHead::version`].
    pub version: Version,
    /// See [`RequestHead::headers`].
    pub headers: &'a HeaderMap,
    /// See [`RequestHead::end_stream`].
    pub end_stream: bool,
}

impl RequestHeadRef<'_> {
    /// Appends the whole request-head frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = begin(REQUEST_HEAD, out);
        put_request_head(self, out);
        end(start, out);
    }
}

/// A response head as the agent hands it back.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseHead {
    /// The status; `1xx` other than `101` are informational and another head follows.
    pub status: StatusCode,
    /// Header fields.
    pub headers: HeaderMap,
    /// No body follows.
    pub end_stream: bool,
}

/// Why the agent produced no response: the code the edge answers with, and a message for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFailure {
    /// The code.
    pub code: ErrorCode,
    /// What happened, for the edge's log (never shown to the client).
    pub message: String,
}

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The declared length exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    /// An unknown frame type.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A payload that does not hold what its type says.
    #[error("malformed {frame} frame: {what}")]
    Malformed {
        /// The frame type's name.
        frame: &'static str,
        /// What is wrong.
        what: &'static str,
    },
}

impl Frame {
    fn type_byte(&self) -> u8 {
        match self {
            Frame::RequestHead(_) => REQUEST_HEAD,
            Frame::ResponseHead(_) => RESPONSE_HEAD,
            Frame::Data(_) => DATA,
            Frame::Trailers(_) => TRAILERS,
            Frame::End => END,
            Frame::Error(_) => ERROR,
            Frame::Connect(_) => CONNECT,
            Frame::Connected => CONNECTED,
            Frame::Forward(_) => FORWARD,
        }
    }

    /// Appends the whole frame (header and payload) to `out`. Large bodies are better sent
    /// with [`data_header`] and the payload as its own chunk, which copies nothing.
    pub fn encode(&self, out: &mut BytesMut) {
        let start = begin(self.type_byte(), out);
        match self {
            Frame::RequestHead(h) => put_request_head(&h.fields(), out),
            Frame::ResponseHead(h) => {
                out.put_u16(h.status.as_u16());
                out.put_u8(h.end_stream.into());
                put_headers(&h.headers, out);
            }
            Frame::Data(data) => out.put_slice(data),
            Frame::Trailers(headers) => put_headers(headers, out),
            Frame::End => {}
            Frame::Error(f) => {
                out.put_u16(f.code.number());
                put_str(&f.message, out);
            }
            Frame::Connect(h) => {
                out.put_u32(h.endpoint_id);
                put_str(&h.connection_id, out);
                put_addr(h.client_addr, out);
                put_addr(h.server_addr, out);
            }
            Frame::Connected => {}
            Frame::Forward(h) => {
                put_str(&h.endpoint, out);
                out.put_slice(&h.policy_id);
                out.put_u8(h.hops);
            }
        }
        end(start, out);
    }

    /// Decodes one frame from the front of `buf`, removing its bytes; `Ok(None)` when `buf`
    /// does not hold a whole frame yet (nothing is removed then).
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(&[kind, a, b, c, d]) = buf.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(DecodeError::TooLarge(len));
        }
        if !matches!(kind, REQUEST_HEAD..=FORWARD) {
            return Err(DecodeError::UnknownType(kind));
        }
        if buf.len() < FRAME_HEADER_LEN + len {
            buf.reserve(FRAME_HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(FRAME_HEADER_LEN);
        let mut payload = buf.split_to(len).freeze();
        let frame = match kind {
            REQUEST_HEAD => Frame::RequestHead(Box::new(get_request_head(&mut payload)?)),
            RESPONSE_HEAD => Frame::ResponseHead(Box::new(get_response_head(&mut payload)?)),
            DATA => return Ok(Some(Frame::Data(payload))),
            TRAILERS => Frame::Trailers(get_headers(&mut payload)?),
            END => Frame::End,
            ERROR => Frame::Error(get_failure(&mut payload)?),
            CONNECT => Frame::Connect(Box::new(get_connect_head(&mut payload)?)),
            FORWARD => Frame::Forward(Box::new(get_forward_head(&mut payload)?)),
            _ => Frame::Connected,
        };
        if payload.has_remaining() {
            return Err(malformed(kind, "bytes after the payload"));
        }
        Ok(Some(frame))
    }
}

/// Starts a frame of type `kind`: the header with a length to fill in; returns its offset.
fn begin(kind: u8, out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_u8(kind);
    out.put_u32(0);
    start
}

/// Fills in the length of the frame that [`begin`] started at `start`.
fn end(start: usize, out: &mut BytesMut) {
    let len = (out.len() - start - FRAME_HEADER_LEN) as u32;
    out[start + 1..start + FRAME_HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// The frame header for a data payload of `len` bytes, to be written before the payload.
pub fn data_header(len: usize) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [DATA, 0, 0, 0, 0];
    header[1..].copy_from_slice(&(len as u32).to_be_bytes());
    header
}

fn name_of(kind: u8) -> &'static str {
    match kind {
        REQUEST_HEAD => "request head",
        RESPONSE_HEAD => "response head",
        DATA => "data",
        TRAILERS => "trailers",
        END => "end",
        ERROR => "error",
        CONNECT => "connect",
        FORWARD => "forward",
        _ => "connected",
    }
}

fn malformed(kind: u8, what: &'static str) -> DecodeError {
    DecodeError::Malformed {
        frame: name_of(kind),
        what,
    }
}

fn put_str(s: &str, out: &mut BytesMut) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

fn put_headers(headers: &HeaderMap, out: &mut BytesMut) {
    out.put_u32(headers.len() as u32);
    for (name, value) in headers {
        out.put_u16(name.as_str().len() as u16);
        out.put_slice(name.as_str().as_bytes());
        out.put_u32(value.len() as u32);
        out.put_slice(value.as_bytes());
    }
}

fn put_request_head(h: &RequestHeadRef<'_>, out: &mut BytesMut) {
    out.put_u32(h.endpoint_id);
    put_str(h.request_id, out);
    put_addr(h.client_addr, out);
    out.put_u8(match h.scheme {
        Scheme::Http => 0,
        Scheme::Https => 1,
        Scheme::Tcp => 2,
        Scheme::Tls => 3,
    });
    out.put_u8(version_byte(h.version));
    out.put_u8(h.end_stream.into());
    put_str(h.method.as_str(), out);
    put_str(h.uri.path_and_query().map_or("/", |pq| pq.as_str()), out);
    put_headers(h.headers, out);
}

/// An address as its family (4 or 6), its octets and its port.
fn put_addr(addr: SocketAddr, out: &mut BytesMut) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.put_u8(4);
            out.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.put_u8(6);
            out.put_slice(&ip.octets());
        }
    }
    out.put_u16(addr.port());
}

fn version_byte(v: Version) -> u8 {
    match v {
        Version::HTTP_09 => 9,
        Version::HTTP_10 => 10,
        Version::HTTP_2 => 20,
        Version::HTTP_3 => 30,
        _ => 11,
    }
}

fn version_of(b: u8) -> Option<Version> {
    Some(match b {
        9 => Version::HTTP_09,
        10 => Version::HTTP_10,
        11 => Version::HTTP_11,
        20 => Version::HTTP_2,
        30 => Version::HTTP_3,
        _ => return None,
    })
}

/// A reader over one payload that names the frame in its errors.
struct Fields<'a> {
    buf: &'a mut Bytes,
    kind: u8,
}

impl Fields<'_> {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.remaining() < n {
            return Err(malformed(self.kind, "payload ends early"));
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u16()? as usize;
        let raw = self.bytes(n)?;
        String::from_utf8(raw.to_vec()).map_err(|_| malformed(self.kind, "text is not UTF-8"))
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed(self.kind, "flag is neither 0 nor 1")),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => {
                let b = self.bytes(4)?;
                IpAddr::from([b[0], b[1], b[2], b[3]])
            }
            6 => {
                let b = self.bytes(16)?;
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&b);
                IpAddr::from(octets)
            }
            _ => return Err(malformed(self.kind, "unknown address family")),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    fn headers(&mut self) -> Result<HeaderMap, DecodeError> {
        let count = self.u32()? as usize;
        // Every field takes at least 6 bytes, so a huge count cannot allocate before failing.
        self.need(count.saturating_mul(6))?;
        let mut headers = HeaderMap::with_capacity(count);
        for _ in 0..count {
            let n = self.u16()? as usize;
            let name = HeaderName::from_bytes(&self.bytes(n)?)
                .map_err(|_| malformed(self.kind, "invalid header name"))?;
            let n = self.u32()? as usize;
            let value = HeaderValue::from_maybe_shared(self.bytes(n)?)
                .map_err(|_| malformed(self.kind, "invalid header value"))?;
            headers.append(name, value);
        }
        Ok(headers)
    }
}

fn get_request_head(payload: &mut Bytes) -> Result<RequestHead, DecodeError> {
    let kind = REQUEST_HEAD;
    let mut f = Fields { buf: payload, kind };
    let endpoint_id = f.u32()?;
    let request_id = f.str()?;
    let client_addr = f.addr()?;
    let scheme = match f.u8()? {
        0 => Scheme::Http,
        1 => Scheme::Https,
        2 => Scheme::Tcp,
        3 => Scheme::Tls,
        _ => return Err(malformed(kind, "unknown scheme")),
    };
    let version = version_of(f.u8()?).ok_or_else(|| malformed(kind, "unknown HTTP version"))?;
    let end_stream = f.flag()?;
    let method =
        Method::from_bytes(f.str()?.as_bytes()).map_err(|_| malformed(kind, "invalid method"))?;
    let uri = f
        .str()?
        .parse::<Uri>()
        .map_err(|_| malformed(kind, "invalid target"))?;
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(malformed(kind, "target is not in origin form"));
    }
    let headers = f.headers()?;
    Ok(RequestHead {
        endpoint_id,
        request_id,
        client_addr,
        scheme,
        method,
        uri,
        version,
        headers,
        end_stream,
    })
}

fn get_connect_head(payload: &mut Bytes) -> Result<ConnectHead, DecodeError> {
    let mut f = Fields {
        buf: payload,
        kind: CONNECT,
    };
    Ok(ConnectHead {
        endpoint_id: f.u32()?,
        connection_id: f.str()?,
        client_addr: f.addr()?,
        server_addr: f.addr()?,
    })
}

fn get_forward_head(payload: &mut Bytes) -> Result<ForwardHead, DecodeError> {
    let mut f = Fields {
        buf: payload,
        kind: FORWARD,
    };
    let endpoint = f.str()?;
    let mut policy_id = [0u8; 32];
    policy_id.copy_from_slice(&f.bytes(32)?);
    Ok(ForwardHead {
        endpoint,
        policy_id,
        hops: f.u8()?,
    })
}

fn get_response_head(payload: &mut Bytes) -> Result<ResponseHead, DecodeError> {
    let kind = RESPONSE_HEAD;
    let mut f = Fields { buf: payload, kind };
    let status =
        StatusCode::from_u16(f.u16()?).map_err(|_| malformed(kind, "invalid status code"))?;
    let end_stream = f.flag()?;
    let headers = f.headers()?;
    Ok(ResponseHead {
        status,
        headers,
        end_stream,
    })
}

fn get_headers(payload: &mut Bytes) -> Result<HeaderMap, DecodeError> {
    Fields {
        buf: payload,
        kind: TRAILERS,
    }
    .headers()
}

fn get_failure(payload: &mut Bytes) -> Result<AgentFailure, DecodeError> {
    let mut f = Fields {
        buf: payload,
        kind: ERROR,
    };
    let code = ErrorCode::from_number(f.u16()?).ok_or_else(|| malformed(ERROR, "unknown code"))?;
    let message = f.str()?;
    Ok(AgentFailure { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Frame {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("app.example.com"));
        headers.append("te", HeaderValue::from_static("trailers"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        Frame::RequestHead(Box::new(RequestHead {
            endpoint_id: 3,
            request_id: "req_0123".into(),
            client_addr: "[2001:db8::7]:4711".parse().expect("addr"),
            scheme: Scheme::Https,
            method: Method::POST,
            uri: "/upload?x=1".parse().expect("uri"),
            version: Version::HTTP_2,
            headers,
            end_stream: false,
        }))
    }

    fn every_kind() -> Vec<Frame> {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        vec![
            request(),
            Frame::ResponseHead(Box::new(ResponseHead {
                status: StatusCode::OK,
                headers: trailers.clone(),
                end_stream: true,
            })),
            Frame::Data(Bytes::from_static(b"hello")),
            Frame::Trailers(trailers),
            Frame::End,
            Frame::Error(AgentFailure {
                code: ErrorCode::UpstreamUnreachable,
                message: "connection refused".into(),
            }),
            Frame::Connect(Box::new(ConnectHead {
                endpoint_id: 1,
                connection_id: "conn_42".into(),
                client_addr: "203.0.113.9:50123".parse().expect("addr"),
                server_addr: "[2001:db8::1]:20001".parse().expect("addr"),
            })),
            Frame::Connected,
            Frame::Forward(Box::new(ForwardHead {
                endpoint: "https://app.example.com".into(),
                policy_id: [7; 32],
                hops: 1,
            })),
        ]
    }

    #[test]
    fn every_frame_round_trips_and_waits_for_whole_frames() {
        for frame in every_kind() {
            let mut whole = BytesMut::new();
            frame.encode(&mut whole);
            for cut in 0..whole.len() {
                let mut part = BytesMut::from(&whole[..cut]);
                assert_eq!(Frame::decode(&mut part), Ok(None), "{frame:?} cut at {cut}");
                assert_eq!(part.len(), cut, "nothing consumed from a partial frame");
            }
            let mut buf = whole.clone();
            buf.extend_from_slice(b"next");
            assert_eq!(Frame::decode(&mut buf), Ok(Some(frame)));
            assert_eq!(&buf[..], b"next");
        }
    }

    #[test]
    fn data_header_matches_encode() {
        let mut encoded = BytesMut::new();
        Frame::Data(Bytes::from_static(b"abc")).encode(&mut encoded);
        assert_eq!(&encoded[..FRAME_HEADER_LEN], &data_header(3));
    }

    #[test]
    fn bad_frames_are_refused() {
        let mut huge = BytesMut::from(&[DATA, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            Frame::decode(&mut huge),
            Err(DecodeError::TooLarge(_))
        ));
        let mut unknown = BytesMut::from(&[42u8, 0, 0, 0, 0][..]);
        assert_eq!(
            Frame::decode(&mut unknown),
            Err(DecodeError::UnknownType(42))
        );
        // An end frame with a payload.
        let mut extra = BytesMut::from(&[END, 0, 0, 0, 1, 0][..]);
        assert!(matches!(
            Frame::decode(&mut extra),
            Err(DecodeError::Malformed { .. })
        ));
        // A header count larger than the payload could hold.
        let mut lying = BytesMut::from(&[TRAILERS, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            Frame::decode(&mut lying),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn absolute_targets_are_refused() {
        let Frame::RequestHead(mut head) = request() else {
            unreachable!("request() is a request head")
        };
        head.uri = "http://evil.example/".parse().expect("uri");
        let mut buf = BytesMut::new();
        // Encoding writes only path and query, so an absolute URI cannot leak through...
        Frame::RequestHead(head).encode(&mut buf);
        let Ok(Some(Frame::RequestHead(back))) = Frame::decode(&mut buf) else {
            panic!("decodes")
        };
        assert_eq!(back.uri, "/");
        // ...and a peer that writes one by hand is refused.
        let mut raw = BytesMut::new();
        request().encode(&mut raw);
        let text = "http://evil.example/";
        let pos = raw
            .windows(b"/upload?x=1".len())
            .position(|w| w == b"/upload?x=1")
            .expect("target in frame");
        let mut forged = BytesMut::from(&raw[..pos - 2]);
        forged.put_u16(text.len() as u16);
        forged.put_slice(text.as_bytes());
        forged.put_slice(&raw[pos + b"/upload?x=1".len()..]);
        let len = (forged.len() - FRAME_HEADER_LEN) as u32;
        forged[1..5].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            Frame::decode(&mut forged),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
