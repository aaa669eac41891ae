//! [`Client`]: the client side of a connection the edge carries to an agent: a TCP
//! endpoint's socket, a TLS endpoint's connection as the HTTPS port handed it over, or that
//! connection after terminate-tls finished its handshake.

use bytes::BytesMut;
use futures_util::future::BoxFuture;
use pingora::protocols::Stream;
use rustls::ServerConfig;
use sluice_policy::TlsInfo;
use sluice_proto::framed::{FrameReader, FrameWriter};
use sluice_proto::splice::{splice, splice_halves, Spliced};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// How long terminate-tls waits for the client's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client side of a carried connection.
pub(crate) enum Client {
    /// A TCP endpoint's socket.
    Tcp(TcpStream),
    /// A TLS endpoint's connection, its ClientHello still unread.
    Tls(Stream),
    /// A TLS endpoint's connection after terminate-tls: plaintext for the agent.
    Terminated(Box<TlsStream<Stream>>),
    /// A connection whose handshake failed.
    Gone,
}

/// Why terminate-tls could not finish the handshake.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TerminateError {
    /// Only a TLS endpoint's connection carries a handshake to finish.
    #[error("terminate-tls applies to tls:// endpoints only")]
    NotTls,
    /// The client's handshake failed (its error, as rustls reports it).
    #[error("handshake: {0}")]
    Handshake(std::io::Error),
    /// The client did not finish the handshake in time.
    #[error("no handshake within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

impl Client {
    /// Moves its bytes both ways with the stream's (see `sluice_proto::splice`).
    pub(crate) fn splice<'a>(
        &'a mut self,
        reader: &'a mut FrameReader,
        writer: &'a mut FrameWriter,
    ) -> BoxFuture<'a, Spliced> {
        match self {
            Client::Tcp(tcp) => {
                let (read, write) = tcp.split();
                Box::pin(splice_halves(reader, writer, read, write))
            }
            Client::Tls(stream) => Box::pin(splice(reader, writer, stream)),
            Client::Terminated(tls) => Box::pin(splice(reader, writer, tls)),
            Client::Gone => Box::pin(async { Spliced::default() }),
        }
    }

    /// Reads what the client sent into `buf` (0 at its end, or for a connection already
    /// gone).
    pub(crate) async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Client::Tcp(tcp) => tcp.read_buf(buf).await,
            Client::Tls(stream) => stream.read_buf(buf).await,
            Client::Terminated(tls) => tls.read_buf(buf).await,
            Client::Gone => Ok(0),
        }
    }

    /// Makes a connection cut on the other side visible to the client: a TCP reset, never a
    /// clean end. TLS needs nothing: its client takes a connection that ends without the
    /// server's close_notify for a cut (a clean end sends one, when the splice shuts down).
    pub(crate) fn reset(&self) {
        if let Client::Tcp(tcp) = self {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
        }
    }

    /// terminate-tls: finishes the client's handshake with `config`; the connection is
    /// plaintext afterwards. Returns the handshake's facts for `conn.tls.*`.
    pub(crate) async fn terminate(
        &mut self,
        config: Arc<ServerConfig>,
    ) -> Result<TlsInfo, TerminateError> {
        let Client::Tls(_) = self else {
            return Err(TerminateError::NotTls);
        };
        let Client::Tls(stream) = std::mem::replace(self, Client::Gone) else {
            return Err(TerminateError::NotTls);
        };
        let accept = tokio_rustls::TlsAcceptor::from(config).accept(stream);
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
            .await
            .map_err(|_| TerminateError::Timeout)?
            .map_err(TerminateError::Handshake)?;
        let info = super::terminate::facts(tls.get_ref().1);
        *self = Client::Terminated(Box::new(tls));
        Ok(info)
    }
}
