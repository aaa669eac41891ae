//! Noticing a dead agent in seconds, not at the QUIC idle timeout.
//!
//! While requests wait on an agent, the session's control task watches the connection for any
//! datagram from the agent, and when it has been quiet for a moment, sends a ping on the control
//! stream (the agent answers, and its QUIC stack acknowledges the packet at once). An agent
//! silent for [`SILENCE_LIMIT`] is closed, which fails its requests with `ERR_SLUICE_3210` and
//! frees its routes. A port-unreachable report for the agent's address makes it a suspect: it
//! is pinged at once and given only [`SUSPECT_LIMIT`] (plus a few round trips) to answer.
//!
//! An idle session costs nothing here: QUIC's own keep-alives and idle timeout cover it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Silence, while requests wait, after which the agent is declared dead. Longer than the
/// 2-second network blackhole a healthy session must survive (tests/faults.rs), shorter than
/// the 3 seconds in which a dead agent's requests must fail.
pub const SILENCE_LIMIT: Duration = Duration::from_millis(2_700);

/// How long a suspect (its address reported unreachable) has to answer a ping, beyond four
/// round trips.
pub const SUSPECT_LIMIT: Duration = Duration::from_millis(300);

/// How often an active watch looks at the connection.
pub const TICK: Duration = Duration::from_millis(200);

/// Quiet for this long, the agent gets a ping (again at most this often).
pub const PING_AFTER: Duration = Duration::from_millis(600);

/// What the request path tells the session's watcher.
#[derive(Debug, Default)]
pub struct Liveness {
    in_flight: AtomicUsize,
    suspect: AtomicBool,
    wake: Notify,
}

impl Liveness {
    /// A request now waits on the agent until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.wake.notify_one();
        }
        InFlight(self.clone())
    }

    /// The agent's address was reported unreachable: probe it now.
    pub fn suspect(&self) {
        self.suspect.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether the watch should run: requests wait, or the agent is a suspect.
    fn active(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0 || self.suspect.load(Ordering::Acquire)
    }

    /// Waits until the watch should run.
    pub async fn until_active(&self) {
        loop {
            let woken = self.wake.notified();
            if self.active() {
                return;
            }
            woken.await;
        }
    }
}

/// A request waiting on the agent (see [`Liveness::begin`]).
#[derive(Debug)]
pub struct InFlight(Arc<Liveness>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one look at the connection concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do.
    Fine,
    /// Send a ping.
    Ping,
    /// Silent too long: the agent is gone.
    Dead,
    /// Nothing waits on the agent any more: stop watching.
    Idle,
}

/// One active watch of a connection: when the agent was last heard from.
#[derive(Debug)]
pub struct Watch {
    liveness: Arc<Liveness>,
    last_datagrams: u64,
    heard: Instant,
    pinged: Option<Instant>,
    suspect_since: Option<Instant>,
}

impl Watch {
    /// Starts watching: silence is counted from now.
    pub fn start(liveness: Arc<Liveness>, datagrams: u64, now: Instant) -> Self {
        Self {
            liveness,
            last_datagrams: datagrams,
            heard: now,
            pinged: None,
            suspect_since: None,
        }
    }

    /// Looks at the connection's received-datagram count at `now`, with its current round-trip
    /// estimate.
    pub fn look(&mut self, datagrams: u64, rtt: Duration, now: Instant) -> Verdict {
        if datagrams != self.last_datagrams {
            self.last_datagrams = datagrams;
            self.heard = now;
            self.pinged = None;
            self.suspect_since = None;
            self.liveness.suspect.store(false, Ordering::Release);
        }
        if self.liveness.suspect.load(Ordering::Acquire) && self.suspect_since.is_none() {
            self.suspect_since = Some(now);
            self.pinged = Some(now);
            return Verdict::Ping;
        }
        if let Some(since) = self.suspect_since {
            if now.duration_since(since) > SUSPECT_LIMIT + rtt * 4 {
                return Verdict::Dead;
            }
        }
        if now.duration_since(self.heard) > SILENCE_LIMIT {
            return Verdict::Dead;
        }
        if !self.liveness.active() {
            return Verdict::Idle;
        }
        let quiet = now.duration_since(self.heard) >= PING_AFTER;
        let due = self
            .pinged
            .is_none_or(|at| now.duration_since(at) >= PING_AFTER);
        if quiet && due {
            self.pinged = Some(now);
            return Verdict::Ping;
        }
        Verdict::Fine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTT: Duration = Duration::from_millis(1);

    #[test]
    fn a_quiet_agent_is_pinged_then_declared_dead() {
        let liveness = Arc::new(Liveness::default());
        let _req = liveness.begin();
        let t0 = Instant::now();
        let mut w = Watch::start(liveness.clone(), 10, t0);
        assert_eq!(w.look(10, RTT, t0 + TICK), Verdict::Fine);
        assert_eq!(w.look(10, RTT, t0 + PING_AFTER), Verdict::Ping);
        assert_eq!(w.look(10, RTT, t0 + PING_AFTER + TICK), Verdict::Fine);
        assert_eq!(w.look(10, RTT, t0 + PING_AFTER * 2), Verdict::Ping);
        assert_eq!(w.look(10, RTT, t0 + SILENCE_LIMIT + TICK), Verdict::Dead);
    }

    #[test]
    fn any_datagram_resets_the_silence() {
        let liveness = Arc::new(Liveness::default());
        let _req = liveness.begin();
        let t0 = Instant::now();
        let mut w = Watch::start(liveness.clone(), 10, t0);
        let later = t0 + SILENCE_LIMIT - TICK;
        assert_ne!(w.look(11, RTT, later), Verdict::Dead);
        assert_ne!(w.look(11, RTT, later + SILENCE_LIMIT - TICK), Verdict::Dead);
        assert_eq!(w.look(11, RTT, later + SILENCE_LIMIT + TICK), Verdict::Dead);
    }

    #[test]
    fn a_suspect_has_little_time_and_idle_sessions_stop_watching() {
        let liveness = Arc::new(Liveness::default());
        let t0 = Instant::now();
        let mut w = Watch::start(liveness.clone(), 10, t0);
        liveness.suspect();
        assert_eq!(w.look(10, RTT, t0), Verdict::Ping);
        assert_eq!(w.look(10, RTT, t0 + SUSPECT_LIMIT + TICK), Verdict::Dead);

        let liveness = Arc::new(Liveness::default());
        let mut w = Watch::start(liveness.clone(), 10, t0);
        liveness.suspect();
        assert_eq!(w.look(10, RTT, t0), Verdict::Ping);
        // It answered: no longer a suspect, and with nothing in flight the watch ends.
        assert_eq!(w.look(12, RTT, t0 + TICK), Verdict::Idle);
        let req = liveness.begin();
        assert_eq!(w.look(12, RTT, t0 + TICK * 2), Verdict::Fine);
        drop(req);
        assert_eq!(w.look(13, RTT, t0 + TICK * 3), Verdict::Idle);
    }
}
