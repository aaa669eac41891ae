//! The edge that holds an endpoint relays requests another edge forwarded to it: each request
//! on a stream from that edge names its endpoint ([`Frame::Forward`]); this edge picks a member
//! of its own running the same policy, puts that member's endpoint id in the head, and passes
//! the frames both ways unchanged (the forwarding edge already ran the policy). A request that
//! completed both ways leaves both streams ready for the next one; after a `101` both carry raw
//! bytes until they end.

use super::claims::Claims;
use crate::tunnel::handle::SessionHandle;
use crate::tunnel::liveness::InFlight;
use crate::tunnel::routes::RouteRegistry;
use crate::tunnel::stream::AgentStream;
use prometheus::{IntCounter, IntGauge};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::frame::{AgentFailure, ConnectHead, ForwardHead, Frame, RequestHead};
use sluice_proto::framed::{FrameReader, FrameWriter, StreamError};
use sluice_proto::link::{RecvHalf, SendHalf};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info_span, Instrument};

/// What the relay reads.
pub struct RelayState {
    /// This edge's id, which it proves to the edges that link to it.
    pub edge_id: String,
    /// This edge's members.
    pub routes: Arc<dyn RouteRegistry>,
    /// Which endpoints this edge holds, by their names in the store.
    pub claims: Arc<Claims>,
    /// How long to wait for an agent to grant a stream.
    pub open_timeout: Duration,
    /// Streams open on links from other edges.
    pub streams_open: IntGauge,
    /// Requests relayed.
    pub relayed: IntCounter,
}

/// How one direction of a relayed exchange ended.
enum Ended {
    /// Its last frame went through.
    Complete,
    /// A `101`: raw bytes follow.
    Upgraded,
    /// The agent answered with a failure frame: the stream is not reused.
    Failed,
}

/// A relay failure: a broken stream on either side, or a frame out of place.
type Broken = String;

/// Serves one stream from another edge: one forwarded request after another until that edge
/// finishes the stream; any failure drops both streams, which resets them.
pub async fn serve_stream(state: Arc<RelayState>, send: SendHalf, recv: RecvHalf) {
    let mut peer = AgentStream::new(send, recv, &state.streams_open);
    loop {
        let forward = match peer.reader.next().await {
            Ok(Some(Frame::Forward(forward))) => forward,
            Ok(None) => return,
            Ok(Some(other)) => return debug!("a peer stream began with {other:?}"),
            Err(e) => return debug!("a peer stream failed: {e}"),
        };
        let span = info_span!("relayed_request", endpoint = %forward.endpoint);
        match relay_one(&state, &mut peer, &forward)
            .instrument(span)
            .await
        {
            Ok(true) => continue,
            Ok(false) => return,
            Err(why) => return debug!("relay ended: {why}"),
        }
    }
}

/// Relays one request or TCP connection; whether the peer stream can carry the next one.
async fn relay_one(
    state: &RelayState,
    peer: &mut AgentStream,
    forward: &ForwardHead,
) -> Result<bool, Broken> {
    match peer.reader.next().await {
        Ok(Some(Frame::RequestHead(head))) => relay_request(state, peer, forward, head).await,
        Ok(Some(Frame::Connect(head))) => relay_connection(state, peer, forward, head).await,
        other => Err(format!("expected a request or connect head, got {other:?}")),
    }
}

/// The member of this edge a forwarded request or connection goes to.
struct Relayed {
    /// A stream to its agent.
    stream: AgentStream,
    /// The id its agent knows the endpoint by.
    endpoint_id: u32,
    /// Its session, whose pool takes the stream back after a whole exchange.
    session: Arc<SessionHandle>,
    /// Counts as waiting on that agent (its liveness probes) while held.
    _waiting: InFlight,
}

/// A stream to the member of this edge that takes `forward`; when there is none, the
/// forwarding edge is told why and `None` returned (the peer stream is then done).
async fn relayed(
    state: &RelayState,
    peer: &mut AgentStream,
    forward: &ForwardHead,
) -> Result<Option<Relayed>, Broken> {
    let (session, endpoint_id) = match member(state, forward) {
        Ok(member) => member,
        Err(failure) => return refuse(peer, failure).await.map(|_| None),
    };
    state.relayed.inc();
    let waiting = session.link.liveness.begin();
    match session.link.stream(state.open_timeout).await {
        Ok(stream) => Ok(Some(Relayed {
            stream,
            endpoint_id,
            session,
            _waiting: waiting,
        })),
        Err(e) => {
            let failure = AgentFailure {
                code: ErrorCode::AgentOffline,
                message: format!("the relaying edge got no stream to the agent: {e}"),
            };
            refuse(peer, failure).await.map(|_| None)
        }
    }
}

/// Relays a TCP or TLS connection: its connect head to the agent, the agent's answer back,
/// then raw bytes both ways until both ends are done. The peer stream is not reused.
async fn relay_connection(
    state: &RelayState,
    peer: &mut AgentStream,
    forward: &ForwardHead,
    mut head: Box<ConnectHead>,
) -> Result<bool, Broken> {
    let Some(relayed) = relayed(state, peer, forward).await? else {
        return Ok(false);
    };
    head.endpoint_id = relayed.endpoint_id;
    let AgentStream {
        writer: mut to_agent,
        reader: mut from_agent,
        ..
    } = relayed.stream;
    to_agent
        .send(&Frame::Connect(head))
        .await
        .map_err(|e| e.to_string())?;
    let answer = async {
        match from_agent.next().await {
            Ok(Some(Frame::Connected)) => {
                if peer.writer.send(&Frame::Connected).await.is_ok() {
                    copy_raw(&mut from_agent, &mut peer.writer).await;
                }
            }
            Ok(Some(failed @ Frame::Error(_))) => {
                if peer.writer.send(&failed).await.is_ok() {
                    peer.writer.finish();
                }
            }
            other => debug!("a relayed connection's agent answered {other:?}"),
        }
    };
    tokio::join!(copy_raw(&mut peer.reader, &mut to_agent), answer);
    Ok(false)
}

/// Relays one HTTP request whose head is `head`.
async fn relay_request(
    state: &RelayState,
    peer: &mut AgentStream,
    forward: &ForwardHead,
    mut head: Box<RequestHead>,
) -> Result<bool, Broken> {
    let Some(Relayed {
        stream: mut agent,
        endpoint_id,
        session,
        _waiting,
    }) = relayed(state, peer, forward).await?
    else {
        return Ok(false);
    };
    head.endpoint_id = endpoint_id;
    let ended = head.end_stream;
    agent
        .writer
        .send(&Frame::RequestHead(head))
        .await
        .map_err(|e| e.to_string())?;
    let (request, response) = tokio::join!(
        copy_request(&mut peer.reader, &mut agent.writer, ended),
        copy_response(&mut agent.reader, &mut peer.writer),
    );
    match (request, response?) {
        (Ok(()), Ended::Complete) => {
            session.link.pool.put(agent);
            Ok(true)
        }
        (Ok(()), Ended::Upgraded) => {
            let AgentStream {
                writer: mut to_agent,
                reader: mut from_agent,
                ..
            } = agent;
            tokio::join!(
                copy_raw(&mut peer.reader, &mut to_agent),
                copy_raw(&mut from_agent, &mut peer.writer),
            );
            Ok(false)
        }
        (_, Ended::Failed) => Ok(false),
        (Err(e), Ended::Complete | Ended::Upgraded) => Err(e),
    }
}

/// The member of this edge that takes a forwarded request: one of the endpoint's live agent
/// members running the policy the forwarding edge ran.
fn member(
    state: &RelayState,
    forward: &ForwardHead,
) -> Result<(Arc<SessionHandle>, u32), AgentFailure> {
    let failure = |code, message: &str| AgentFailure {
        code,
        message: message.to_string(),
    };
    // Only the edge the client reached forwards, so a request never passes a third edge.
    if forward.hops != 1 {
        return Err(failure(
            ErrorCode::Internal,
            "a forwarded request came through more than one edge",
        ));
    }
    let route = state
        .claims
        .local_key(&forward.endpoint)
        .and_then(|key| state.routes.lookup_key(&key))
        .and_then(|set| set.pick_for_policy(&forward.policy_id))
        .ok_or_else(|| {
            failure(
                ErrorCode::AgentOffline,
                "the relaying edge holds no live member of the endpoint with that policy",
            )
        })?;
    route
        .agent()
        .map(|(session, id)| (session.clone(), id))
        .ok_or_else(|| failure(ErrorCode::Internal, "not an agent member"))
}

/// Answers the forwarding edge with `failure` instead of a response; the stream is not reused
/// (the request's body frames may still be coming).
async fn refuse(peer: &mut AgentStream, failure: AgentFailure) -> Result<bool, Broken> {
    peer.writer
        .send(&Frame::Error(failure))
        .await
        .map_err(|e| e.to_string())?;
    peer.writer.finish();
    Ok(false)
}

/// The request's body frames, from the forwarding edge to the agent, up to its last frame.
async fn copy_request(
    from: &mut FrameReader,
    to: &mut FrameWriter,
    ended: bool,
) -> Result<(), Broken> {
    if ended {
        return Ok(());
    }
    loop {
        match from.next().await {
            Ok(Some(Frame::Data(data))) => to.send_data(data).await,
            Ok(Some(last @ (Frame::End | Frame::Trailers(_)))) => {
                return to.send(&last).await.map_err(|e| e.to_string())
            }
            other => return Err(format!("in a request body: {other:?}")),
        }
        .map_err(|e| e.to_string())?;
    }
}

/// The response frames, from the agent to the forwarding edge, up to the last.
async fn copy_response(from: &mut FrameReader, to: &mut FrameWriter) -> Result<Ended, Broken> {
    let sent = |r: Result<(), StreamError>| r.map_err(|e| e.to_string());
    loop {
        match from.next().await {
            Ok(Some(Frame::ResponseHead(head))) => {
                let (status, end) = (head.status, head.end_stream);
                sent(to.send(&Frame::ResponseHead(head)).await)?;
                if status == http::StatusCode::SWITCHING_PROTOCOLS {
                    return Ok(Ended::Upgraded);
                }
                if end && !status.is_informational() {
                    return Ok(Ended::Complete);
                }
            }
            Ok(Some(Frame::Data(data))) => sent(to.send_data(data).await)?,
            Ok(Some(last @ (Frame::End | Frame::Trailers(_)))) => {
                sent(to.send(&last).await)?;
                return Ok(Ended::Complete);
            }
            Ok(Some(failed @ Frame::Error(_))) => {
                sent(to.send(&failed).await)?;
                to.finish();
                return Ok(Ended::Failed);
            }
            other => return Err(format!("in a response: {other:?}")),
        }
    }
}

/// Raw bytes after an upgrade, until `from` ends (then `to` is finished) or fails.
async fn copy_raw(from: &mut FrameReader, to: &mut FrameWriter) {
    loop {
        match from.next_raw().await {
            Ok(Some(bytes)) => {
                if to.send_raw(bytes).await.is_err() {
                    return;
                }
            }
            Ok(None) => return to.finish(),
            // Unfinished, `to` is reset when its stream is dropped: a cut never looks whole.
            Err(_) => return,
        }
    }
}
