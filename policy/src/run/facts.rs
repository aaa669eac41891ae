//! What the edge tells the engine about a request: its connection, its endpoint, the clock.

use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

/// Facts about the client connection, given by the edge.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The L4 peer address (never taken from `x-forwarded-for`).
    pub client_addr: SocketAddr,
    /// The port the client connected to.
    pub server_port: u16,
    /// When the connection (or request) started: `conn.ts.start`.
    pub start: SystemTime,
    /// The negotiated TLS version (`"1.3"`), when the connection is TLS.
    pub tls_version: Option<String>,
}

/// Facts about the endpoint a request arrived at, shared by its requests.
#[derive(Clone, Debug, Default)]
pub struct EndpointInfo {
    /// Endpoint id.
    pub id: String,
    /// Public URL, e.g. `https://app.example.com`.
    pub url: String,
    /// Public host name.
    pub host: String,
    /// Public port.
    pub port: u16,
    /// `http` or `https`.
    pub protocol: String,
}

/// A source of the current time; the engine's default is the system clock.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, as dual-stack listeners report) as IPv4.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
