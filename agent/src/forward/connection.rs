//! One client connection to a `tcp://` or `tls://` endpoint: the upstream connection opened
//! (with a PROXY protocol header first when the endpoint asks for one), the edge told it is
//! open, then the bytes both ways until both sides are done.

use super::forwarder::Forwarder;
use super::handler::TcpTarget;
use super::observe::{ConnectionClosed, ConnectionFailure, ConnectionMeta};
use crate::config::endpoint::ProxyProtocol;
use sluice_proto::error_code::ErrorCode;
use sluice_proto::frame::{AgentFailure, ConnectHead, Frame};
use sluice_proto::framed::{FrameReader, FrameWriter};
use sluice_proto::splice::{splice_counted, SpliceFailure, Spliced};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

/// Serves the connection `head` announces on this stream; the stream is not reused after.
/// The forwarder's observers see it open and close.
pub(crate) async fn serve(
    forwarder: &Forwarder,
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    mut head: ConnectHead,
) {
    let started = Instant::now();
    let endpoint = head.endpoint_id as usize;
    let Some(target) = forwarder.tcp_target(endpoint) else {
        refuse(
            writer,
            ErrorCode::Internal,
            format!("endpoint {} takes no connections", head.endpoint_id),
        )
        .await;
        return;
    };
    let meta = ConnectionMeta {
        endpoint,
        // The span already names the connection; the id is not needed here after.
        id: std::mem::take(&mut head.connection_id),
        client_addr: head.client_addr,
        start: SystemTime::now(),
        bytes: Arc::default(),
    };
    let watchers = forwarder.observers().connection(&meta);
    let (spliced, failure) = match connect(target, &head, writer).await {
        Ok(mut upstream) => {
            let (read, write) = upstream.split();
            let spliced = splice_counted(reader, writer, read, write, &meta.bytes).await;
            let failure = spliced.failure.clone().map(ConnectionFailure::Broken);
            (spliced, failure)
        }
        Err(failure) => (Spliced::default(), Some(failure)),
    };
    let closed = ConnectionClosed {
        bytes_in: spliced.from_stream,
        bytes_out: spliced.to_stream,
        duration: started.elapsed(),
        failure,
    };
    info!(
        upstream = %target.address,
        bytes_in = closed.bytes_in,
        bytes_out = closed.bytes_out,
        duration_ms = closed.duration.as_millis() as u64,
        failure = closed.failure.as_ref().map(ToString::to_string),
        "connection closed"
    );
    watchers.closed(&closed);
}

/// Opens the upstream connection and tells the edge it is open; on failure the edge is told
/// why (when it is still there).
async fn connect(
    target: &TcpTarget,
    head: &ConnectHead,
    writer: &mut FrameWriter,
) -> Result<TcpStream, ConnectionFailure> {
    let upstream = match open(target, head).await {
        Ok(upstream) => upstream,
        Err(cause) => {
            warn!(upstream = %target.address, "could not connect to the upstream: {cause}");
            refuse(writer, ErrorCode::UpstreamUnreachable, cause.clone()).await;
            return Err(ConnectionFailure::Unreachable(cause));
        }
    };
    if let Err(e) = writer.send(&Frame::Connected).await {
        debug!("the edge went away before the connection was open");
        return Err(SpliceFailure::Stream(e.to_string()).into());
    }
    Ok(upstream)
}

/// Connects to the upstream and writes the PROXY protocol header, if the endpoint has one.
async fn open(target: &TcpTarget, head: &ConnectHead) -> Result<TcpStream, String> {
    let connect = TcpStream::connect(target.address.as_str());
    let mut upstream = tokio::time::timeout(target.connect_timeout, connect)
        .await
        .map_err(|_| format!("no connection within {:?}", target.connect_timeout))?
        .map_err(|e| e.to_string())?;
    let _ = upstream.set_nodelay(true);
    if let Some(version) = target.proxy_protocol {
        let header = proxy_header(version, head.client_addr, head.server_addr);
        upstream
            .write_all(&header)
            .await
            .map_err(|e| format!("writing the PROXY protocol header: {e}"))?;
    }
    Ok(upstream)
}

/// The PROXY protocol header for a connection from `client` to the edge's `server` address.
/// Both addresses are given in one family: an IPv4 one is written IPv4-mapped beside IPv6.
pub(crate) fn proxy_header(
    version: ProxyProtocol,
    client: SocketAddr,
    server: SocketAddr,
) -> Vec<u8> {
    let (client, server) = same_family(client, server);
    match version {
        ProxyProtocol::V1 => ppp::v1::Addresses::from((client, server))
            .to_string()
            .into_bytes(),
        ProxyProtocol::V2 => ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, server),
        )
        .build()
        // Building into a Vec fails only on a write error, which a Vec never has.
        .unwrap_or_default(),
    }
}

/// The two addresses in one family.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |s: SocketAddr| match s {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

/// Tells the edge the connection could not be opened, and ends the stream.
async fn refuse(writer: &mut FrameWriter, code: ErrorCode, message: String) {
    let failure = Frame::Error(AgentFailure { code, message });
    if writer.send(&failure).await.is_ok() {
        writer.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_client_and_the_edge() {
        let client: SocketAddr = "203.0.113.9:50123".parse().expect("addr");
        let edge: SocketAddr = "198.51.100.1:20001".parse().expect("addr");
        let v1 = proxy_header(ProxyProtocol::V1, client, edge);
        assert_eq!(
            String::from_utf8(v1).expect("text"),
            "PROXY TCP4 203.0.113.9 198.51.100.1 50123 20001\r\n"
        );
        let v2 = proxy_header(ProxyProtocol::V2, client, edge);
        let parsed = ppp::v2::Header::try_from(v2.as_slice()).expect("a v2 header");
        assert_eq!(
            parsed.addresses,
            ppp::v2::Addresses::from((client, edge)),
            "{parsed:?}"
        );
        let mixed = proxy_header(
            ProxyProtocol::V1,
            "[2001:db8::9]:1".parse().expect("addr"),
            edge,
        );
        assert!(String::from_utf8(mixed)
            .expect("text")
            .starts_with("PROXY TCP6 2001:db8::9 ::ffff:198.51.100.1 "));
    }
}
