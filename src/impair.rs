//! A userspace impairment relay for the agent↔edge UDP path: loss, delay, jitter, reordering,
//! duplication and blackholes, seeded so a failing run can be replayed.
//!
//! These machines have no `netem` qdisc, so the relay sits between the agent and the edge's
//! QUIC port: the agent dials [`ImpairedLink::addr`], the relay forwards each datagram to the
//! edge (from one socket per agent address) and the answers back, applying the current
//! [`Impairment`] to both directions.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What happens to each datagram, in each direction.
#[derive(Clone, Debug, Default)]
pub struct Impairment {
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// One-way delay added to every datagram.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter`, per datagram (reorders as a side effect).
    pub jitter: Duration,
    /// Probability that a datagram is held back by an extra `delay + jitter` (reordering).
    pub reorder: f64,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Drop everything.
    pub blackhole: bool,
}

/// Counters of what the relay did, for assertions and failure messages.
#[derive(Clone, Debug, Default)]
pub struct LinkStats {
    /// Datagrams received from either side.
    pub seen: u64,
    /// Datagrams dropped (loss or blackhole).
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
}

struct Shared {
    impairment: Impairment,
    rng: StdRng,
    stats: LinkStats,
}

/// What to do with one datagram: the delays of the copies to send (empty: drop it).
fn fate(shared: &Mutex<Shared>) -> Vec<Duration> {
    let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
    s.stats.seen += 1;
    let imp = s.impairment.clone();
    if imp.blackhole || s.rng.random_bool(imp.loss.clamp(0.0, 1.0)) {
        s.stats.dropped += 1;
        return Vec::new();
    }
    let copies = if s.rng.random_bool(imp.duplicate.clamp(0.0, 1.0)) {
        s.stats.duplicated += 1;
        2
    } else {
        1
    };
    (0..copies)
        .map(|_| {
            let jitter = imp.jitter.mul_f64(s.rng.random::<f64>());
            let held = if s.rng.random_bool(imp.reorder.clamp(0.0, 1.0)) {
                imp.delay + imp.jitter
            } else {
                Duration::ZERO
            };
            imp.delay + jitter + held
        })
        .collect()
}

/// Sends `data` to `to` through `socket` after each of `delays`.
fn deliver(socket: Arc<UdpSocket>, to: Option<SocketAddr>, data: Vec<u8>, delays: Vec<Duration>) {
    for delay in delays {
        let (socket, data) = (socket.clone(), data.clone());
        let send = async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // A full socket buffer drops the datagram, as a congested link would.
            let _ = match to {
                Some(addr) => socket.send_to(&data, addr).await,
                None => socket.send(&data).await,
            };
        };
        tokio::spawn(send);
    }
}

/// A running relay; dropping it stops it.
pub struct ImpairedLink {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl ImpairedLink {
    /// Starts a relay on a loopback port forwarding to `target`, with a seeded random source.
    pub async fn start(
        target: SocketAddr,
        impairment: Impairment,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let addr = front.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared {
            impairment,
            rng: StdRng::seed_from_u64(seed),
            stats: LinkStats::default(),
        }));
        let task = tokio::spawn(relay(front, target, shared.clone()));
        Ok(Self { addr, shared, task })
    }

    /// The address the agent dials instead of the edge's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the impairment for datagrams from now on.
    pub fn set(&self, impairment: Impairment) {
        self.lock().impairment = impairment;
    }

    /// Turns the blackhole on or off, keeping the rest of the impairment.
    pub fn blackhole(&self, on: bool) {
        self.lock().impairment.blackhole = on;
    }

    /// What the relay has done so far.
    pub fn stats(&self) -> LinkStats {
        self.lock().stats.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ImpairedLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards datagrams from agents on `front` to `target`, one back socket per agent address.
async fn relay(front: Arc<UdpSocket>, target: SocketAddr, shared: Arc<Mutex<Shared>>) {
    let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    // Dropping the set (when the relay is aborted) aborts the answer tasks too.
    let mut answers = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok((n, from)) = front.recv_from(&mut buf).await {
        let back = match backs.get(&from) {
            Some(back) => back.clone(),
            None => {
                let Ok(back) = connect_back(target).await else {
                    continue;
                };
                answers.spawn(answer(back.clone(), front.clone(), from, shared.clone()));
                backs.insert(from, back.clone());
                back
            }
        };
        deliver(back, None, buf[..n].to_vec(), fate(&shared));
    }
}

async fn connect_back(target: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let back = UdpSocket::bind("127.0.0.1:0").await?;
    back.connect(target).await?;
    Ok(Arc::new(back))
}

/// Relays the edge's answers on `back` to the agent at `agent`.
async fn answer(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    agent: SocketAddr,
    shared: Arc<Mutex<Shared>>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match back.recv(&mut buf).await {
            Ok(n) => deliver(front.clone(), Some(agent), buf[..n].to_vec(), fate(&shared)),
            // ICMP "port unreachable" from a restarted edge surfaces here; keep relaying.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
