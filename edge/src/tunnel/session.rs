//! One agent connection's life: the QUIC handshake, reading the agent's `Hello` and answering
//! it ([`super::admit`] decides), holding the control stream, and releasing the routes when the
//! connection ends.

use super::admit::{admit, reject, Admitted};
use super::handle::SessionHandle;
use super::liveness::{Verdict, Watch, TICK};
use super::state::TunnelState;
use crate::ids::new_id;
use sluice_proto::close_code;
use sluice_proto::codec::{decode, read_frame, write_frame};
use sluice_proto::control::{ControlFrame, Hello, HelloReply, Rejection};
use sluice_proto::error_code::ErrorCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, info_span, warn, Instrument};

/// Serves one incoming agent connection until it closes.
pub async fn serve(incoming: quinn::Incoming, state: Arc<TunnelState>) {
    let remote = incoming.remote_address();
    let session_id = new_id("ses");
    let span = info_span!("agent_session", session = %session_id, %remote);
    async move {
        let conn = match incoming.await {
            Ok(conn) => conn,
            Err(e) => {
                debug!("QUIC handshake failed: {e}");
                state
                    .metrics
                    .agent_connect_failures
                    .with_label_values(&["quic_handshake"])
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
        let _peer = state
            .peers
            .register(conn.remote_address(), &session.liveness);
        let reason = conn.closed().await;
        state.metrics.agent_links.remove(&session_id);
        state.metrics.agent_sessions.dec();
        for route in &routes {
            state.routes.release(&route.key, &session_id);
        }
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
    conn: &quinn::Connection,
    state: &TunnelState,
    session_id: &str,
    remote: SocketAddr,
) -> Result<Admitted, Rejection> {
    let accepted = tokio::time::timeout(state.handshake_timeout, read_hello(conn))
        .await
        .ok()
        .flatten();
    let Some((mut send, recv_half, hello)) = accepted else {
        conn.close(close_code::PROTOCOL.into(), b"handshake");
        return Err(reject(ErrorCode::HandshakeFailed, "no valid hello in time"));
    };
    match admit(&hello, conn, state, session_id, remote).await {
        Ok(admitted) => {
            if write_frame(&mut send, &HelloReply::Welcome(admitted.welcome.clone()))
                .await
                .is_err()
            {
                for route in &admitted.routes {
                    state.routes.release(&route.key, session_id);
                }
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
            let _ = send.finish();
            // Give the agent a moment to read the reason before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(
                close_code::REJECTED.into(),
                rejection.code.to_string().as_bytes(),
            );
            Err(rejection)
        }
    }
}

async fn read_hello(
    conn: &quinn::Connection,
) -> Option<(quinn::SendStream, quinn::RecvStream, Hello)> {
    let (send, mut recv) = conn.accept_bi().await.ok()?;
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
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    session: Arc<SessionHandle>,
) {
    let liveness = session.liveness.clone();
    let mut buf = Vec::new();
    let mut watch: Option<Watch> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pings = 0u64;
    let ended = loop {
        tokio::select! {
            chunk = recv.read_chunk(4096, true) => match chunk {
                Ok(Some(chunk)) => {
                    buf.extend_from_slice(&chunk.bytes);
                    match answer_control(&mut buf, &mut send, &session).await {
                        Ok(()) => {}
                        Err(e) => break e,
                    }
                }
                Ok(None) => break "the agent finished its control stream".to_string(),
                Err(e) => break e.to_string(),
            },
            () = liveness.until_active(), if watch.is_none() => {
                watch = Some(Watch::start(liveness.clone(), datagrams(&conn), Instant::now()));
            }
            _ = tick.tick(), if watch.is_some() => {
                let Some(w) = &mut watch else { continue };
                match w.look(datagrams(&conn), conn.rtt(), Instant::now()) {
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
                        conn.close(close_code::UNRESPONSIVE.into(), b"agent unresponsive");
                        return;
                    }
                }
            }
        }
    };
    if conn.close_reason().is_none() {
        debug!(reason = %ended, "agent ended its control stream; closing the session");
        conn.close(close_code::PROTOCOL.into(), b"control stream ended");
    }
}

/// Datagrams received from the agent so far.
fn datagrams(conn: &quinn::Connection) -> u64 {
    conn.stats().udp_rx.datagrams
}

/// Handles every whole control message in `buf`: a ping is answered, a pong needs nothing
/// (any datagram counts as a sign of life), and a leaving agent is picked for no new request
/// from here on, which the edge acknowledges. The error names what was wrong.
async fn answer_control(
    buf: &mut Vec<u8>,
    send: &mut quinn::SendStream,
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
