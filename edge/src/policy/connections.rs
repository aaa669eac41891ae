//! [`ConnectionPhases`]: what on_tcp_connect left on the HTTPS port's open connections, by
//! client and edge address, for the requests that arrive on them.
//!
//! The HTTPS port runs an endpoint's on_tcp_connect before the edge's handshake (terminate-tls
//! sets that handshake's parameters) and registers the result here; pingora then reads the
//! connection's requests, whose `request_filter` finds it by the addresses pingora reports.
//! The entry lives exactly as long as the connection: its [`Registration`] is dropped with it.

use parking_lot::Mutex;
use sluice_policy::ConnectionPhase;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A TCP connection's identity while it is open: the client's address and the edge's.
type Key = (SocketAddr, SocketAddr);

/// One connection's entry.
struct Entry {
    /// Which registration wrote it: a connection that closed late must not remove the entry
    /// of a new one from the same addresses.
    generation: u64,
    /// The endpoint whose rules ran (an HTTP/2 connection may carry requests for others).
    endpoint_id: String,
    phase: ConnectionPhase,
}

/// The open connections' on_tcp_connect results.
#[derive(Default)]
pub struct ConnectionPhases {
    open: Mutex<HashMap<Key, Entry>>,
    generations: AtomicU64,
}

impl std::fmt::Debug for ConnectionPhases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPhases")
            .field("open", &self.open.lock().len())
            .finish()
    }
}

/// Keeps a connection's entry; dropping it (with the connection) removes the entry.
pub struct Registration {
    table: Arc<ConnectionPhases>,
    key: Key,
    generation: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.table.open.lock();
        if open.get(&self.key).map(|e| e.generation) == Some(self.generation) {
            open.remove(&self.key);
        }
    }
}

impl ConnectionPhases {
    /// Records what `endpoint_id`'s on_tcp_connect left on the connection from `client` to
    /// `local`, until the returned registration is dropped.
    pub fn register(
        self: &Arc<Self>,
        client: SocketAddr,
        local: SocketAddr,
        endpoint_id: &str,
        phase: ConnectionPhase,
    ) -> Registration {
        let key = (client, local);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            generation,
            endpoint_id: endpoint_id.to_string(),
            phase,
        };
        self.open.lock().insert(key, entry);
        Registration {
            table: self.clone(),
            key,
            generation,
        }
    }

    /// What `endpoint_id`'s on_tcp_connect left on the open connection from `client` to
    /// `local`, if it ran there.
    pub fn get(
        &self,
        client: SocketAddr,
        local: SocketAddr,
        endpoint_id: &str,
    ) -> Option<ConnectionPhase> {
        let open = self.open.lock();
        let entry = open.get(&(client, local))?;
        (entry.endpoint_id == endpoint_id).then(|| entry.phase.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_as_long_as_its_registration() {
        let table = Arc::new(ConnectionPhases::default());
        let engine = sluice_policy::Engine::new(Vec::new());
        let client: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:443".parse().expect("addr");
        let conn = sluice_policy::ConnInfo::new(client, 443, std::time::SystemTime::now());
        let phase = engine
            .new_request(conn, sluice_policy::EndpointInfo::default())
            .connection_phase();
        let registration = table.register(client, local, "ep_1", phase.clone());
        assert!(table.get(client, local, "ep_1").is_some());
        assert!(
            table.get(client, local, "ep_2").is_none(),
            "another endpoint"
        );
        drop(registration);
        assert!(table.get(client, local, "ep_1").is_none());

        // A connection from the same addresses registered before the old one is dropped keeps
        // its entry.
        let old = table.register(client, local, "ep_1", phase.clone());
        let new = table.register(client, local, "ep_1", phase);
        drop(old);
        assert!(table.get(client, local, "ep_1").is_some());
        drop(new);
        assert!(table.get(client, local, "ep_1").is_none());
    }
}
