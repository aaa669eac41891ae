//! The edge's ports for TCP endpoints (`tcp_ports`): which port an endpoint gets, and the
//! listener that takes its clients' connections while some member holds it.
//!
//! The edge picks random free ports from the range itself rather than asking the kernel for
//! any free port (which lands outside the range and repeats ports freed a moment ago). A
//! port's listener lives as long as a [`PortHold`] for it: every agent endpoint on the port
//! holds one, so an agent reconnecting to its port shares the listener with its old session
//! until that one is gone, and the port is free again as soon as the last holder leaves.

use crate::addrs::UNSPECIFIED;
use rand::Rng;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::{debug, info, warn, Instrument};

/// An inclusive range of ports, `20000-20999` or one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

/// Why a port range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a port range: expected FIRST-LAST (e.g. 20000-20999) or one port, between 1 and 65535, FIRST ≤ LAST")]
pub struct PortRangeError(String);

impl PortRange {
    /// `first..=last`; `None` when empty or starting at 0.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        (first > 0 && first <= last).then_some(Self { first, last })
    }

    /// Every port of the range, in order.
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// How many ports it has (never 0).
    pub fn count(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PortRangeError(s.to_string());
        let (first, last) = s.split_once('-').unwrap_or((s, s));
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
        Self::new(port(first)?, port(last)?).ok_or_else(bad)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Takes each client connection a TCP endpoint's listener accepts (`tcp/` implements it, so
/// this module does not depend on how connections are served).
pub trait ConnectionHandler: Send + Sync + 'static {
    /// Serves `client`, which connected from `peer` to `local`; runs on its own task.
    fn serve(&self, client: TcpStream, peer: SocketAddr, local: SocketAddr);
}

/// Why no port could be held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The asked-for port lies outside `tcp_ports`.
    #[error("port {port} is outside this edge's TCP ports ({range})")]
    OutsideRange {
        /// The port asked for.
        port: u16,
        /// The edge's range.
        range: PortRange,
    },
    /// Every port of the range is held or cannot be bound.
    #[error("every port of this edge's TCP ports ({0}) is in use")]
    Exhausted(PortRange),
    /// The asked-for port cannot be bound (another program on the edge's host holds it).
    #[error("port {port} cannot be opened on the edge: {reason}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The operating system's reason.
        reason: String,
    },
}

/// The edge's TCP ports and their listeners.
pub struct TcpPorts {
    /// The ports `tcp://` endpoints may get.
    pub range: PortRange,
    ip: IpAddr,
    open: Mutex<HashMap<u16, Slot>>,
    handler: Arc<dyn ConnectionHandler>,
}

/// A port the edge listens on, or did until its last hold was dropped: the listener closes
/// when its accept task is dropped, which happens on the runtime shortly after.
struct Slot {
    holders: Weak<PortListener>,
    task: JoinHandle<()>,
}

impl Slot {
    fn held(&self) -> Option<PortHold> {
        self.holders.upgrade()
    }

    /// Whether the port is free: nobody holds it and its listener is closed.
    fn is_free(&self) -> bool {
        self.holders.strong_count() == 0 && self.task.is_finished()
    }
}

/// A port's listener, open while some endpoint member holds it.
pub struct PortListener {
    port: u16,
    accept: AbortHandle,
}

/// A hold on a port's listener: the listener closes when the last hold is dropped.
pub type PortHold = Arc<PortListener>;

impl PortListener {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortListener {
    fn drop(&mut self) {
        self.accept.abort();
        debug!(port = self.port, "TCP port closed");
    }
}

impl TcpPorts {
    /// Ports from `range` on address `ip`; accepted connections go to `handler`.
    pub fn new(range: PortRange, ip: IpAddr, handler: Arc<dyn ConnectionHandler>) -> Self {
        Self {
            range,
            ip,
            open: Mutex::new(HashMap::new()),
            handler,
        }
    }

    /// Holds `port`, opening its listener unless it is open already (held by an earlier
    /// member, such as this agent's previous session). A listener whose last hold was just
    /// dropped is waited for, so an agent that reconnects at once gets its port back.
    pub async fn hold(&self, port: u16) -> Result<PortHold, PortError> {
        if !self.range.contains(port) {
            return Err(PortError::OutsideRange {
                port,
                range: self.range,
            });
        }
        let closing = {
            let mut open = self.lock();
            if let Some(held) = open.get(&port).and_then(Slot::held) {
                return Ok(held);
            }
            open.remove(&port).map(|slot| slot.task)
        };
        if let Some(task) = closing {
            task.abort();
            // The listener is dropped with the task; a cancelled task ends at once.
            let _ = task.await;
        }
        let mut open = self.lock();
        if let Some(held) = open.get(&port).and_then(Slot::held) {
            return Ok(held);
        }
        let (hold, slot) = self.listen(port).map_err(|e| PortError::Bind {
            port,
            reason: e.to_string(),
        })?;
        open.insert(port, slot);
        Ok(hold)
    }

    /// Holds a random `usable` port nobody holds, trying the range's ports from a random start
    /// until one can be bound.
    pub fn hold_random(&self, usable: impl Fn(u16) -> bool) -> Result<PortHold, PortError> {
        let mut open = self.lock();
        open.retain(|_, slot| !slot.is_free());
        let len = self.range.count();
        let start = rand::thread_rng().gen_range(0..len);
        for offset in 0..len {
            let port = self.range.first + ((start + offset) % len) as u16;
            if open.contains_key(&port) || !usable(port) {
                continue;
            }
            match self.listen(port) {
                Ok((hold, slot)) => {
                    open.insert(port, slot);
                    return Ok(hold);
                }
                Err(e) => debug!(port, "TCP port not usable: {e}"),
            }
        }
        Err(PortError::Exhausted(self.range))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u16, Slot>> {
        // The map is only ever changed whole, so a poisoned lock still holds a valid map.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `port` and starts its accept loop.
    fn listen(&self, port: u16) -> std::io::Result<(PortHold, Slot)> {
        let addr = SocketAddr::new(self.ip, port);
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // A port freed a moment ago may still have connections in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let handler = self.handler.clone();
        let task = tokio::spawn(
            accept_loop(listener, handler)
                .instrument(tracing::info_span!(parent: None, "tcp_port", port)),
        );
        info!(port, "TCP port open");
        let hold = Arc::new(PortListener {
            port,
            accept: task.abort_handle(),
        });
        let slot = Slot {
            holders: Arc::downgrade(&hold),
            task,
        };
        Ok((hold, slot))
    }
}

/// Hands every connection the listener accepts to `handler`, until the task is aborted.
async fn accept_loop(listener: TcpListener, handler: Arc<dyn ConnectionHandler>) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let local = client
                    .local_addr()
                    .unwrap_or_else(|_| listener.local_addr().unwrap_or(UNSPECIFIED));
                handler.serve(client, peer, local);
            }
            Err(e) => {
                // Out of file descriptors, mostly: wait instead of spinning.
                warn!("TCP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Drop;
    impl ConnectionHandler for Drop {
        fn serve(&self, _: TcpStream, _: SocketAddr, _: SocketAddr) {}
    }

    fn ports(range: &str) -> TcpPorts {
        let range = range.parse().expect("range");
        TcpPorts::new(range, IpAddr::from([127, 0, 0, 1]), Arc::new(Drop))
    }

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!(
            "20000-20999".parse::<PortRange>().expect("range").count(),
            1000
        );
        assert_eq!("20000".parse::<PortRange>().expect("one port").count(), 1);
        for bad in ["", "0-10", "10-5", "1-70000", "a-b", "20000-"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn random_ports_stay_in_range_until_it_is_exhausted_and_come_back_when_freed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = listener.local_addr().expect("addr").port();
        drop(listener);
        let first = base.saturating_sub(2).max(1024);
        let ports = ports(&format!("{first}-{}", first + 2));
        let mut held = Vec::new();
        while let Ok(hold) = ports.hold_random(|_| true) {
            assert!(ports.range.contains(hold.port()));
            assert!(held.iter().all(|h: &PortHold| h.port() != hold.port()));
            held.push(hold);
            assert!(held.len() <= 3);
        }
        assert!(
            !held.is_empty(),
            "no port of {} could be bound",
            ports.range
        );
        assert_eq!(
            ports.hold_random(|_| true).err(),
            Some(PortError::Exhausted(ports.range))
        );
        let freed = held.pop().expect("a hold").port();
        assert_eq!(ports.hold(freed).await.expect("freed port").port(), freed);
    }

    #[tokio::test]
    async fn holding_a_held_port_shares_its_listener_and_outside_the_range_is_refused() {
        let ports = ports("1024-65535");
        let a = ports.hold_random(|_| true).expect("a port");
        let b = ports.hold(a.port()).await.expect("same port");
        assert!(Arc::ptr_eq(&a, &b));
        let narrow = self::ports("20000-20010");
        assert!(matches!(
            narrow.hold(30000).await,
            Err(PortError::OutsideRange { port: 30000, .. })
        ));
    }
}
