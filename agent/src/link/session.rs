//! The agent's life on the edge: dial ([`super::dial`]), handshake ([`super::handshake`]),
//! serve the edge's streams, reconnect with exponential backoff and jitter reclaiming the same
//! endpoints, and, on TCP under `--transport auto`, probe QUIC and move back to it without a
//! break ([`super::fallback`]).

use super::control::Control;
use super::dial::Dialer;
use super::error::{AgentError, Attempt};
use super::fallback::Fallback;
use super::handshake::{self, Ask};
use crate::config::agent::AgentConfig;
use crate::forward::forwarder::Forwarder;
use crate::forward::stream::serve_stream;
use bytes::Bytes;
use rand::Rng;
use sluice_proto::close_code;
use sluice_proto::control::{BoundEndpoint, Welcome};
use sluice_proto::link::{Closed, Link, Transport};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, info_span, warn, Instrument};

/// Longest a session left behind by a move to QUIC keeps serving what it has (downloads,
/// websockets) before it is closed.
const MOVE_DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// What the agent reports while it runs (the CLI prints these; SDK users may watch them).
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// A session is up and every endpoint is online.
    Online {
        /// Edge-assigned session id.
        session_id: String,
        /// Online endpoints with their upstreams, in config order.
        endpoints: Vec<(BoundEndpoint, String)>,
        /// Whether this follows a lost session (or a move to another transport).
        reconnected: bool,
        /// The link to the edge: its transport, and its round-trip time.
        link: Link,
    },
    /// The session was lost; the agent retries after `retry_in`.
    Reconnecting {
        /// Why the previous attempt or session ended.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// An admitted session.
pub(crate) struct Session {
    link: Link,
    welcome: Welcome,
    control: Option<Control>,
    /// Requests being answered on it (a stream idle between requests is not one).
    in_flight: Arc<AtomicUsize>,
}

enum SessionEnd {
    Shutdown,
    Replaced,
    /// The operator ended it (`close_code::STOPPED`, `CREDENTIAL_DELETED`); the edge's reason.
    Stopped(String),
    Lost(Closed),
    /// A QUIC session took over (make-before-break); this one drains.
    Moved(Session),
}

/// What every link of this run asks for.
struct Run<'a> {
    config: &'a AgentConfig,
    dialer: Dialer,
    run_id: String,
    wanted: Vec<Option<String>>,
}

impl Run<'_> {
    fn ask(&self, moving_from: Option<String>) -> Ask<'_> {
        Ask {
            config: self.config,
            run_id: &self.run_id,
            wanted: &self.wanted,
            moving_from,
        }
    }

    /// Dials by the agent's choice and runs the handshake.
    async fn connect(&self, fallback: &mut Fallback) -> Result<Session, Attempt> {
        let prefer_tcp = fallback.prefer_tcp();
        let link = match self.dialer.dial_any(prefer_tcp).await {
            Err(Attempt::Transient(why)) if prefer_tcp => {
                fallback.tcp_failed();
                return Err(Attempt::Transient(why));
            }
            other => other?,
        };
        admit(link, self.ask(None)).await
    }

    /// After `delay`, tries QUIC with a session that takes over from `current`.
    async fn probe_quic(&self, delay: Duration, current: String) -> Result<Session, Attempt> {
        tokio::time::sleep(delay).await;
        let link = self.dialer.dial(Transport::Quic).await?;
        admit(link, self.ask(Some(current))).await
    }

    /// Keeps exactly these endpoints after a reconnect, random names included, on the scheme
    /// they were bound with. An internal URL is reclaimed as it was bound, port included; a
    /// public one without the edge's port, which requested URLs may not name.
    fn bound(&mut self, welcome: &Welcome) {
        for (slot, bound) in self.wanted.iter_mut().zip(&welcome.endpoints) {
            *slot = Some(match bound.url.split_once("://") {
                _ if bound.hostname.ends_with(".internal") => bound.url.clone(),
                // A TCP endpoint is its port: reclaimed with it.
                Some(("tcp", _)) => bound.url.clone(),
                Some((scheme, _)) => format!("{scheme}://{}", bound.hostname),
                None => bound.hostname.clone(),
            });
        }
    }
}

/// The handshake on `link`; the link is closed when it fails.
async fn admit(link: Link, ask: Ask<'_>) -> Result<Session, Attempt> {
    match handshake::admit(&link, ask).await {
        Ok((welcome, control)) => Ok(Session {
            link,
            welcome,
            control: Some(control),
            in_flight: Arc::default(),
        }),
        Err(e) => {
            link.close(close_code::NORMAL, b"handshake failed");
            Err(e)
        }
    }
}

/// Runs the agent until `shutdown` turns true (clean close, hostnames freed at once) or a fatal
/// error. Events go to `events`, if any.
pub async fn run(
    config: AgentConfig,
    events: Option<mpsc::UnboundedSender<AgentEvent>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let emit = |e: AgentEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    let forwarder = Arc::new(Forwarder::new(&config)?.with_observers(config.observers.clone()));
    let mut run = Run {
        config: &config,
        dialer: Dialer::new(&config).await?,
        // One id for this run, kept across reconnects: a pooled endpoint then replaces its
        // own earlier member at the edge rather than adding a second one.
        run_id: new_run_id(),
        wanted: config.endpoints.iter().map(|e| e.url.clone()).collect(),
    };
    let mut fallback = Fallback::new(&config);
    let mut failures: u32 = 0;
    let mut ever_online = false;
    let mut moved_to: Option<Session> = None;
    loop {
        let attempt = match moved_to.take() {
            Some(session) => Ok(session),
            None => tokio::select! {
                a = run.connect(&mut fallback) => a,
                _ = wait_true(&mut shutdown) => return Ok(()),
            },
        };
        let reason = match attempt {
            Ok(mut session) => {
                failures = 0;
                run.bound(&session.welcome);
                let welcome = &session.welcome;
                emit(AgentEvent::Online {
                    session_id: welcome.session_id.clone(),
                    endpoints: welcome
                        .endpoints
                        .iter()
                        .cloned()
                        .zip(config.endpoints.iter().map(|e| e.upstream.to_string()))
                        .collect(),
                    reconnected: ever_online,
                    link: session.link.clone(),
                });
                let transport = session.link.transport();
                let span = info_span!("agent_session", session = %welcome.session_id, %transport);
                for bound in &welcome.endpoints {
                    info!(parent: &span, url = %bound.url, reconnected = ever_online, %transport, "session online");
                }
                ever_online = true;
                let started = Instant::now();
                let end = serve(&mut session, &run, &fallback, &forwarder, &mut shutdown)
                    .instrument(span.clone())
                    .await;
                match end {
                    SessionEnd::Shutdown => {
                        session
                            .link
                            .close(close_code::NORMAL, b"agent shutting down");
                        run.dialer.wait_idle().await;
                        return Ok(());
                    }
                    SessionEnd::Replaced => return Err(AgentError::Replaced),
                    SessionEnd::Stopped(reason) => return Err(AgentError::Stopped(reason)),
                    SessionEnd::Moved(next) => {
                        info!(parent: &span, to = %next.welcome.session_id, "QUIC works again; moving the session back to it");
                        fallback.moved_to_quic();
                        tokio::spawn(drain(session, forwarder.clone()).instrument(span));
                        moved_to = Some(next);
                        continue;
                    }
                    SessionEnd::Lost(closed) => {
                        fallback.ended(transport, started.elapsed(), &closed);
                        closed.to_string()
                    }
                }
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Transient(reason)) => reason,
        };
        let delay = backoff(&config, failures);
        failures = failures.saturating_add(1);
        warn!(%reason, retry_in_ms = delay.as_millis() as u64, "edge session lost; reconnecting");
        emit(AgentEvent::Reconnecting {
            reason,
            retry_in: delay,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wait_true(&mut shutdown) => return Ok(()),
        }
    }
}

/// Exponential backoff with full jitter: uniformly random in `[min, min·2^n]`, capped.
fn backoff(config: &AgentConfig, failures: u32) -> Duration {
    let ceiling = config
        .reconnect_min
        .saturating_mul(1u32 << failures.min(16))
        .min(config.reconnect_max);
    let lo = config.reconnect_min.min(ceiling).as_millis() as u64;
    let hi = ceiling.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(lo..=hi.max(lo)))
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    // A dropped sender means nobody can ask us to stop; keep running.
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A random id for one agent run (`run_…`, 16 hex digits).
fn new_run_id() -> String {
    format!("run_{:016x}", rand::random::<u64>())
}

/// Accepts edge-opened streams until the session ends. When the agent stops, it first tells
/// the edge it is leaving and keeps serving until the edge stops picking it and the requests
/// already sent have finished (at most a few seconds), so a pooled endpoint loses no request.
/// On TCP under `auto`, QUIC is probed meanwhile; a probe that is admitted ends this with
/// [`SessionEnd::Moved`].
async fn serve(
    session: &mut Session,
    run: &Run<'_>,
    fallback: &Fallback,
    forwarder: &Arc<Forwarder>,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let link = session.link.clone();
    let probing = fallback.probes(link.transport());
    let probe = |delay| run.probe_quic(delay, session.welcome.session_id.clone());
    let mut moving = probing.then(|| Box::pin(probe(fallback.probe_delay())));
    let mut leaving = None;
    loop {
        tokio::select! {
            stream = link.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let stream = serve_stream(forwarder.clone(), send, recv, session.in_flight.clone());
                    tokio::spawn(stream.in_current_span());
                }
                Err(closed) => return ended(closed),
            },
            _ = wait_true(shutdown), if leaving.is_none() => {
                moving = None;
                if let Some(control) = session.control.take() {
                    leaving = Some(Box::pin(leave(control, link.rtt(), session.in_flight.clone())));
                }
            }
            () = async { if let Some(l) = leaving.as_mut() { l.await } }, if leaving.is_some() => {
                info!("session closing");
                return SessionEnd::Shutdown;
            }
            moved = async { match moving.as_mut() { Some(m) => m.await, None => std::future::pending().await } }, if moving.is_some() => match moved {
                Ok(next) => return SessionEnd::Moved(next),
                Err(Attempt::Transient(why) | Attempt::Fatal(AgentError::Untrusted(why))) => {
                    debug!(%why, "QUIC probe failed; staying on TCP");
                    moving = Some(Box::pin(probe(fallback.probe_delay())));
                }
                Err(Attempt::Fatal(e)) => {
                    debug!("QUIC probe refused ({e}); staying on TCP");
                    moving = Some(Box::pin(probe(fallback.probe_delay())));
                }
            },
        }
    }
}

/// How a session's link ended, as the run loop reads it.
fn ended(closed: Closed) -> SessionEnd {
    match &closed {
        Closed::Peer { code, .. } if *code == close_code::REPLACED => SessionEnd::Replaced,
        Closed::Peer { code, reason }
            if [close_code::STOPPED, close_code::CREDENTIAL_DELETED].contains(code) =>
        {
            SessionEnd::Stopped(operator_reason(reason))
        }
        _ => SessionEnd::Lost(closed),
    }
}

/// The edge's reason for an operator's close, as it sent it (bounded, printable), or a
/// default when it sent none.
fn operator_reason(reason: &Bytes) -> String {
    let reason: String = String::from_utf8_lossy(reason)
        .chars()
        .filter(|ch| !ch.is_control())
        .take(200)
        .collect();
    if reason.is_empty() {
        "stopped by the edge operator".to_string()
    } else {
        reason
    }
}

/// The agent's part of leaving: the edge is told and acknowledges, then requests it sent just
/// before (in flight on the network for about a round trip) and those already running finish.
async fn leave(control: Control, rtt: Duration, in_flight: Arc<AtomicUsize>) {
    control.leave(Duration::from_secs(1)).await;
    finish_requests(rtt, &in_flight, Duration::from_secs(3)).await;
}

/// Waits for requests sent in the last round trips to arrive, then (at most `limit`) for
/// every request being answered to finish.
async fn finish_requests(rtt: Duration, in_flight: &AtomicUsize, limit: Duration) {
    tokio::time::sleep((rtt * 2).max(Duration::from_millis(100))).await;
    let drain = async {
        while in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(limit, drain).await;
}

/// A session a move to QUIC left behind: the edge sends it nothing new, so it serves what it
/// has (streams still arriving included) until that is done, then closes.
async fn drain(session: Session, forwarder: Arc<Forwarder>) {
    let Session {
        link, in_flight, ..
    } = session;
    let done = finish_requests(link.rtt(), &in_flight, MOVE_DRAIN_LIMIT);
    tokio::pin!(done);
    loop {
        tokio::select! {
            () = &mut done => break,
            stream = link.accept_bi() => match stream {
                Ok((send, recv)) => {
                    tokio::spawn(serve_stream(forwarder.clone(), send, recv, in_flight.clone()).in_current_span());
                }
                Err(_) => return,
            },
        }
    }
    info!("the session left behind by the move is done; closing it");
    link.close(close_code::NORMAL, b"moved to QUIC");
}
