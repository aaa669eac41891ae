//! Socket addresses as pingora reports them: [`inet`] reads one as an internet address, and
//! [`UNSPECIFIED`] stands for one that is not known (never on TCP).

use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// `0.0.0.0:0`: an address pingora or the kernel did not give.
pub const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// A pingora address as an internet socket address (`None` for Unix sockets).
pub fn inet(addr: Option<&PingoraAddr>) -> Option<SocketAddr> {
    addr.and_then(PingoraAddr::as_inet).copied()
}
