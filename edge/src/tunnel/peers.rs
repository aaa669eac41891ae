//! [`Peers`]: live agent sessions by their address, so a report that an address became
//! unreachable ([`super::unreachable`]) reaches the session's liveness watch.

use super::liveness::Liveness;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;

/// Agent sessions by remote address.
#[derive(Debug, Default)]
pub struct Peers {
    by_addr: Mutex<HashMap<SocketAddr, Weak<Liveness>>>,
}

impl Peers {
    /// Notes the session at `addr` until the returned guard is dropped.
    pub fn register(self: &Arc<Self>, addr: SocketAddr, liveness: &Arc<Liveness>) -> Registered {
        self.by_addr.lock().insert(addr, Arc::downgrade(liveness));
        Registered {
            peers: self.clone(),
            addr,
        }
    }

    /// Makes the session at each reported address a suspect, until the sender is gone.
    pub async fn listen(self: Arc<Self>, mut reports: mpsc::UnboundedReceiver<SocketAddr>) {
        while let Some(addr) = reports.recv().await {
            let liveness = self.by_addr.lock().get(&addr).and_then(Weak::upgrade);
            if let Some(liveness) = liveness {
                liveness.suspect();
            }
        }
    }
}

/// A session's entry in [`Peers`], removed when dropped.
#[derive(Debug)]
pub struct Registered {
    peers: Arc<Peers>,
    addr: SocketAddr,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.peers.by_addr.lock().remove(&self.addr);
    }
}
