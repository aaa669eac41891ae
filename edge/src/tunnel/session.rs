//! One agent connection's life, whichever its transport: the transport's handshake, reading
//! the agent's `Hello` and answering it ([`super::admit`] decides), holding the control
//! stream, and releasing the routes when the link ends.

use super::admit::{admit, reject, release, Admitted};
use super::handle::SessionHandle;
use super::liveness::{Verdict, Watch, TICK};
use super::state::TunnelState;
use crate::ids::new_id;
use sluice_proto::close_code;
use sluice_proto::codec::{decode, read_frame, write_frame};
use sluice_proto::control::{ControlFrame, Hello, HelloReply, Rejection};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::link::{Link, RecvHalf, SendHalf, Transport};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

/// Serves one agent connection from `remote` until it closes; `connecting` finishes its
/// transport's handshake (QUIC's, or TLS and HTTP/2 over TCP).
pub async fn serve<F>(
    connecting: F,
    transport: Transport,
    remote: SocketAddr,
    state: Arc<TunnelState>,
) where
    F: Future<Output = Result<Link, String>>,
{
    let session_id = new_id("ses");
    let span = info_span!("agent_session", session = %session_id, %remote, %transport);
    async move {
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(e) => {
                debug!("{transport} handshake failed: {e}");
                // Two transports: a bounded label.
                state
                    .metrics
                    .agent_connect_failures
                    .with_label_values(&[&format!("{transport}_handshake")])
                    .inc();
                return;
            }
        };
        let Admitted {
            session,
            routes,
            ports,
            listed: _listed,
            ..
        } = match handshake(&conn, &state, &session_id, remote).await {
            Ok(admitted) => admitted,
            Err(rejection) => {
                warn!(code = %rejection.code, "agent rejected: {}", rejection.message);
                // Rejection codes are a fixed set, so they make a bounded label.
                state
                    .metrics
                    .agent_connect_failures
                    .with_label_values(&[&rejection.code.to_string()])
                    .inc();
                return;
            }
        };
        state.metrics.agent_sessions.inc();
        state.metrics.agent_links.add(&session_id, conn.clone());
        let by_transport = state
            .metrics
            .agent_sessions_by_transport
            .with_label_values(&[transport.as_str()]);
        by_transport.inc();
        let _peer = state
            .peers
            .register(conn.remote_address(), &session.link.liveness);
        let reason = conn.closed().await;
        state.metrics.agent_links.remove(&session_id);
        state.metrics.agent_sessions.dec();
        by_transport.dec();
        release(&state, &routes, &session_id).await;
        // After the routes: a port whose last member left closes now.
        drop(ports);
        session.release_slot();
        info!(%reason, "agent session ended, routes released");
    }
    .instrument(span)
    .await
}

/// Reads the agent's [`Hello`], admits it or not, and answers. On success the control stream
/// stays open for the life of the session.
async fn handshake(
    conn: &Link,
    state: &TunnelState,
    session_id: &str,
    remote: SocketAddr,
) -> Result<Admitted, Rejection> {
    let accepted = tokio::time::timeout(state.handshake_timeout, read_hello(conn))
        .await
        .ok()
        .flatten();
    let Some((mut send, recv_half, hello)) = accepted else {
        conn.close(close_code::PROTOCOL, b"handshake");
        return Err(reject(ErrorCode::HandshakeFailed, "no valid hello in time"));
    };
    match admit(&hello, conn, state, session_id, remote).await {
        Ok(admitted) => {
            if write_frame(&mut send, &HelloReply::Welcome(admitted.welcome.clone()))
                .await
                .is_err()
            {
                release(state, &admitted.routes, session_id).await;
                return Err(reject(ErrorCode::HandshakeFailed, "agent went away"));
            }
            for ep in &admitted.welcome.endpoints {
                info!(url = %ep.url, "endpoint online");
            }
            // Keep the control stream open: dropping it would finish it and end the session
            // from the agent's point of view.
            let session = admitted.session.clone();
            tokio::spawn(
                run_control_stream(conn.clone(), send, recv_half, session).in_current_span(),
            );
            Ok(admitted)
        }
        Err(rejection) => {
            let _ = write_frame(&mut send, &HelloReply::Rejected(rejection.clone())).await;
            send.finish();
            // Give the agent a moment to read the reason before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(close_code::REJECTED, rejection.code.to_string().as_bytes());
            Err(rejection)
        }
    }
}

async fn read_hello(conn: &Link) -> Option<(SendHalf, RecvHalf, Hello)> {
    let (send, mut recv) = conn.edge_control().await.ok()?;
    let hello = read_frame(&mut recv).await.ok()?;
    Some((send, recv, hello))
}

/// The control stream for the session's life: answers the agent's pings, and while
/// requests wait on the agent (or its address was reported unreachable) watches for its
/// datagrams and probes it ([`super::liveness`]). The stream's end (finished, reset, or a
/// malformed message) ends the session: otherwise an agent that closed it would keep its
/// hostnames and, its one allowed stream now free, could open another that the edge never
/// reads (docs/hardening.md).
async fn run_control_stream(
    conn: Link,
    mut send: SendHalf,
    mut recv: RecvHalf,
    session: Arc<SessionHandle>,
) {
    let liveness = session.link.liveness.clone();
    let mut buf = Vec::new();
    let mut watch: Option<Watch> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pings = 0u64;
    let ended = loop {
        tokio::select! {
            chunk = recv.read_chunk(4096) => match chunk {
                Ok(Some(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    match answer_control(&mut buf, &mut send, &session).await {
                        Ok(()) => {}
                        Err(e) => break e,
                    }
                }
                Ok(None) => break "the agent finished its control stream".to_string(),
                Err(e) => break e.to_string(),
            },
            () = liveness.until_active(), if watch.is_none() => {
                watch = Some(Watch::start(liveness.clone(), conn.arrivals(), Instant::now()));
            }
            _ = tick.tick(), if watch.is_some() => {
                let Some(w) = &mut watch else { continue };
                match w.look(conn.arrivals(), conn.rtt(), Instant::now()) {
                    Verdict::Fine => {}
                    Verdict::Idle => watch = None,
                    Verdict::Ping => {
                        pings += 1;
                        if write_frame(&mut send, &ControlFrame::Ping(pings)).await.is_err() {
                            break "the control stream is closed".to_string();
                        }
                    }
                    Verdict::Dead => {
                        warn!("the agent did not answer while requests waited; closing the session");
                        conn.close(close_code::UNRESPONSIVE, b"agent unresponsive");
                        return;
                    }
                }
            }
        }
    };
    if conn.close_reason().is_none() {
        debug!(reason = %ended, "agent ended its control stream; closing the session");
        conn.close(close_code::PROTOCOL, b"control stream ended");
    }
}

/// Handles every whole control message in `buf`: a ping is answered, a pong needs nothing
/// (any datagram counts as a sign of life), and a leaving agent is picked for no new request
/// from here on, which the edge acknowledges. The error names what was wrong.
async fn answer_control(
    buf: &mut Vec<u8>,
    send: &mut SendHalf,
    session: &SessionHandle,
) -> Result<(), String> {
    loop {
        match decode::<ControlFrame>(buf) {
            Ok(Some((frame, used))) => {
                buf.drain(..used);
                let answer = match frame {
                    ControlFrame::Ping(n) => ControlFrame::Pong(n),
                    ControlFrame::Leaving => {
                        info!("the agent is leaving; no new requests go to it");
                        session.leave();
                        ControlFrame::LeaveAck
                    }
                    ControlFrame::Pong(_) | ControlFrame::LeaveAck => continue,
                };
                write_frame(send, &answer)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("malformed control message: {e}")),
        }
    }
}
