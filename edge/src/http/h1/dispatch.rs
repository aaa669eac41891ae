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

use super::connection::{self, HEADER_READ_TIMEOUT};
use super::h2c::H2cStream;
use crate::config::H1Server;
use futures_util::future::BoxFuture;
use pingora::apps::{HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::Stream;
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
    match opening(stream).await {
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
