//! Certificates from PEM files (`--tls-cert/--tls-key`, `edge.yaml` `tls_certificates`):
//! loaded at start, then re-read whenever their contents change, so an outside ACME client
//! (certbot, Traefik's store) can own renewal without restarting the edge.

use super::certificate::{self, TlsCertError};
use super::config::CertFiles;
use super::resolver::CertResolver;
use crate::metrics::TlsMetrics;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// One file pair and the slot its certificate occupies.
struct Watched {
    slot: String,
    files: CertFiles,
    /// SHA-256 of both files' bytes at the last successful load.
    seen: [u8; 32],
}

/// Hash of the pair's current bytes; `None` while a file cannot be read.
fn contents_hash(files: &CertFiles) -> Option<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(std::fs::read(&files.cert).ok()?);
    h.update(std::fs::read(&files.key).ok()?);
    Some(h.finalize().into())
}

/// The slot name of the `index`-th file pair (the flag pair is `file:default`).
pub fn slot_name(index: Option<usize>) -> String {
    match index {
        None => "file:default".to_string(),
        Some(i) => format!("file:{i}"),
    }
}

/// Loads every pair into `resolver`; any unusable pair stops the start with its error.
pub fn load_all(
    resolver: &CertResolver,
    pairs: &[(String, CertFiles)],
) -> Result<(), TlsCertError> {
    for (slot, files) in pairs {
        let cert = certificate::load(&files.cert, &files.key)?;
        info!(slot, names = ?cert.names, cert = %files.cert.display(), "certificate loaded");
        resolver.set(slot, Some(Arc::new(cert)));
    }
    Ok(())
}

/// Re-reads the pairs every `interval` and swaps in any that changed and load cleanly. A pair
/// caught half-written (new certificate, old key) fails the key check and is retried on the
/// next tick while the old certificate keeps serving.
pub async fn reload_loop(
    resolver: Arc<CertResolver>,
    pairs: Vec<(String, CertFiles)>,
    interval: Duration,
    metrics: TlsMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut watched: Vec<Watched> = pairs
        .into_iter()
        .map(|(slot, files)| Watched {
            seen: contents_hash(&files).unwrap_or_default(),
            slot,
            files,
        })
        .collect();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        for w in &mut watched {
            reload_one(&resolver, w, &metrics);
        }
    }
}

fn reload_one(resolver: &CertResolver, w: &mut Watched, metrics: &TlsMetrics) {
    let Some(now) = contents_hash(&w.files) else {
        return;
    };
    if now == w.seen {
        return;
    }
    match certificate::load(&w.files.cert, &w.files.key) {
        Ok(cert) => {
            info!(slot = %w.slot, names = ?cert.names, fingerprint = %cert.fingerprint, "certificate reloaded");
            resolver.set(&w.slot, Some(Arc::new(cert)));
            metrics.cert_reloads.inc();
            w.seen = now;
        }
        Err(e) => {
            warn!(slot = %w.slot, "certificate changed but cannot be loaded yet, keeping the old one: {e}");
            metrics.cert_reload_failures.inc();
        }
    }
}
