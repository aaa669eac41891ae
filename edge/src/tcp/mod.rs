//! TCP endpoints' public side: each client connection one of the edge's TCP ports accepts,
//! carried to the agent that holds the port on a QUIC stream of its own (`connection.rs`).
//! The ports themselves are handed out at admission (`tunnel/ports.rs`).

pub(crate) mod connection;

use crate::events::EventExport;
use crate::metrics::EdgeMetrics;
use crate::tunnel::ports::ConnectionHandler;
use crate::tunnel::routes::RouteRegistry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tracing::Instrument;

/// What serving a TCP connection reads, built once at start.
pub struct TcpState {
    /// Port → agent session; the agent listener writes it.
    pub routes: Arc<dyn RouteRegistry>,
    /// How long a connection waits for the agent to accept a new stream.
    pub stream_open_timeout: Duration,
    /// Connection counts and bytes.
    pub metrics: EdgeMetrics,
    /// Where `tcp_connection_closed.v0` events go.
    pub events: Arc<EventExport>,
}

/// The [`ConnectionHandler`] the TCP ports hand their connections to.
pub struct TcpSide(pub Arc<TcpState>);

impl ConnectionHandler for TcpSide {
    fn serve(&self, client: TcpStream, peer: SocketAddr, local: SocketAddr) {
        let state = self.0.clone();
        let span = tracing::Span::current();
        tokio::spawn(connection::serve(client, peer, local, state).instrument(span));
    }
}
