//! [`Reservations`]: hostnames and TCP ports reserved for one credential. Nobody else may
//! bring them online, even while the owner is offline; names nobody reserved stay first
//! come, first served. A snapshot admission reads without a lock.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

/// The reserved names, each with its owning credential's id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// Lowercase hostname → credential id.
    pub domains: HashMap<String, String>,
    /// TCP port → credential id.
    pub ports: HashMap<u16, String>,
}

/// The current reservations.
#[derive(Debug, Default)]
pub struct Reservations {
    current: ArcSwap<Reserved>,
}

impl Reservations {
    /// Replaces every reservation.
    pub fn replace(&self, reserved: Reserved) {
        self.current.store(Arc::new(reserved));
    }

    /// Whether `hostname` is free for credential `id`: reserved for nobody, or for it.
    pub fn domain_usable_by(&self, hostname: &str, id: &str) -> bool {
        let reserved = self.current.load();
        usable_by(reserved.domains.get(&hostname.to_ascii_lowercase()), id)
    }

    /// Whether `port` is free for credential `id`: reserved for nobody, or for it.
    pub fn port_usable_by(&self, port: u16, id: &str) -> bool {
        usable_by(self.current.load().ports.get(&port), id)
    }
}

/// Whether a name reserved for `owner` (or for nobody) is free for credential `id`.
fn usable_by(owner: Option<&String>, id: &str) -> bool {
    owner.is_none_or(|owner| owner == id)
}
