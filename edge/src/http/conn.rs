//! Facts about the client's connection, read from pingora's session: addresses, TLS version.

pub use crate::addrs::inet;
use crate::addrs::UNSPECIFIED;
use pingora::proxy::Session;
use std::net::{IpAddr, SocketAddr};

/// The client's address (L4 peer); `0.0.0.0:0` when pingora has none (never on TCP).
pub fn client_socket(session: &Session) -> SocketAddr {
    inet(session.client_addr()).unwrap_or(UNSPECIFIED)
}

/// The client's IP, when pingora knows it.
pub fn client_ip(session: &Session) -> Option<IpAddr> {
    inet(session.client_addr()).map(|a| a.ip())
}

/// The port the client connected to.
pub fn server_port(session: &Session) -> Option<u16> {
    inet(session.server_addr()).map(|a| a.port())
}

/// The TLS version of the client's connection as policies see it (`1.2`, `1.3`), `None` on
/// plain HTTP. pingora reports rustls' names (`TLSv1_3`).
pub fn tls_version(session: &Session) -> Option<String> {
    let digest = session.digest()?.ssl_digest.as_ref()?;
    let v = digest.version.as_ref();
    Some(
        v.strip_prefix("TLSv")
            .map_or_else(|| v.to_string(), |n| n.replace('_', ".")),
    )
}
