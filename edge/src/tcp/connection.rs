//! One client connection to a TCP endpoint: the member that takes it, a stream to its agent
//! opened with a connect frame, the agent's answer (its upstream connection is open, or why
//! not), then the connection's bytes both ways until both sides are done.

use super::TcpState;
use crate::ids::new_id;
use crate::tunnel::routes::Route;
use crate::tunnel::stream::AgentStream;
use sluice_proto::frame::{AgentFailure, ConnectHead, Frame};
use sluice_proto::splice::{splice, Spliced};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tracing::{debug, info, info_span, Instrument};

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// No endpoint holds the port any more (its agent just left).
    NoEndpoint,
    /// No stream to the agent could be had, or it ended before answering.
    AgentGone(String),
    /// The agent could not open its upstream connection.
    Refused(AgentFailure),
    /// The bytes flowed; a failure in `Spliced` means one side broke off.
    Carried(Spliced),
}

/// Serves one accepted connection to `local` (one of the edge's TCP ports) from `peer`.
pub(crate) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<TcpState>,
) {
    let id = new_id("conn");
    let span = info_span!("tcp_connection", connection = %id, client = %peer, port = local.port());
    async move {
        let started = Instant::now();
        let _ = client.set_nodelay(true);
        let outcome = carry(&mut client, &id, peer, local, &state).await;
        let broken = match &outcome {
            Outcome::Carried(spliced) => spliced.failure.is_some(),
            _ => false,
        };
        if broken {
            // A connection cut on one side is reset on the other, never ended cleanly, so a
            // client cannot take a cut transfer for a whole one.
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        }
        log(&outcome, started.elapsed());
    }
    .instrument(span)
    .await
}

/// Takes the connection to the port's endpoint and carries it.
async fn carry(
    client: &mut TcpStream,
    id: &str,
    peer: SocketAddr,
    local: SocketAddr,
    state: &TcpState,
) -> Outcome {
    let Some(route) = member(state, local.port()) else {
        return Outcome::NoEndpoint;
    };
    let Some((session, endpoint_id)) = route.agent() else {
        return Outcome::NoEndpoint;
    };
    // Counted as waiting on the agent for the connection's whole life, so a dead agent is
    // noticed within seconds and its clients closed, as for requests.
    let _waiting = session.liveness.begin();
    let mut stream = match session.stream(state.stream_open_timeout).await {
        Ok(stream) => stream,
        Err(e) => return Outcome::AgentGone(e.to_string()),
    };
    let head = ConnectHead {
        endpoint_id,
        connection_id: id.to_string(),
        client_addr: peer,
        server_addr: local,
    };
    if let Err(outcome) = open(&mut stream, head).await {
        return outcome;
    }
    Outcome::Carried(splice(&mut stream.reader, &mut stream.writer, client).await)
}

/// A live member of the endpoint on `port`.
fn member(state: &TcpState, port: u16) -> Option<Arc<Route>> {
    state.routes.lookup_port(port)?.pick()
}

/// Sends the connect frame and waits for the agent's answer.
async fn open(stream: &mut AgentStream, head: ConnectHead) -> Result<(), Outcome> {
    let gone = |why: String| Outcome::AgentGone(why);
    stream
        .writer
        .send(&Frame::Connect(Box::new(head)))
        .await
        .map_err(|e| gone(e.to_string()))?;
    match stream.reader.next().await {
        Ok(Some(Frame::Connected)) => Ok(()),
        Ok(Some(Frame::Error(failure))) => Err(Outcome::Refused(failure)),
        Ok(Some(other)) => Err(gone(format!("the agent answered {other:?}"))),
        Ok(None) => Err(gone("the agent ended the stream".to_string())),
        Err(e) => Err(gone(e.to_string())),
    }
}

fn log(outcome: &Outcome, took: Duration) {
    match outcome {
        Outcome::NoEndpoint => debug!("no endpoint on this port; connection closed"),
        Outcome::AgentGone(why) => info!("connection closed: the agent is gone: {why}"),
        Outcome::Refused(failure) => info!(
            code = %failure.code,
            "connection closed: the agent could not reach its upstream: {}",
            failure.message
        ),
        Outcome::Carried(spliced) => info!(
            bytes_in = spliced.to_stream,
            bytes_out = spliced.from_stream,
            duration_ms = took.as_millis() as u64,
            failure = spliced.failure.as_ref().map(ToString::to_string),
            "connection closed"
        ),
    }
}
