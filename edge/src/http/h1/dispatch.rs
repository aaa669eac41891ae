//! Which server takes a public connection: pingora's HTTP/2 server for h2 (TLS ALPN) and h2c
//! (the HTTP/2 preface on the plain listener), hyper's HTTP/1.x server ([`connection::serve`])
//! for everything else.
//!
//! pingora's proxy application can only be built inside pingora's listening service (its
//! constructor for custom upstream connectors is private), so the edge cannot wrap it in a
//! server application of its own. Instead the service is built with pingora's `force_custom`
//! option ([`server_options`]): pingora keeps serving TLS connections that negotiated h2 itself
//! and hands every other connection, with the proxy application, to [`route`] (its custom
//! session hook). There a plain connection that starts with the HTTP/2 preface goes back to
//! pingora dressed as h2 ([`H2cStream`]); the rest is HTTP/1.x for hyper.
//!
//! The HTTPS listener is a second pingora service without TLS settings, every connection sent
//! to [`route_tls`] ([`https_hook`]): the edge's own TLS ([`TlsFront`]) reads the ClientHello,
//! passes TLS endpoints' connections through untouched, and terminates the rest; h2 then goes
//! to pingora's HTTP/2 server, http/1.1 to the HTTP/1.x server in use.

use super::connection::{self, HEADER_READ_TIMEOUT};
use super::h2c::H2cStream;
use crate::config::H1Server;
use crate::tls::front::{Accepted, TlsFront};
use futures_util::future::BoxFuture;
use pingora::apps::{HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tracing::debug;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// pingora's options for the public service: with [`H1Server::Hyper`], every connection but
/// TLS h2 goes to the custom session hook ([`route`]); with [`H1Server::Pingora`], pingora
/// serves HTTP/1.x itself and recognises h2c by its preface.
pub fn server_options(h1: H1Server) -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    match h1 {
        H1Server::Hyper => options.force_custom = true,
        H1Server::Pingora => options.h2c = true,
    }
    options
}

/// What a plain connection's first bytes say it speaks.
enum Opening {
    /// The HTTP/2 preface (prior knowledge, h2c).
    H2c(Stream),
    /// Anything else: HTTP/1.x.
    Http1(Stream),
}

/// Why a plain connection was dropped before it said what it speaks.
#[derive(Debug, thiserror::Error)]
enum OpeningError {
    #[error("reading the first bytes: {0}")]
    Io(#[from] std::io::Error),
    #[error("no request within {0:?}")]
    Timeout(std::time::Duration),
    #[error("closed before sending anything")]
    Closed,
}

/// Reads as much of the connection's start as it takes to tell the HTTP/2 preface from an
/// HTTP/1 request line, then puts the bytes back. Unlike a fixed 24-byte peek it decides on the
/// first byte that differs from the preface, so a request shorter than the preface is served.
async fn opening(stream: Stream) -> Result<Opening, OpeningError> {
    if !stream.as_any().is::<TcpStream>() {
        // Not pingora's TCP stream (no rewind): peek the preface's length as pingora does.
        let mut stream = stream;
        let mut buf = [0u8; H2_PREFACE.len()];
        let peeked = stream.try_peek(&mut buf).await?;
        return Ok(if peeked && &buf == H2_PREFACE {
            Opening::H2c(stream)
        } else {
            Opening::Http1(stream)
        });
    }
    let mut tcp = stream
        .into_any()
        .downcast::<TcpStream>()
        .map_err(|_| OpeningError::Closed)?;
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut n = 0;
    let read = async {
        loop {
            let got = tcp.read(&mut buf[n..]).await?;
            if got == 0 {
                return Err(OpeningError::Closed);
            }
            n += got;
            if buf[..n] != H2_PREFACE[..n] || n == H2_PREFACE.len() {
                return Ok(());
            }
        }
    };
    tokio::time::timeout(HEADER_READ_TIMEOUT, read)
        .await
        .map_err(|_| OpeningError::Timeout(HEADER_READ_TIMEOUT))??;
    let h2c = &buf[..n] == H2_PREFACE;
    tcp.rewind(&buf[..n]);
    let stream: Stream = tcp;
    Ok(if h2c {
        Opening::H2c(stream)
    } else {
        Opening::Http1(stream)
    })
}

/// Serves a connection pingora handed over (`app` is pingora's proxy application).
pub async fn route<A>(app: Arc<A>, stream: Stream, shutdown: ShutdownWatch)
where
    A: HttpServerApp + Send + Sync + 'static,
{
    if stream.get_ssl_digest().is_some() {
        // TLS that did not negotiate h2 (pingora served that): HTTP/1.x.
        return connection::serve(app, stream, shutdown).await;
    }
    let mut stop = shutdown.clone();
    let opened = tokio::select! {
        opened = opening(stream) => opened,
        // A connection that has not sent anything yet is dropped when the edge stops.
        _ = stop.wait_for(|stop| *stop) => return,
    };
    match opened {
        Ok(Opening::H2c(stream)) => {
            let stream: Stream = Box::new(H2cStream::new(stream));
            // pingora's HTTP/2 server never hands a connection back.
            let _ = ServerApp::process_new(&app, stream, &shutdown).await;
        }
        Ok(Opening::Http1(stream)) => connection::serve(app, stream, shutdown).await,
        Err(e) => debug!("client connection dropped: {e}"),
    }
}

/// [`route`] in the shape of pingora's custom session hook (`ProcessCustomSession`).
pub fn hook<A>(
    app: Arc<A>,
    stream: Stream,
    shutdown: &ShutdownWatch,
) -> BoxFuture<'static, Option<Stream>>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    let shutdown = shutdown.clone();
    Box::pin(async move {
        route(app, stream, shutdown).await;
        None
    })
}

/// pingora's options for the HTTPS service: every connection comes to [`route_tls`], whichever
/// HTTP/1.x server is in use (pingora never sees the TLS bytes).
pub fn https_server_options() -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.force_custom = true;
    options
}

/// Serves a connection on the HTTPS listener: TLS by [`TlsFront`] (or passed through), then
/// HTTP/2 or HTTP/1.x by ALPN.
pub async fn route_tls<A>(
    app: Arc<A>,
    front: &TlsFront,
    h1: H1Server,
    stream: Stream,
    shutdown: ShutdownWatch,
) where
    A: HttpServerApp + Send + Sync + 'static,
{
    let mut stop = shutdown.clone();
    let accepted = tokio::select! {
        accepted = front.accept(stream) => accepted,
        // A connection still in its handshake is dropped when the edge stops.
        _ = stop.wait_for(|stop| *stop) => return,
    };
    match accepted {
        Ok(Accepted::Terminated(stream)) => serve_tls(app, stream, h1, shutdown).await,
        Ok(Accepted::Passthrough(target, conn)) => target.serve(conn).await,
        Err(e) => debug!("TLS client connection dropped: {e}"),
    }
}

/// A terminated TLS connection to the HTTP server its ALPN picked.
async fn serve_tls<A>(app: Arc<A>, stream: Stream, h1: H1Server, shutdown: ShutdownWatch)
where
    A: HttpServerApp + Send + Sync + 'static,
{
    if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        // The stream reports TLS and h2: pingora's HTTP/2 server, which never hands it back.
        let _ = ServerApp::process_new(&app, stream, &shutdown).await;
        return;
    }
    match h1 {
        H1Server::Hyper => connection::serve(app, stream, shutdown).await,
        H1Server::Pingora => pingora_h1(app, stream, &shutdown).await,
    }
}

/// pingora's HTTP/1.x server on a connection, as pingora runs it when no custom hook takes the
/// connection (its `process_new` would send this one back to the hook): keep-alive for 60 s
/// until shutdown, the request limit from the options.
async fn pingora_h1<A>(app: Arc<A>, stream: Stream, shutdown: &ShutdownWatch)
where
    A: HttpServerApp + Send + Sync + 'static,
{
    let limit = app.server_options().and_then(|o| o.keepalive_request_limit);
    let mut session = ServerSession::new_http1(stream);
    session.set_keepalive((!*shutdown.borrow()).then_some(60));
    session.set_keepalive_reuses_remaining(limit);
    let mut reused = app.process_new_http(session, shutdown).await;
    while let Some((stream, settings)) = reused.map(|r| r.consume()) {
        let mut session = ServerSession::new_http1(stream);
        if let Some(settings) = settings {
            settings.apply_to_session(&mut session);
        }
        reused = app.process_new_http(session, shutdown).await;
    }
}

/// [`route_tls`] in the shape of pingora's custom session hook, for the HTTPS service.
pub fn https_hook<A>(
    front: Arc<TlsFront>,
    h1: H1Server,
) -> impl Fn(Arc<A>, Stream, &ShutdownWatch) -> BoxFuture<'static, Option<Stream>>
       + Send
       + Sync
       + Unpin
       + 'static
where
    A: HttpServerApp + Send + Sync + 'static,
{
    move |app, stream, shutdown| {
        let (front, shutdown) = (front.clone(), shutdown.clone());
        Box::pin(async move {
            route_tls(app, &front, h1, stream, shutdown).await;
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A pingora TCP stream whose peer wrote `bytes` (and keeps the connection open).
    async fn stream_with(bytes: &'static [u8]) -> (Stream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        client.write_all(bytes).await.expect("write");
        (Box::new(TcpStream::from(server)), client)
    }

    async fn read_all(stream: &mut Stream, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await.expect("read back");
        buf
    }

    #[tokio::test]
    async fn a_request_shorter_than_the_preface_is_http1_at_once() {
        let request = b"GET / HTTP/1.0\r\n\r\n";
        let (stream, _client) = stream_with(request).await;
        let opened = tokio::time::timeout(std::time::Duration::from_secs(2), opening(stream))
            .await
            .expect("decided without waiting for 24 bytes")
            .expect("opening");
        let Opening::Http1(mut stream) = opened else {
            panic!("not HTTP/1");
        };
        assert_eq!(read_all(&mut stream, request.len()).await, request);
    }

    #[tokio::test]
    async fn the_preface_is_h2c_and_is_put_back() {
        let (stream, _client) = stream_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0").await;
        let Opening::H2c(stream) = opening(stream).await.expect("opening") else {
            panic!("not h2c");
        };
        let mut stream: Stream = Box::new(H2cStream::new(stream));
        assert_eq!(
            stream.selected_alpn_proto(),
            Some(pingora::protocols::ALPN::H2)
        );
        assert_eq!(
            read_all(&mut stream, 26).await,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"
        );
    }

    #[tokio::test]
    async fn a_preface_prefix_then_something_else_is_http1() {
        let (stream, _client) = stream_with(b"PRI /x HTTP/1.1\r\n").await;
        let Opening::Http1(mut stream) = opening(stream).await.expect("opening") else {
            panic!("not HTTP/1");
        };
        assert_eq!(read_all(&mut stream, 6).await, b"PRI /x");
    }

    #[tokio::test]
    async fn a_connection_closed_at_once_is_dropped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        let (server, _) = listener.accept().await.expect("accept");
        let result = opening(Box::new(TcpStream::from(server))).await;
        assert!(matches!(result, Err(OpeningError::Closed)));
    }

    #[test]
    fn options_route_everything_but_tls_h2_to_the_bridge() {
        let hyper = server_options(H1Server::Hyper);
        assert!(hyper.force_custom && !hyper.h2c);
        let pingora = server_options(H1Server::Pingora);
        assert!(!pingora.force_custom && pingora.h2c);
    }
}
