//! [`TcpLink`]: the link over TCP, for networks that block UDP: TLS 1.3 (set up by the edge
//! and the agent) carrying HTTP/2 (the `h2` crate) as the stream multiplexer.
//!
//! The agent dials, but it is the HTTP/2 *server*: only a client opens streams, and the edge
//! opens them (requests, as over QUIC). HTTP/2 has no close code with a reason, so the first
//! stream is the link's own: each side writes one close message on it (`code`, then the
//! reason) when it closes, and the other side reports it as [`Closed::Peer`]. Keep-alives are
//! HTTP/2 PINGs every [`KEEP_ALIVE_INTERVAL`], which also measure the round trip; a link that
//! hears nothing for [`IDLE_TIMEOUT`] is dead, as a QUIC link is.

pub(crate) mod counted;
pub(crate) mod state;
pub(crate) mod stream;

use super::error::Closed;
use super::halves::{RecvHalf, SendHalf};
use crate::transport::{IDLE_TIMEOUT, KEEP_ALIVE_INTERVAL};
use bytes::{BufMut, Bytes, BytesMut};
use counted::Counted;
use state::Shared;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stream::{H2Recv, H2Send};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Per-stream receive window (as QUIC's stream window).
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;
/// Whole-connection receive window (as QUIC's connection window).
const CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// Largest DATA frame either side sends: fewer frame heads on bulk transfers.
const MAX_FRAME: u32 = 256 * 1024;
/// How much one stream may have buffered in h2 waiting to be written.
const SEND_BUFFER: usize = 4 * 1024 * 1024;
/// How long a closing side keeps the connection so its close message goes out.
const CLOSE_GRACE: Duration = Duration::from_millis(250);
/// How often the idle check looks (finer than the keep-alive, so a dead peer is found close
/// to [`IDLE_TIMEOUT`]).
const IDLE_CHECK: Duration = Duration::from_millis(250);
/// Longest close reason kept from the peer.
const MAX_REASON: usize = 1024;

/// Why a TCP link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake: {0}")]
    H2(#[from] h2::Error),
    /// The peer left before the link's own stream was opened.
    #[error("the peer left during setup")]
    Gone,
}

/// One link over HTTP/2 on TLS on TCP. Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct TcpLink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    side: Side,
    /// This side's half of the link's own stream, for the close message.
    close_stream: Mutex<Option<h2::SendStream<Bytes>>>,
}

#[derive(Debug)]
enum Side {
    /// The edge: the HTTP/2 client, which opens streams (one handle, so h2's readiness
    /// covers every stream this side opens).
    Edge(tokio::sync::Mutex<h2::client::SendRequest<Bytes>>),
    /// The agent: the HTTP/2 server, which accepts them (from the connection's task).
    Agent(tokio::sync::Mutex<mpsc::UnboundedReceiver<(SendHalf, RecvHalf)>>),
}

/// The head of every stream the edge opens (HTTP/2 needs one; nothing reads it).
fn stream_head() -> http::Request<()> {
    let mut head = http::Request::new(());
    *head.method_mut() = http::Method::POST;
    *head.uri_mut() = http::Uri::from_static("https://sluice.link/");
    head
}

impl TcpLink {
    /// The edge's side, on `io` (a TLS connection the agent dialled from `remote`).
    pub async fn edge<T>(io: T, remote: SocketAddr) -> Result<TcpLink, SetupError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Shared::new(remote);
        let (opener, mut conn) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_send_buffer_size(SEND_BUFFER)
            // No stream before the agent's SETTINGS say how many it allows (h2 would assume
            // 100 until then).
            .initial_max_send_streams(0)
            .enable_push(false)
            .handshake::<_, Bytes>(Counted::new(io, shared.clone()))
            .await?;
        let pings = conn.ping_pong();
        tokio::spawn(drive_edge(conn, shared.clone()));
        let mut ready = opener.clone().ready().await?;
        let (answer, send) = ready.send_request(stream_head(), false)?;
        let answer = answer.await?;
        tokio::spawn(read_close(
            H2Recv::open(answer.into_body(), shared.clone()),
            shared.clone(),
        ));
        if let Some(pings) = pings {
            tokio::spawn(keep_alive(pings, shared.clone()));
        }
        Ok(TcpLink::new(
            shared,
            Side::Edge(tokio::sync::Mutex::new(opener)),
            send,
        ))
    }

    /// The agent's side, on `io` (its TLS connection to the edge at `remote`); the edge may
    /// have `max_streams` request streams open at once.
    pub async fn agent<T>(
        io: T,
        remote: SocketAddr,
        max_streams: u32,
    ) -> Result<TcpLink, SetupError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Shared::new(remote);
        let mut conn = h2::server::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .max_send_buffer_size(SEND_BUFFER)
            // The link's own stream and the control stream come on top of the requests.
            .max_concurrent_streams(max_streams.saturating_add(2))
            .handshake::<_, Bytes>(Counted::new(io, shared.clone()))
            .await?;
        let pings = conn.ping_pong();
        let (head, mut respond) = conn.accept().await.ok_or(SetupError::Gone)??;
        let send = respond.send_response(http::Response::new(()), false)?;
        tokio::spawn(read_close(
            H2Recv::open(head.into_body(), shared.clone()),
            shared.clone(),
        ));
        let (streams, accepted) = mpsc::unbounded_channel();
        tokio::spawn(drive_agent(conn, streams, shared.clone()));
        if let Some(pings) = pings {
            tokio::spawn(keep_alive(pings, shared.clone()));
        }
        Ok(TcpLink::new(
            shared,
            Side::Agent(tokio::sync::Mutex::new(accepted)),
            send,
        ))
    }

    fn new(shared: Arc<Shared>, side: Side, close_stream: h2::SendStream<Bytes>) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                side,
                close_stream: Mutex::new(Some(close_stream)),
            }),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn gone(&self, e: impl std::fmt::Display) -> Closed {
        self.close_reason()
            .unwrap_or_else(|| Closed::Lost(e.to_string()))
    }

    pub(super) async fn open_bi(&self) -> Result<(SendHalf, RecvHalf), Closed> {
        let Side::Edge(opener) = &self.inner.side else {
            return Err(Closed::Lost("the agent's side opens no streams".into()));
        };
        if let Some(reason) = self.close_reason() {
            return Err(reason);
        }
        let mut opener = opener.lock().await;
        poll_fn(|cx| opener.poll_ready(cx))
            .await
            .map_err(|e| self.gone(e))?;
        let (answer, send) = opener
            .send_request(stream_head(), false)
            .map_err(|e| self.gone(e))?;
        drop(opener);
        // Over the agent's limit h2 queues a stream locally (and counts its open streams only
        // as its connection task gets to them), so a stream is open once the agent answered
        // it: a caller's timeout then sees the limit as over QUIC, and a pooled stream is
        // never one still waiting for a slot. A new stream costs a round trip; pooled ones
        // carry most requests.
        let answer = answer.await.map_err(|e| self.gone(e))?;
        let shared = self.shared().clone();
        Ok((
            SendHalf::H2(H2Send::new(send, shared.clone())),
            RecvHalf::H2(H2Recv::open(answer.into_body(), shared)),
        ))
    }

    pub(super) async fn accept_bi(&self) -> Result<(SendHalf, RecvHalf), Closed> {
        let Side::Agent(accepted) = &self.inner.side else {
            return Err(Closed::Lost("the edge's side accepts no streams".into()));
        };
        let next = accepted.lock().await.recv().await;
        next.ok_or_else(|| self.gone("the connection ended"))
    }

    pub(super) fn close(&self, code: u32, reason: &[u8]) {
        let stream = self
            .inner
            .close_stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut stream) = stream {
            let mut message = BytesMut::with_capacity(4 + reason.len());
            message.put_u32(code);
            message.extend_from_slice(&reason[..reason.len().min(MAX_REASON)]);
            // Tiny, and the window is fresh: h2 sends it as the connection winds down.
            let _ = stream.send_data(message.freeze(), true);
        }
        self.shared().end(Closed::Local);
    }

    pub(super) async fn closed(&self) -> Closed {
        self.shared().ended().await
    }

    pub(super) fn close_reason(&self) -> Option<Closed> {
        self.shared().reason()
    }

    pub(super) fn rtt(&self) -> Duration {
        Duration::from_micros(self.shared().rtt_micros.load(Ordering::Relaxed))
    }

    pub(super) fn remote_address(&self) -> SocketAddr {
        self.shared().remote
    }

    pub(super) fn arrivals(&self) -> u64 {
        self.shared().arrivals.load(Ordering::Relaxed)
    }
}

/// How an h2 connection's end reads as a link's end.
fn lost(result: Result<(), h2::Error>) -> Closed {
    match result {
        Ok(()) => Closed::Lost("the peer closed the connection".into()),
        Err(e) => Closed::Lost(e.to_string()),
    }
}

/// Runs the edge's HTTP/2 connection until it breaks or the link ends (then a moment more,
/// so a close message goes out).
async fn drive_edge<T>(conn: h2::client::Connection<Counted<T>, Bytes>, shared: Arc<Shared>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    tokio::pin!(conn);
    tokio::select! {
        result = &mut conn => {
            shared.end(lost(result));
        }
        _ = shared.ended() => {
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut conn).await;
        }
    }
}

/// Runs the agent's HTTP/2 connection: every stream the edge opens is answered with an empty
/// head and handed to [`TcpLink::accept_bi`].
async fn drive_agent<T>(
    mut conn: h2::server::Connection<Counted<T>, Bytes>,
    streams: mpsc::UnboundedSender<(SendHalf, RecvHalf)>,
    shared: Arc<Shared>,
) where
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            next = conn.accept() => match next {
                Some(Ok((head, mut respond))) => {
                    let Ok(send) = respond.send_response(http::Response::new(()), false) else {
                        continue;
                    };
                    let halves = (
                        SendHalf::H2(H2Send::new(send, shared.clone())),
                        RecvHalf::H2(H2Recv::open(head.into_body(), shared.clone())),
                    );
                    let _ = streams.send(halves);
                }
                Some(Err(e)) => {
                    shared.end(lost(Err(e)));
                    return;
                }
                None => {
                    shared.end(lost(Ok(())));
                    return;
                }
            },
            _ = shared.ended() => {
                let _ = tokio::time::timeout(CLOSE_GRACE, poll_fn(|cx| conn.poll_closed(cx))).await;
                return;
            }
        }
    }
}

/// Reads the peer's close message from the link's own stream, if it sends one.
async fn read_close(mut stream: H2Recv, shared: Arc<Shared>) {
    let mut message = BytesMut::new();
    loop {
        match stream.read(MAX_REASON + 4).await {
            Ok(Some(data)) if message.len() < MAX_REASON + 4 => message.extend_from_slice(&data),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return,
        }
    }
    if message.len() >= 4 {
        let reason = message.split_off(4).freeze();
        let code = u32::from_be_bytes([message[0], message[1], message[2], message[3]]);
        shared.end(Closed::Peer { code, reason });
    }
}

/// PINGs the peer every [`KEEP_ALIVE_INTERVAL`] (one at a time), measuring the round trip,
/// and ends the link when nothing at all has arrived for [`IDLE_TIMEOUT`].
async fn keep_alive(mut pings: h2::PingPong, shared: Arc<Shared>) {
    let mut check = tokio::time::interval(IDLE_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = shared.arrivals.load(Ordering::Relaxed);
    let mut heard = Instant::now();
    let mut sent: Option<Instant> = None;
    let mut last_ping = Instant::now() - KEEP_ALIVE_INTERVAL;
    loop {
        tokio::select! {
            _ = shared.ended() => return,
            _ = check.tick() => {
                let now = Instant::now();
                let arrivals = shared.arrivals.load(Ordering::Relaxed);
                if arrivals != seen {
                    seen = arrivals;
                    heard = now;
                } else if now.duration_since(heard) >= IDLE_TIMEOUT {
                    shared.end(Closed::TimedOut);
                    return;
                }
                if sent.is_none() && now.duration_since(last_ping) >= KEEP_ALIVE_INTERVAL
                    && pings.send_ping(h2::Ping::opaque()).is_ok()
                {
                    sent = Some(now);
                    last_ping = now;
                }
            }
            pong = poll_fn(|cx| pings.poll_pong(cx)), if sent.is_some() => match pong {
                Ok(_) => {
                    let rtt = sent.take().map(|at| at.elapsed()).unwrap_or_default();
                    shared.rtt_micros.store(rtt.as_micros() as u64, Ordering::Relaxed);
                }
                Err(_) => return,
            },
        }
    }
}
