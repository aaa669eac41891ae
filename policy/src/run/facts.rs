//! What the edge tells the engine about a request: its connection, its endpoint, the clock.

use crate::client_cert::ClientCertificate;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

/// Facts about the client connection, given by the edge. Start from [`ConnInfo::new`] and set
/// what the edge knows.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The L4 peer address (never taken from `x-forwarded-for`).
    pub client_addr: SocketAddr,
    /// The port the client connected to.
    pub server_port: u16,
    /// The edge's address the client connected to (`conn.server_ip`; `""` when unknown).
    pub server_ip: Option<IpAddr>,
    /// When the connection (or request) started: `conn.ts.start`.
    pub start: SystemTime,
    /// What the edge knows of the connection's TLS (all unset without TLS).
    pub tls: TlsInfo,
    /// Bytes received from the client so far (`conn.bytes_in`; 0 in on_tcp_connect).
    pub bytes_in: u64,
    /// Bytes sent to the client so far (`conn.bytes_out`).
    pub bytes_out: u64,
}

impl ConnInfo {
    /// A connection from `client_addr` to port `server_port`, started at `start`, with no TLS
    /// and no bytes counted yet.
    pub fn new(client_addr: SocketAddr, server_port: u16, start: SystemTime) -> Self {
        Self {
            client_addr,
            server_port,
            server_ip: None,
            start,
            tls: TlsInfo::default(),
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

/// The connection's TLS facts (`conn.tls.*`). Before the handshake (on_tcp_connect on a TLS
/// endpoint) only `sni` may be known; the edge gives the rest with
/// [`RequestState::set_tls`](crate::RequestState::set_tls) once TLS is terminated.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    /// The negotiated version, `"1.2"` or `"1.3"` (`conn.tls.version`, null when unset).
    pub version: Option<String>,
    /// The server name the client asked for (`conn.tls.sni`).
    pub sni: Option<String>,
    /// The negotiated cipher suite, as rustls names it (`TLS13_AES_128_GCM_SHA256`).
    pub cipher_suite: Option<String>,
    /// The negotiated ALPN protocol (`h2`, `http/1.1`).
    pub negotiated_alpn: Option<String>,
    /// The client's certificate under mutual TLS (`conn.tls.client.*`).
    pub client_certificate: Option<Arc<ClientCertificate>>,
}

impl TlsInfo {
    /// terminate-tls's results (`actions.ngrok.terminate_tls`): the fields of `conn.tls`, with
    /// the client certificate as a map (see [`ClientCertificate::to_value`]).
    pub(crate) fn result_value(&self) -> cel::Value {
        let text = |v: &Option<String>| cel::Value::from(v.clone().unwrap_or_default());
        let client = self
            .client_certificate
            .as_deref()
            .unwrap_or(ClientCertificate::none())
            .to_value();
        HashMap::from([
            ("version".to_string(), text(&self.version)),
            ("sni".to_string(), text(&self.sni)),
            ("cipher_suite".to_string(), text(&self.cipher_suite)),
            ("negotiated_alpn".to_string(), text(&self.negotiated_alpn)),
            ("client".to_string(), client),
        ])
        .into()
    }
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
