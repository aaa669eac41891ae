//! One HTTP/1.x client connection: hyper reads each request and writes each response, pingora's
//! proxy runs every phase on the request through a [`BridgeSession`], and one task drives both.
//!
//! hyper calls the service below for each request it parsed; the service starts the proxy on
//! the request (a future, not a task: no spawn per request) and answers with the response head
//! once the proxy wrote it. [`serve`] polls hyper's connection and every proxy future it
//! started, in one task, until the connection and all its requests are done: a proxy future
//! outlives hyper's interest in its response (logging runs after the last byte went out), and
//! after a 101 it carries the upgraded connection on its own.

use super::head::{self, refusal};
use super::pipe::{Head, Pipe, PipeError, ResponseBody};
use super::session::{BridgeSession, ClientConn};
use http::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use pingora::apps::HttpServerApp;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use sluice_proto::error_code::ErrorCode;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::debug;

/// How long a client has for a request head, counted from when the connection starts waiting
/// for it (so also how long an idle keep-alive connection stays open). pingora's own server
/// gave each read of the head 60 s and kept idle HTTP/1.1 connections forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Header fields hyper parses in one head: pingora's parser's limit, so the edge's guard (100
/// fields, 431 with `sluice-error-code`) answers every head up to it, as before.
pub const MAX_HEADERS: usize = 256;

/// A request the proxy works on: its future and its response pipe.
struct InFlight {
    proxy: Pin<Box<dyn Future<Output = ()> + Send>>,
    pipe: Arc<Pipe>,
}

/// Requests the service started and [`serve`] has not picked up yet.
#[derive(Default)]
struct Started(Mutex<Vec<InFlight>>);

/// hyper's service: each request becomes a [`BridgeSession`] the proxy runs on.
struct Bridge<A> {
    app: Arc<A>,
    conn: Arc<ClientConn>,
    started: Arc<Started>,
    shutdown: ShutdownWatch,
}

impl<A> hyper::service::Service<http::Request<Incoming>> for Bridge<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = PipeError;
    type Future = Answer;

    fn call(&self, req: http::Request<Incoming>) -> Answer {
        let (mut parts, body) = req.into_parts();
        let upgrade = parts.extensions.remove::<OnUpgrade>();
        let head = match head::request_header(parts) {
            Ok(head) => head,
            Err(e) => {
                debug!("refused request head: {e}");
                return Answer::Refused(Some(
                    refusal(ErrorCode::BadRequest).map(|b| ResponseBody::Whole(Some(b))),
                ));
            }
        };
        let pipe = Arc::new(Pipe::new());
        let session = BridgeSession::new(head, body, upgrade, pipe.clone(), self.conn.clone());
        let (app, shutdown) = (self.app.clone(), self.shutdown.clone());
        let proxy = Box::pin(async move {
            let session = ServerSession::new_custom(Box::new(session));
            // A custom session is never handed back for reuse: hyper keeps the connection.
            let _ = app.process_new_http(session, &shutdown).await;
        });
        self.started.0.lock().push(InFlight {
            proxy,
            pipe: pipe.clone(),
        });
        Answer::Proxied(pipe)
    }
}

/// The service's answer to hyper: the proxy's response once its head is written, or the
/// bridge's own refusal.
enum Answer {
    Proxied(Arc<Pipe>),
    Refused(Option<Response<ResponseBody>>),
}

impl Future for Answer {
    type Output = Result<Response<ResponseBody>, PipeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Refused(resp) => Poll::Ready(resp.take().ok_or(PipeError::NoResponse)),
            Answer::Proxied(pipe) => pipe.poll_head(cx).map_ok(|Head { parts, .. }| {
                Response::from_parts(parts, ResponseBody::Piped(pipe.clone()))
            }),
        }
    }
}

/// hyper's settings for a public connection.
fn builder() -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS);
    b
}

/// Serves one HTTP/1.x connection until it closes and every request on it is done.
pub async fn serve<A>(app: Arc<A>, stream: Stream, shutdown: ShutdownWatch)
where
    A: HttpServerApp + Send + Sync + 'static,
{
    let started = Arc::new(Started::default());
    let service = Bridge {
        app,
        conn: Arc::new(ClientConn::of(&stream)),
        started: started.clone(),
        shutdown: shutdown.clone(),
    };
    let conn = builder()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = pin!(conn);
    let mut stop = shutdown;
    let mut stopping = pin!(async move {
        // Also when the edge is gone altogether (the sender dropped).
        let _ = stop.wait_for(|stop| *stop).await;
    });
    let mut conn_done = false;
    let mut closing = false;
    let mut inflight: Vec<InFlight> = Vec::new();
    poll_fn(|cx| {
        if !closing && stopping.as_mut().poll(cx).is_ready() {
            // No more requests: an idle connection closes now, a busy one after its response.
            closing = true;
            if !conn_done {
                conn.as_mut().graceful_shutdown();
            }
        }
        if !conn_done {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                conn_done = true;
                if let Err(e) = result {
                    debug!("client connection ended: {e}");
                }
            }
        }
        inflight.append(&mut started.0.lock());
        let mut close = false;
        inflight.retain_mut(|r| {
            if conn_done {
                r.pipe.connection_ended();
            }
            let pending = r.proxy.as_mut().poll(cx).is_pending();
            close |= r.pipe.take_close_request();
            pending
        });
        if close && !closing && !conn_done {
            // The proxy ended a request so that the connection must not be reused.
            closing = true;
            conn.as_mut().graceful_shutdown();
            cx.waker().wake_by_ref();
        }
        if conn_done && inflight.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}
