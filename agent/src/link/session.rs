//! One link's life on an edge: dial ([`super::dial`]) and handshake ([`super::handshake`]),
//! serve the edge's streams, leave when the agent stops, and, on TCP under `--transport auto`,
//! probe QUIC and move back to it without a break ([`super::fallback`]). The supervisor
//! ([`super::supervisor`]) keeps several of these, each to another edge.

use super::control::Control;
use super::dial::Dialer;
use super::error::{AgentError, Attempt};
use super::fallback::Fallback;
use super::handshake::{self, Ask};
use super::targets::{Target, Targets};
use crate::config::agent::AgentConfig;
use crate::forward::forwarder::Forwarder;
use crate::forward::stream::serve_stream;
use bytes::Bytes;
use sluice_proto::close_code;
use sluice_proto::control::Welcome;
use sluice_proto::link::{Closed, Link, Transport};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, info_span, Instrument, Span};

/// Longest a session left behind by a move to QUIC keeps serving what it has (downloads,
/// websockets) before it is closed.
const MOVE_DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// An admitted session.
pub(crate) struct Session {
    pub(crate) link: Link,
    pub(crate) welcome: Welcome,
    /// The address it was dialled at.
    pub(crate) target: Target,
    control: Option<Control>,
    /// Requests being answered on it (a stream idle between requests is not one).
    in_flight: Arc<AtomicUsize>,
}

/// How a link's session ended, as the supervisor reads it.
pub(crate) enum LinkEnd {
    /// The agent is stopping; the link left cleanly.
    Shutdown,
    /// The edge closed it as replaced by a newer session of the same authtoken.
    Replaced,
    /// The operator ended it (`close_code::STOPPED`, `CREDENTIAL_DELETED`); the edge's reason.
    Stopped(String),
    /// Lost (timed out, reset, closed by the edge otherwise).
    Lost(Closed),
}

/// What a link's task tells the supervisor.
pub(crate) enum Report {
    /// The session ended (not on the supervisor's order).
    Ended {
        id: u64,
        end: LinkEnd,
        transport: Transport,
        /// How long it was up.
        lived: Duration,
    },
    /// A QUIC probe took the link over on the same edge (make-before-break); the old session
    /// drains and the link goes on with this one.
    Moved {
        id: u64,
        welcome: Welcome,
        link: Link,
    },
    /// A QUIC probe was admitted by another edge than the link's (a balancer chose): the
    /// supervisor decides which link keeps going.
    Probed { id: u64, next: Session },
}

/// What the supervisor asks of a link.
pub(crate) enum Order {
    /// Stop taking requests, finish those in flight, close. `tell_edge`: say `Leaving` first
    /// (the edge still picks this session); otherwise the edge already moved the endpoints to
    /// a newer session.
    Retire { tell_edge: bool },
}

/// What every link of this run shares: its settings, dialer, run id and the endpoints' URLs.
pub(crate) struct Run {
    pub(crate) config: AgentConfig,
    pub(crate) dialer: Dialer,
    pub(crate) targets: Targets,
    /// One id for this run, the same on every link and kept across reconnects: an edge then
    /// takes its own earlier session's endpoints over rather than adding a second member.
    pub(crate) run_id: String,
    pub(crate) forwarder: Arc<Forwarder>,
    /// Each endpoint's URL as first bound (random names kept), or as configured.
    wanted: Mutex<Vec<Option<String>>>,
}

impl Run {
    pub(crate) fn new(
        config: AgentConfig,
        dialer: Dialer,
        targets: Targets,
        forwarder: Arc<Forwarder>,
    ) -> Self {
        let wanted = config.endpoints.iter().map(|e| e.url.clone()).collect();
        Self {
            config,
            dialer,
            targets,
            run_id: new_run_id(),
            forwarder,
            wanted: Mutex::new(wanted),
        }
    }

    fn ask(&self, moving_from: Option<String>) -> Ask<'_> {
        Ask {
            config: &self.config,
            run_id: &self.run_id,
            wanted: self
                .wanted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            moving_from,
        }
    }

    /// Dials `target` by the agent's choice and runs the handshake. `moving_from` names a
    /// live session of this run that the new one may take over make-before-break, should
    /// `target` turn out to be that session's edge.
    pub(crate) async fn connect(
        &self,
        target: &Target,
        prefer_tcp: bool,
        moving_from: Option<String>,
    ) -> Result<Session, Attempt> {
        let link = self.dialer.dial_any(target, prefer_tcp).await?;
        admit(link, target.clone(), self.ask(moving_from)).await
    }

    /// After `delay`, tries QUIC to `target` with a session that takes over from `current`.
    async fn probe_quic(
        &self,
        target: &Target,
        delay: Duration,
        current: String,
    ) -> Result<Session, Attempt> {
        tokio::time::sleep(delay).await;
        let link = self.dialer.dial(target, Transport::Quic).await?;
        admit(link, target.clone(), self.ask(Some(current))).await
    }

    /// Keeps exactly these endpoints on every later link, random names included, on the
    /// scheme they were bound with. An internal URL is reclaimed as it was bound, port
    /// included; a public one without the edge's port, which requested URLs may not name.
    pub(crate) fn bound(&self, welcome: &Welcome) {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        for (slot, bound) in wanted.iter_mut().zip(&welcome.endpoints) {
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
async fn admit(link: Link, target: Target, ask: Ask<'_>) -> Result<Session, Attempt> {
    match handshake::admit(&link, ask).await {
        Ok((welcome, control)) => Ok(Session {
            link,
            welcome,
            target,
            control: Some(control),
            in_flight: Arc::default(),
        }),
        Err(e) => {
            link.close(close_code::NORMAL, b"handshake failed");
            Err(e)
        }
    }
}

/// A random id for one agent run (`run_…`, 16 hex digits).
fn new_run_id() -> String {
    format!("run_{:016x}", rand::random::<u64>())
}

pub(crate) async fn wait_true(rx: &mut watch::Receiver<bool>) {
    // A dropped sender means nobody can ask us to stop; keep running.
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One link's task, from its first admitted session until it ends, is retired, or the agent
/// stops. `fallback` is the link's transport history (for the QUIC probe's delay);
/// `reconnected` goes into the first session's log line.
pub(crate) struct LinkTask {
    pub(crate) id: u64,
    pub(crate) run: Arc<Run>,
    pub(crate) fallback: Fallback,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) orders: mpsc::UnboundedReceiver<Order>,
    pub(crate) reports: mpsc::UnboundedSender<Report>,
}

/// How [`serve`] ended.
enum Served {
    Shutdown,
    Ended(LinkEnd),
    /// A QUIC session on the same edge took over (make-before-break); this one drains.
    Moved(Session),
    /// The supervisor retired it; the edge was told (it left).
    Left,
    /// The supervisor retired it; the edge already moved its endpoints away.
    Drain,
}

impl LinkTask {
    /// Serves `session`, then each session a QUIC probe moves the link to.
    pub(crate) async fn run(mut self, mut session: Session, reconnected: bool) {
        let mut reconnected = reconnected;
        loop {
            let span = session_span(&session);
            for bound in &session.welcome.endpoints {
                info!(parent: &span, url = %bound.url, reconnected, transport = %session.link.transport(), edge = %session.target.addr, "session online");
            }
            let started = Instant::now();
            let transport = session.link.transport();
            let served = self.serve(&mut session).instrument(span.clone()).await;
            match served {
                Served::Moved(next) => {
                    info!(parent: &span, to = %next.welcome.session_id, "QUIC works again; moving the session back to it");
                    let _ = self.reports.send(Report::Moved {
                        id: self.id,
                        welcome: next.welcome.clone(),
                        link: next.link.clone(),
                    });
                    let forwarder = self.run.forwarder.clone();
                    tokio::spawn(drain(session, forwarder, b"moved to QUIC").instrument(span));
                    session = next;
                    reconnected = true;
                }
                Served::Drain => {
                    info!(parent: &span, "another session of this agent took this edge over; draining");
                    let forwarder = self.run.forwarder.clone();
                    tokio::spawn(drain(session, forwarder, b"superseded").instrument(span));
                    return;
                }
                Served::Left => {
                    info!(parent: &span, "left the edge for another link");
                    session
                        .link
                        .close(close_code::NORMAL, b"left for another link");
                    return;
                }
                Served::Shutdown => {
                    session
                        .link
                        .close(close_code::NORMAL, b"agent shutting down");
                    let _ = self.reports.send(Report::Ended {
                        id: self.id,
                        end: LinkEnd::Shutdown,
                        transport,
                        lived: started.elapsed(),
                    });
                    return;
                }
                Served::Ended(end) => {
                    let _ = self.reports.send(Report::Ended {
                        id: self.id,
                        end,
                        transport,
                        lived: started.elapsed(),
                    });
                    return;
                }
            }
        }
    }

    /// Accepts edge-opened streams until the session ends. When the agent stops (or the
    /// supervisor retires the link with `tell_edge`), it first tells the edge it is leaving
    /// and keeps serving until the edge stops picking it and the requests already sent have
    /// finished (at most a few seconds), so a pooled endpoint loses no request. On TCP under
    /// `auto`, QUIC is probed meanwhile: a probe admitted by the same edge ends this with
    /// [`Served::Moved`], one admitted by another edge goes to the supervisor.
    async fn serve(&mut self, session: &mut Session) -> Served {
        let link = session.link.clone();
        let forwarder = self.run.forwarder.clone();
        let run = self.run.clone();
        let probing = self.fallback.probes(link.transport());
        let current = session.welcome.session_id.clone();
        let target = session.target.clone();
        let probe = |delay| {
            let (run, target, current) = (run.clone(), target.clone(), current.clone());
            async move { run.probe_quic(&target, delay, current).await }
        };
        let mut moving = probing.then(|| Box::pin(probe(self.fallback.probe_delay())));
        let mut leaving = None;
        let mut shutting_down = false;
        let mut orders_open = true;
        loop {
            tokio::select! {
                stream = link.accept_bi() => match stream {
                    Ok((send, recv)) => {
                        let stream = serve_stream(forwarder.clone(), send, recv, session.in_flight.clone());
                        tokio::spawn(stream.in_current_span());
                    }
                    Err(closed) => return Served::Ended(ended(closed)),
                },
                _ = wait_true(&mut self.shutdown), if leaving.is_none() => {
                    moving = None;
                    shutting_down = true;
                    if let Some(control) = session.control.take() {
                        leaving = Some(Box::pin(leave(control, link.rtt(), session.in_flight.clone())));
                    }
                }
                order = self.orders.recv(), if leaving.is_none() && orders_open => match order {
                    Some(Order::Retire { tell_edge: false }) => return Served::Drain,
                    Some(Order::Retire { tell_edge: true }) => {
                        moving = None;
                        if let Some(control) = session.control.take() {
                            leaving = Some(Box::pin(leave(control, link.rtt(), session.in_flight.clone())));
                        }
                    }
                    // The supervisor is gone: it closes the links itself.
                    None => orders_open = false,
                },
                () = async { if let Some(l) = leaving.as_mut() { l.await } }, if leaving.is_some() => {
                    info!("session closing");
                    return if shutting_down { Served::Shutdown } else { Served::Left };
                }
                moved = async { match moving.as_mut() { Some(m) => m.await, None => std::future::pending().await } }, if moving.is_some() => {
                    match moved {
                        Ok(next) if next.welcome.edge_id == session.welcome.edge_id => return Served::Moved(next),
                        Ok(next) => {
                            debug!(edge = ?next.welcome.edge_id, "the QUIC probe reached another edge");
                            let _ = self.reports.send(Report::Probed { id: self.id, next });
                        }
                        Err(Attempt::Transient(why) | Attempt::Fatal(AgentError::Untrusted(why))) => {
                            debug!(%why, "QUIC probe failed; staying on TCP");
                        }
                        Err(Attempt::Fatal(e)) => {
                            debug!("QUIC probe refused ({e}); staying on TCP");
                        }
                    }
                    moving = Some(Box::pin(probe(self.fallback.probe_delay())));
                }
            }
        }
    }
}

/// The span every log line of one session carries.
fn session_span(session: &Session) -> Span {
    let edge_id = session.welcome.edge_id.as_deref().unwrap_or("-");
    info_span!("agent_session", session = %session.welcome.session_id, transport = %session.link.transport(), edge = %session.target.addr, edge_id)
}

/// How a session's link ended, as the supervisor reads it.
fn ended(closed: Closed) -> LinkEnd {
    match &closed {
        Closed::Peer { code, .. } if *code == close_code::REPLACED => LinkEnd::Replaced,
        Closed::Peer { code, reason }
            if [close_code::STOPPED, close_code::CREDENTIAL_DELETED].contains(code) =>
        {
            LinkEnd::Stopped(operator_reason(reason))
        }
        _ => LinkEnd::Lost(closed),
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

/// A session whose edge moved its endpoints to a newer session of this run: the edge sends it
/// nothing new, so it serves what it has (streams still arriving included) until that is
/// done, then closes with `reason`.
async fn drain(session: Session, forwarder: Arc<Forwarder>, reason: &'static [u8]) {
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
    info!("the session left behind is done; closing it");
    link.close(close_code::NORMAL, reason);
}
