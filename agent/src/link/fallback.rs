//! `--transport auto`'s rules: when QUIC has failed often enough to start on TCP, and how long
//! to wait before trying QUIC again while on TCP (docs/hardening.md, "Transport fallback").
//!
//! Blocked UDP shows at the dial (no answer within [`super::dial::RACE_AFTER`], or a refused
//! send) and is handled there by racing TCP. Partly blocked UDP lets the handshake through and
//! then starves the link, which dies of silence soon after coming up; one such death can be a
//! passing outage, so only [`DEATHS_TO_FALL_BACK`] of them in a row make the next dial go to
//! TCP straight away.

use crate::config::agent::{AgentConfig, TransportChoice};
use rand::Rng;
use sluice_proto::link::{Closed, Transport};
use std::time::Duration;

/// A QUIC session that ends sooner than this after coming up died young.
pub(crate) const SHORT_LIFE: Duration = Duration::from_secs(30);

/// Young silent QUIC deaths in a row that make the agent dial TCP first.
pub(crate) const DEATHS_TO_FALL_BACK: u32 = 2;

/// Longest wait between QUIC probes, however often moving back failed.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(600);

/// One link's transport history (each of the agent's links keeps its own).
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    choice: TransportChoice,
    /// QUIC sessions in a row that died of silence within [`SHORT_LIFE`].
    young_deaths: u32,
    probe_interval: Duration,
    /// Moves back to QUIC that died young again: each doubles the probe interval.
    failed_moves: u32,
}

impl Fallback {
    pub(crate) fn new(config: &AgentConfig) -> Self {
        Self {
            choice: config.transport,
            young_deaths: 0,
            probe_interval: config.quic_probe_interval,
            failed_moves: 0,
        }
    }

    /// Whether the next dial should go to TCP without trying QUIC first.
    pub(crate) fn prefer_tcp(&self) -> bool {
        self.choice == TransportChoice::Auto && self.young_deaths >= DEATHS_TO_FALL_BACK
    }

    /// Whether QUIC should be probed while a session runs on `transport`.
    pub(crate) fn probes(&self, transport: Transport) -> bool {
        self.choice == TransportChoice::Auto && transport == Transport::Tcp
    }

    /// A session on `transport` ended `how`, `lived` after coming up.
    pub(crate) fn ended(&mut self, transport: Transport, lived: Duration, how: &Closed) {
        if transport != Transport::Quic {
            return;
        }
        if lived >= SHORT_LIFE {
            self.young_deaths = 0;
            self.failed_moves = 0;
        } else if *how == Closed::TimedOut {
            self.young_deaths += 1;
        }
    }

    /// The TCP dial failed too: the network may be down rather than UDP blocked, so the next
    /// dial tries both again.
    pub(crate) fn tcp_failed(&mut self) {
        self.young_deaths = 0;
    }

    /// The session moved back to QUIC: one more young death sends it to TCP again, and the
    /// next probe waits longer.
    pub(crate) fn moved_to_quic(&mut self) {
        if self.young_deaths >= DEATHS_TO_FALL_BACK {
            self.failed_moves += 1;
        }
        self.young_deaths = DEATHS_TO_FALL_BACK - 1;
    }

    /// How long to wait before the next QUIC probe: the interval, doubled per failed move,
    /// ±25 % so agents behind one network do not probe in step.
    pub(crate) fn probe_delay(&self) -> Duration {
        let base = self
            .probe_interval
            .saturating_mul(1u32 << self.failed_moves.min(10))
            .min(MAX_PROBE_INTERVAL.max(self.probe_interval));
        base.mul_f64(rand::thread_rng().gen_range(0.75..=1.25))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::endpoint::EndpointConfig;

    fn auto() -> Fallback {
        let mut config = AgentConfig::new(
            "edge:1",
            "t",
            EndpointConfig::new("http://127.0.0.1:1".parse().expect("upstream")),
        );
        config.quic_probe_interval = Duration::from_secs(10);
        Fallback::new(&config)
    }

    #[test]
    fn one_young_death_is_not_enough_two_are() {
        let mut f = auto();
        f.ended(Transport::Quic, Duration::from_secs(9), &Closed::TimedOut);
        assert!(!f.prefer_tcp());
        f.ended(Transport::Quic, Duration::from_secs(9), &Closed::TimedOut);
        assert!(f.prefer_tcp());
    }

    #[test]
    fn a_long_life_or_another_ending_does_not_count() {
        let mut f = auto();
        f.ended(Transport::Quic, Duration::from_secs(9), &Closed::TimedOut);
        f.ended(Transport::Quic, Duration::from_secs(600), &Closed::TimedOut);
        f.ended(
            Transport::Quic,
            Duration::from_secs(9),
            &Closed::Lost("reset".into()),
        );
        f.ended(Transport::Tcp, Duration::from_secs(9), &Closed::TimedOut);
        assert!(!f.prefer_tcp());
    }

    #[test]
    fn a_failed_move_back_doubles_the_probe_interval() {
        let mut f = auto();
        let first = f.probe_delay();
        assert!(first >= Duration::from_millis(7500) && first <= Duration::from_millis(12500));
        for _ in 0..DEATHS_TO_FALL_BACK {
            f.ended(Transport::Quic, Duration::from_secs(1), &Closed::TimedOut);
        }
        f.moved_to_quic();
        assert!(!f.prefer_tcp());
        f.ended(Transport::Quic, Duration::from_secs(1), &Closed::TimedOut);
        assert!(
            f.prefer_tcp(),
            "one young death after a move falls back again"
        );
        f.moved_to_quic();
        assert!(f.probe_delay() >= Duration::from_secs(30));
    }

    #[test]
    fn explicit_transports_never_fall_back_or_probe() {
        let mut config = AgentConfig::new(
            "edge:1",
            "t",
            EndpointConfig::new("http://127.0.0.1:1".parse().expect("upstream")),
        );
        config.transport = TransportChoice::Quic;
        let mut f = Fallback::new(&config);
        for _ in 0..5 {
            f.ended(Transport::Quic, Duration::from_secs(1), &Closed::TimedOut);
        }
        assert!(!f.prefer_tcp());
        config.transport = TransportChoice::Tcp;
        assert!(!Fallback::new(&config).probes(Transport::Tcp));
    }
}
