//! The agent's links ([`run`]): up to `ha_connections` at once, each to another edge (told
//! apart by the id its `Welcome` names, whatever address was dialled), dialled one at a time
//! with exponential backoff, every request served by whichever link it arrives on. An edge
//! that runs alone (no id) gets exactly one link. See docs/cluster.md, "Agents linked to
//! several edges".

use super::dial::Dialer;
use super::error::{AgentError, Attempt};
use super::events::{AgentEvent, EdgeLink};
use super::fallback::Fallback;
use super::session::{wait_true, LinkEnd, LinkTask, Order, Report, Run, Session};
use super::targets::{pick, Target, Targets};
use crate::config::agent::{AgentConfig, MAX_HA_CONNECTIONS};
use crate::forward::forwarder::Forwarder;
use rand::Rng;
use sluice_proto::close_code;
use sluice_proto::link::Link;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

/// How long a link the edge closed as replaced waits for this agent's own newer link to name
/// that edge (the edge closes the old session before its `Welcome` to the new one reaches
/// the agent) before the agent takes it as replaced by another agent and stops.
const REPLACED_GRACE: Duration = Duration::from_secs(3);

/// How long an address that led to an edge this agent already had is left alone, doubled at
/// each such meeting in a row up to [`MAX_COLLISION_COOLDOWN`].
const COLLISION_COOLDOWN: Duration = Duration::from_secs(10);
const MAX_COLLISION_COOLDOWN: Duration = Duration::from_secs(600);

/// Runs the agent until `shutdown` turns true (every link leaves cleanly, hostnames freed at
/// once) or a fatal error. Events go to `events`, if any.
pub async fn run(
    config: AgentConfig,
    events: Option<mpsc::UnboundedSender<AgentEvent>>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let forwarder = Arc::new(Forwarder::new(&config)?.with_observers(config.observers.clone()));
    let targets = Targets::new(&config).await?;
    let dialer = Dialer::new(&config)?;
    let want = config.ha_connections.clamp(1, MAX_HA_CONNECTIONS);
    let fallback = Fallback::new(&config);
    let run = Arc::new(Run::new(config, dialer, targets, forwarder));
    Supervisor::new(run, events, want, fallback, shutdown)
        .supervise()
        .await
}

/// The supervisor's state: the slots, the dial pipeline and what it learnt about addresses.
struct Supervisor {
    run: Arc<Run>,
    events: Option<mpsc::UnboundedSender<AgentEvent>>,
    shutdown: watch::Receiver<bool>,
    slots: Vec<Slot>,
    tasks: JoinSet<()>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    next_id: u64,
    /// Failed attempts and lost links in a row, for the backoff.
    failures: u32,
    /// New links in a row that met an edge already linked.
    collisions: u32,
    /// Addresses that led to an edge already linked, left alone until then.
    cooldown: HashMap<SocketAddr, Instant>,
    /// Where the next dial starts looking among the addresses.
    cursor: usize,
    /// Edges that closed a link as replaced, and until when this agent's own newer link may
    /// still show up there.
    replaced: Vec<(Option<String>, Instant)>,
    ever_online: bool,
    next_dial: Instant,
}

/// One place for a link.
struct Slot {
    fallback: Fallback,
    live: Option<Live>,
}

/// A link whose task runs.
struct Live {
    id: u64,
    target: Target,
    edge: EdgeLink,
    session_id: String,
    link: Link,
    orders: mpsc::UnboundedSender<Order>,
}

/// How one dial went.
enum Dialed {
    /// Every address is taken by a link or cooling down.
    NoTarget,
    Tried {
        slot: usize,
        index: usize,
        prefer_tcp: bool,
        result: Result<Session, Attempt>,
    },
}

type Dialing = Pin<Box<dyn Future<Output = Dialed> + Send>>;

impl Supervisor {
    fn new(
        run: Arc<Run>,
        events: Option<mpsc::UnboundedSender<AgentEvent>>,
        want: usize,
        fallback: Fallback,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Self {
            run,
            events,
            shutdown,
            slots: (0..want)
                .map(|_| Slot {
                    fallback: fallback.clone(),
                    live: None,
                })
                .collect(),
            tasks: JoinSet::new(),
            reports_tx,
            reports,
            next_id: 0,
            failures: 0,
            collisions: 0,
            cooldown: HashMap::new(),
            cursor: 0,
            replaced: Vec::new(),
            ever_online: false,
            next_dial: Instant::now(),
        }
    }

    async fn supervise(mut self) -> Result<(), AgentError> {
        let mut shutdown = self.shutdown.clone();
        let mut dialing: Option<Dialing> = None;
        loop {
            let slot = self.slot_to_fill();
            if let (None, Some(slot)) = (&dialing, slot) {
                if Instant::now() >= self.next_dial {
                    dialing = Some(self.dial(slot));
                }
            }
            let wake = (dialing.is_none() && slot.is_some()).then_some(self.next_dial);
            let replaced = self.replaced.iter().map(|(_, until)| *until).min();
            let step = tokio::select! {
                _ = wait_true(&mut shutdown) => {
                    drop(dialing);
                    return self.stop().await;
                }
                dialed = async { match dialing.as_mut() { Some(d) => d.await, None => std::future::pending().await } }, if dialing.is_some() => {
                    dialing = None;
                    self.dialed(dialed)
                }
                Some(report) = self.reports.recv() => self.report(report),
                () = sleep_until(wake), if wake.is_some() => Ok(()),
                () = sleep_until(replaced), if replaced.is_some() => Err(AgentError::Replaced),
            };
            while self.tasks.try_join_next().is_some() {}
            if let Err(e) = step {
                return Err(self.fail(e));
            }
        }
    }

    /// The slot the next link goes to, if one is wanted now: none while a replaced link's
    /// fate is open, and none beside a link to an edge that runs alone.
    fn slot_to_fill(&self) -> Option<usize> {
        let alone = self.live().any(|l| l.edge.edge_id.is_none());
        if alone || !self.replaced.is_empty() {
            return None;
        }
        self.slots.iter().position(|s| s.live.is_none())
    }

    fn live(&self) -> impl Iterator<Item = &Live> {
        self.slots.iter().filter_map(|s| s.live.as_ref())
    }

    fn slot_of(&self, id: u64) -> Option<usize> {
        (self.slots.iter()).position(|s| s.live.as_ref().is_some_and(|l| l.id == id))
    }

    /// Dials an address no link uses (nor one cooling down) for `slot`. While another link
    /// is up, the `Hello` names its session: should this address lead to that link's edge,
    /// the edge moves the endpoints over make-before-break instead of closing the old one.
    fn dial(&mut self, slot: usize) -> Dialing {
        let now = Instant::now();
        let mut avoid: Vec<SocketAddr> = self.live().map(|l| l.target.addr).collect();
        let moving_from = self
            .live()
            .min_by_key(|l| l.id)
            .map(|l| l.session_id.clone());
        if avoid.is_empty() {
            self.cooldown.clear();
        }
        self.cooldown.retain(|_, until| *until > now);
        if !avoid.is_empty() {
            avoid.extend(self.cooldown.keys());
        }
        let prefer_tcp = self.slots[slot].fallback.prefer_tcp();
        let (run, cursor) = (self.run.clone(), self.cursor);
        Box::pin(async move {
            let targets = run.targets.resolve().await;
            let Some((index, target)) = pick(&targets, &avoid, cursor) else {
                return Dialed::NoTarget;
            };
            let result = run.connect(&target, prefer_tcp, moving_from).await;
            Dialed::Tried {
                slot,
                index,
                prefer_tcp,
                result,
            }
        })
    }

    fn dialed(&mut self, dialed: Dialed) -> Result<(), AgentError> {
        match dialed {
            Dialed::NoTarget => {
                // Addresses may change (DNS) and cooldowns end: look again later.
                self.next_dial = Instant::now() + self.run.config.reconnect_max;
                Ok(())
            }
            Dialed::Tried {
                slot,
                index,
                prefer_tcp,
                result,
            } => {
                self.cursor = index + 1;
                match result {
                    Ok(session) => self.admitted(slot, session, None),
                    Err(Attempt::Fatal(e)) => Err(e),
                    Err(Attempt::Transient(reason)) => {
                        if prefer_tcp {
                            self.slots[slot].fallback.tcp_failed();
                        }
                        self.retry_later(slot, reason);
                        Ok(())
                    }
                }
            }
        }
    }

    /// A new session is up: dialled for `slot`, or from a QUIC probe of link `probe_from`
    /// that another edge admitted. Sorts out which link it is.
    fn admitted(
        &mut self,
        slot: usize,
        session: Session,
        probe_from: Option<u64>,
    ) -> Result<(), AgentError> {
        let edge_id = session.welcome.edge_id.clone();
        self.run.bound(&session.welcome);
        let before = self.replaced.len();
        self.replaced.retain(|(edge, _)| *edge != edge_id);
        let after_replaced = self.replaced.len() < before;
        if edge_id.is_none() && self.live().next().is_some() {
            // An edge that runs alone, met while linked to a cluster's edges: it may be one of
            // them under another address; one link to it is all it can take.
            info!(addr = %session.target.addr, "this address leads to an edge that runs alone; not linking there too");
            session
                .link
                .close(close_code::NORMAL, b"already linked elsewhere");
            self.cool(&[session.target.addr]);
            return Ok(());
        }
        let same_edge = self.slots.iter().position(|s| {
            s.live.as_ref().is_some_and(|l| {
                Some(l.id) != probe_from && edge_id.is_some() && l.edge.edge_id == edge_id
            })
        });
        let place = if let Some(old) = same_edge {
            // The edge took that link's endpoints over (make-before-break when the `Hello`
            // named it, else it closed it as replaced): this session takes its place.
            info!(edge_id = ?edge_id, addr = %session.target.addr, "this address leads to an edge already linked; the new session takes over from the old");
            // Both addresses lead to that edge: neither is worth a new link for a while.
            let before = self.slots[old].live.as_ref().map(|l| l.target.addr);
            self.retire(old, false);
            self.cool(
                &[Some(session.target.addr), before]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>(),
            );
            old
        } else if let Some(from) = probe_from.and_then(|id| self.slot_of(id)) {
            match self.slot_to_fill() {
                Some(idle) => idle,
                None => {
                    // One link too many: the prober (on TCP) leaves, QUIC takes its place.
                    self.retire(from, true);
                    self.slots[from].fallback.moved_to_quic();
                    from
                }
            }
        } else if probe_from.is_some() {
            match self.slot_to_fill() {
                Some(idle) => idle,
                None => {
                    session
                        .link
                        .close(close_code::NORMAL, b"no link to take over");
                    return Ok(());
                }
            }
        } else {
            if after_replaced {
                self.cool(&[session.target.addr]);
            } else {
                self.collisions = 0;
            }
            slot
        };
        self.failures = 0;
        self.next_dial = Instant::now();
        self.start_link(place, session);
        Ok(())
    }

    /// Reports `session` online and runs it in `slot`.
    fn start_link(&mut self, slot: usize, session: Session) {
        let id = self.next_id;
        self.next_id += 1;
        let edge = EdgeLink {
            slot,
            addr: session.link.remote_address(),
            edge_id: session.welcome.edge_id.clone(),
        };
        self.online(&session.welcome, &session.link, edge.clone());
        let (orders, orders_rx) = mpsc::unbounded_channel();
        self.slots[slot].live = Some(Live {
            id,
            target: session.target.clone(),
            edge,
            session_id: session.welcome.session_id.clone(),
            link: session.link.clone(),
            orders,
        });
        let task = LinkTask {
            id,
            run: self.run.clone(),
            fallback: self.slots[slot].fallback.clone(),
            shutdown: self.shutdown.clone(),
            orders: orders_rx,
            reports: self.reports_tx.clone(),
        };
        let reconnected = self.ever_online;
        self.ever_online = true;
        self.tasks.spawn(task.run(session, reconnected));
    }

    fn online(&self, welcome: &sluice_proto::control::Welcome, link: &Link, edge: EdgeLink) {
        let upstreams = self
            .run
            .config
            .endpoints
            .iter()
            .map(|e| e.upstream.to_string());
        self.emit(AgentEvent::Online {
            session_id: welcome.session_id.clone(),
            endpoints: welcome.endpoints.iter().cloned().zip(upstreams).collect(),
            reconnected: self.ever_online,
            link: link.clone(),
            edge,
        });
    }

    /// Takes the link out of `slot` and has it leave (`tell_edge`) or drain.
    fn retire(&mut self, slot: usize, tell_edge: bool) {
        if let Some(live) = self.slots[slot].live.take() {
            if live.orders.send(Order::Retire { tell_edge }).is_err() {
                live.link.close(close_code::NORMAL, b"superseded");
            }
        }
    }

    /// Leaves `addrs` alone for a while: they lead to an edge already linked.
    fn cool(&mut self, addrs: &[SocketAddr]) {
        let delay = COLLISION_COOLDOWN
            .saturating_mul(1u32 << self.collisions.min(10))
            .min(MAX_COLLISION_COOLDOWN);
        self.collisions = self.collisions.saturating_add(1);
        let until = Instant::now() + delay;
        for addr in addrs {
            self.cooldown.insert(*addr, until);
        }
    }

    fn report(&mut self, report: Report) -> Result<(), AgentError> {
        match report {
            Report::Moved { id, welcome, link } => {
                let Some(slot) = self.slot_of(id) else {
                    return Ok(());
                };
                self.run.bound(&welcome);
                self.slots[slot].fallback.moved_to_quic();
                let edge = EdgeLink {
                    slot,
                    addr: link.remote_address(),
                    edge_id: welcome.edge_id.clone(),
                };
                self.online(&welcome, &link, edge.clone());
                if let Some(live) = self.slots[slot].live.as_mut() {
                    live.session_id = welcome.session_id;
                    live.link = link;
                    live.edge = edge;
                }
                Ok(())
            }
            Report::Probed { id, next } => {
                let slot = self.slot_of(id).unwrap_or_default();
                self.admitted(slot, next, Some(id))
            }
            Report::Ended {
                id,
                end,
                transport,
                lived,
            } => {
                // A link retired on the supervisor's order is already out of its slot.
                let Some(slot) = self.slot_of(id) else {
                    return Ok(());
                };
                let Some(live) = self.slots[slot].live.take() else {
                    return Ok(());
                };
                match end {
                    LinkEnd::Shutdown => Ok(()),
                    LinkEnd::Stopped(reason) => Err(AgentError::Stopped(reason)),
                    LinkEnd::Replaced if live.edge.edge_id.is_none() => Err(AgentError::Replaced),
                    LinkEnd::Replaced => {
                        info!(edge_id = ?live.edge.edge_id, "the edge replaced this link's session; is it this agent's own newer link?");
                        self.replaced
                            .push((live.edge.edge_id, Instant::now() + REPLACED_GRACE));
                        Ok(())
                    }
                    LinkEnd::Lost(closed) => {
                        self.slots[slot].fallback.ended(transport, lived, &closed);
                        self.retry_later(slot, closed.to_string());
                        Ok(())
                    }
                }
            }
        }
    }

    /// An attempt for `slot` failed or its link was lost: the next dial waits for the backoff.
    fn retry_later(&mut self, slot: usize, reason: String) {
        let delay = backoff(&self.run.config, self.failures);
        self.failures = self.failures.saturating_add(1);
        self.next_dial = Instant::now() + delay;
        let links_online = self.live().count();
        warn!(%reason, slot, links_online, retry_in_ms = delay.as_millis() as u64, "edge session lost; reconnecting");
        self.emit(AgentEvent::Reconnecting {
            reason,
            retry_in: delay,
            slot,
            links_online,
        });
    }

    fn emit(&self, event: AgentEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    /// The agent stops: every link's task saw the signal and leaves; wait for them.
    async fn stop(mut self) -> Result<(), AgentError> {
        while self.tasks.join_next().await.is_some() {}
        self.run.dialer.wait_idle().await;
        Ok(())
    }

    /// A fatal error: every other link is closed at once.
    fn fail(&mut self, e: AgentError) -> AgentError {
        for slot in &mut self.slots {
            if let Some(live) = slot.live.take() {
                live.link.close(close_code::NORMAL, b"agent stopped");
            }
        }
        self.tasks.abort_all();
        e
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
