//! [`AgentConnector`]: pingora's custom L4 connector that opens one QUIC stream per request —
//! the only place where HTTP meets QUIC on the edge.

use super::handle::SessionHandle;
use crate::coded_error::edge_error;
use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use prometheus::IntGauge;
use sluice_proto::codec::write_frame;
use sluice_proto::error_code::ErrorCode;
use sluice_proto::quic_io::QuicIo;
use sluice_proto::stream::StreamHeader;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::debug;

/// Opens a stream to one agent session for one request.
#[derive(Debug)]
pub struct AgentConnector {
    /// The session to open the stream on.
    pub session: Arc<SessionHandle>,
    /// Written as the stream's first frame.
    pub header: StreamHeader,
    /// How long to wait for the agent to grant a stream (it caps concurrent streams).
    pub open_timeout: Duration,
    /// The open-streams gauge, raised while the stream lives.
    pub streams_open: IntGauge,
}

#[async_trait]
impl L4Connect for AgentConnector {
    async fn connect(&self, _addr: &SocketAddr) -> pingora::Result<Stream> {
        let opened = tokio::time::timeout(self.open_timeout, self.session.conn.open_bi()).await;
        let (mut send, recv) = match opened {
            Err(_) => {
                return Err(edge_error(
                    ErrorCode::AgentBusy,
                    "no stream granted in time",
                ))
            }
            Ok(Err(e)) => return Err(edge_error(ErrorCode::AgentOffline, e.to_string())),
            Ok(Ok(halves)) => halves,
        };
        write_frame(&mut send, &self.header)
            .await
            .map_err(|e| edge_error(ErrorCode::AgentOffline, e.to_string()))?;
        let io = QuicIo::new(send, recv);
        debug!(stream = io.id(), "opened agent stream");
        Ok(Stream::from(VirtualSocketStream::new(Box::new(
            AgentStream(io, OpenStream::new(&self.streams_open)),
        ))))
    }
}

/// A QUIC stream presented to pingora as a virtual socket; the second field only lives as long
/// as the stream, keeping it counted.
#[derive(Debug)]
struct AgentStream(QuicIo, #[allow(dead_code)] OpenStream);

/// Counts a stream in the open-streams gauge until dropped.
#[derive(Debug)]
struct OpenStream(IntGauge);

impl OpenStream {
    fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl VirtualSocket for AgentStream {
    fn set_socket_option(&self, _opt: VirtualSockOpt) -> std::io::Result<()> {
        // TCP options (nodelay, keepalive) have no meaning on a QUIC stream.
        Ok(())
    }
}

impl AsyncRead for AgentStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for AgentStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
