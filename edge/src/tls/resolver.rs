//! [`CertResolver`]: picks the certificate for each TLS handshake by SNI from every source
//! (files from flags and `edge.yaml`, ACME), swapping its table atomically when a source
//! changes so handshakes in progress and open connections are never disturbed.

use super::certificate::LoadedCert;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// Called with an SNI name no certificate covers (ACME on-demand issuance hooks in here).
pub type MissHook = Box<dyn Fn(&str) + Send + Sync>;

/// Lookup table built from all slots: exact names, then single-label wildcards, then the
/// fallback for clients without SNI or with a name nothing covers.
#[derive(Default)]
struct Table {
    exact: HashMap<String, Arc<LoadedCert>>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, Arc<LoadedCert>>,
    fallback: Option<Arc<LoadedCert>>,
}

impl Table {
    fn build(slots: &BTreeMap<String, Arc<LoadedCert>>, fallback_slot: Option<&str>) -> Self {
        let mut table = Table {
            fallback: fallback_slot.and_then(|s| slots.get(s).cloned()),
            ..Table::default()
        };
        for cert in slots.values() {
            for name in &cert.names {
                let (map, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut table.wildcard, parent),
                    None => (&mut table.exact, name.as_str()),
                };
                // Two sources for one name: serve the one that stays valid longest (a renewed
                // certificate wins over the one it replaces).
                let keep_old = map
                    .get(key)
                    .is_some_and(|old| old.not_after >= cert.not_after);
                if !keep_old {
                    map.insert(key.to_string(), cert.clone());
                }
            }
        }
        table
    }

    /// The certificate covering `name` (exact, else a wildcard one label up).
    fn covering(&self, name: &str) -> Option<&Arc<LoadedCert>> {
        self.exact.get(name).or_else(|| {
            let parent = name.split_once('.')?.1;
            self.wildcard.get(parent)
        })
    }
}

/// Certificates by SNI. Sources put their current certificate into a named slot with
/// [`CertResolver::set`]; lookups never block on them.
pub struct CertResolver {
    slots: Mutex<BTreeMap<String, Arc<LoadedCert>>>,
    table: ArcSwap<Table>,
    fallback_slot: Option<String>,
    on_miss: OnceLock<MissHook>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("slots", &self.slots.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CertResolver {
    /// An empty resolver; the certificate in `fallback_slot` (if any) answers handshakes
    /// without SNI or for names no certificate covers.
    pub fn new(fallback_slot: Option<String>) -> Self {
        Self {
            slots: Mutex::new(BTreeMap::new()),
            table: ArcSwap::from_pointee(Table::default()),
            fallback_slot,
            on_miss: OnceLock::new(),
        }
    }

    /// Puts `cert` into `slot` (or empties it) and publishes the new table.
    pub fn set(&self, slot: &str, cert: Option<Arc<LoadedCert>>) {
        let mut slots = self.slots.lock();
        match cert {
            Some(c) => slots.insert(slot.to_string(), c),
            None => slots.remove(slot),
        };
        self.table.store(Arc::new(Table::build(
            &slots,
            self.fallback_slot.as_deref(),
        )));
    }

    /// The certificate currently in `slot`.
    pub fn get(&self, slot: &str) -> Option<Arc<LoadedCert>> {
        self.slots.lock().get(slot).cloned()
    }

    /// The certificate a handshake for `name` would get, `None` for the fallback.
    pub fn covering(&self, name: &str) -> Option<Arc<LoadedCert>> {
        self.table
            .load()
            .covering(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Installs the hook for names no certificate covers (once).
    pub fn set_miss_hook(&self, hook: MissHook) {
        let _ = self.on_miss.set(hook);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        let Some(sni) = hello.server_name() else {
            return table.fallback.as_ref().map(|c| c.key.clone());
        };
        let name = sni.to_ascii_lowercase();
        if let Some(cert) = table.covering(&name) {
            return Some(cert.key.clone());
        }
        if let Some(hook) = self.on_miss.get() {
            hook(&name);
        }
        table.fallback.as_ref().map(|c| c.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn cert(names: &[&str], days: u64) -> Arc<LoadedCert> {
        let g = rcgen::generate_simple_self_signed(vec!["x.test".into()]).expect("gen");
        let key = rustls::crypto::ring::sign::any_supported_type(
            &rustls::pki_types::PrivateKeyDer::Pkcs8(g.key_pair.serialize_der().into()),
        )
        .expect("key");
        Arc::new(LoadedCert {
            names: names.iter().map(|s| s.to_string()).collect(),
            not_before: SystemTime::now(),
            not_after: SystemTime::now() + Duration::from_secs(days * 86400),
            fingerprint: format!("{names:?}{days}"),
            key: Arc::new(CertifiedKey::new(vec![g.cert.der().clone()], key)),
        })
    }

    #[test]
    fn exact_beats_wildcard_and_wildcards_cover_one_label() {
        let r = CertResolver::new(Some("default".into()));
        r.set("default", Some(cert(&["*.example.com"], 30)));
        r.set("named", Some(cert(&["api.example.com"], 30)));
        let fp = |n: &str| r.covering(n).map(|c| c.fingerprint.clone());
        assert_eq!(
            fp("api.example.com"),
            Some(r#"["api.example.com"]30"#.into())
        );
        assert_eq!(fp("Web.Example.com"), Some(r#"["*.example.com"]30"#.into()));
        assert_eq!(fp("a.b.example.com"), None);
        assert_eq!(fp("example.com"), None);
        r.set("named", None);
        assert_eq!(fp("api.example.com"), Some(r#"["*.example.com"]30"#.into()));
    }

    #[test]
    fn longest_valid_wins_for_the_same_name() {
        let r = CertResolver::new(None);
        r.set("file:0", Some(cert(&["a.test"], 10)));
        r.set("acme:a.test", Some(cert(&["a.test"], 80)));
        assert_eq!(
            r.covering("a.test").map(|c| c.fingerprint.clone()),
            Some(r#"["a.test"]80"#.into())
        );
    }
}
