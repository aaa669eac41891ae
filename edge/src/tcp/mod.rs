//! TCP and TLS endpoints' public side: each client connection one of the edge's TCP ports
//! accepts, or the HTTPS port hands over by SNI (`tls.rs`), carried to the agent that holds
//! the endpoint on a QUIC stream of its own (`connection.rs`). The ports themselves are handed
//! out at admission (`tunnel/ports.rs`). The HTTPS port also runs HTTPS endpoints'
//! on_tcp_connect there, before its handshake (`https.rs`).

pub(crate) mod client;
pub(crate) mod client_auth;
pub(crate) mod connection;
pub(crate) mod https;
pub(crate) mod state;
pub(crate) mod terminate;
pub(crate) mod tls;

pub use state::TcpState;

use crate::tunnel::ports::ConnectionHandler;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

/// The [`ConnectionHandler`] the TCP ports hand their connections to.
pub struct TcpSide(pub Arc<TcpState>);

impl ConnectionHandler for TcpSide {
    fn serve(&self, client: TcpStream, peer: SocketAddr, local: SocketAddr) {
        // Each connection's span is a root: the port outlives the session that opened it.
        tokio::spawn(connection::serve_port(client, peer, local, self.0.clone()));
    }
}
