//! The agent library's observer seam sees TCP connections: each one opens with the client's
//! address and closes with its byte counts, duration and, when it failed, why.

use sluice_agent::body::ProxyBody;
use sluice_agent::observe::{
    ConnectionClosed, ConnectionFailure, ConnectionMeta, ConnectionObserver, ExchangeObserver,
    Observer, RequestMeta,
};
use sluice_e2e::upstream::tcp_echo;
use sluice_e2e::{closed_port, tcp_port_range, within, TestAgent, TestEdge, TOKEN};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What the recording observer saw.
#[derive(Debug)]
enum Seen {
    Opened(ConnectionMeta),
    Closed(ConnectionClosed),
}

struct Recorder(mpsc::UnboundedSender<Seen>);

impl Observer for Recorder {
    fn request(
        &self,
        _meta: &RequestMeta,
        req: http::Request<ProxyBody>,
    ) -> (http::Request<ProxyBody>, Option<Box<dyn ExchangeObserver>>) {
        (req, None)
    }

    fn connection(&self, meta: &ConnectionMeta) -> Option<Box<dyn ConnectionObserver>> {
        let _ = self.0.send(Seen::Opened(meta.clone()));
        Some(Box::new(CloseRecorder(self.0.clone())))
    }
}

struct CloseRecorder(mpsc::UnboundedSender<Seen>);

impl ConnectionObserver for CloseRecorder {
    fn closed(self: Box<Self>, closed: &ConnectionClosed) {
        let _ = self.0.send(Seen::Closed(closed.clone()));
    }
}

fn address(url: &str) -> anyhow::Result<SocketAddr> {
    let port = url
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {url}"))?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> anyhow::Result<Seen> {
    within(Duration::from_secs(10), "an observer call", seen.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the agent dropped its observers"))
}

#[tokio::test]
async fn observers_see_connections_open_and_close_with_their_bytes() -> anyhow::Result<()> {
    let edge = TestEdge::start_with(|c| c.tcp_ports = tcp_port_range(20).ok()).await?;
    let echo = tcp_echo().await?;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut config = edge.tcp_agent_config(TOKEN, "tcp://", echo.addr);
    config.observers.push(Arc::new(Recorder(tx.clone())));
    let agent = TestAgent::start(config).await?;

    let mut client = TcpStream::connect(address(agent.url())?).await?;
    let local = client.local_addr()?;
    client.write_all(b"hello, echo").await?;
    let mut back = [0u8; 11];
    client.read_exact(&mut back).await?;
    client.shutdown().await?;
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await?;

    let Seen::Opened(opened) = next(&mut seen).await? else {
        anyhow::bail!("a close before the open");
    };
    assert_eq!(opened.endpoint, 0);
    assert_eq!(opened.client_addr, local);
    assert!(!opened.id.is_empty());
    let Seen::Closed(closed) = next(&mut seen).await? else {
        anyhow::bail!("two opens for one connection");
    };
    assert_eq!((closed.bytes_in, closed.bytes_out), (11, 11), "{closed:?}");
    assert!(closed.failure.is_none(), "{closed:?}");
    assert!(closed.duration > Duration::ZERO);
    drop(agent);

    // An upstream that is not listening: the connection closes as unreachable, no bytes moved.
    let config = {
        let mut c = edge.tcp_agent_config(TOKEN, "tcp://", closed_port()?);
        c.observers.push(Arc::new(Recorder(tx)));
        c
    };
    let agent = TestAgent::start(config).await?;
    let mut client = TcpStream::connect(address(agent.url())?).await?;
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest).await;
    assert!(matches!(next(&mut seen).await?, Seen::Opened(_)));
    let Seen::Closed(closed) = next(&mut seen).await? else {
        anyhow::bail!("two opens for one connection");
    };
    assert!(
        matches!(closed.failure, Some(ConnectionFailure::Unreachable(_))),
        "{closed:?}"
    );
    assert_eq!((closed.bytes_in, closed.bytes_out), (0, 0));
    Ok(())
}
