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

    /// The credential `hostname` is reserved for, if any.
    pub fn domain_owner(&self, hostname: &str) -> Option<String> {
        self.current
            .load()
            .domains
            .get(&hostname.to_ascii_lowercase())
            .cloned()
    }

    /// The credential `port` is reserved for, if any.
    pub fn port_owner(&self, port: u16) -> Option<String> {
        self.current.load().ports.get(&port).cloned()
    }

    /// Whether `port` is free for credential `id`: reserved for nobody, or for it.
    pub fn port_usable_by(&self, port: u16, id: &str) -> bool {
        self.port_owner(port).is_none_or(|owner| owner == id)
    }
}
