//! The ACME client's loop: obtains missing certificates, renews each well before expiry,
//! retries failures with exponential backoff and jitter, and reports every outcome in the logs
//! and `/metrics`. Certificates go to the state dir and into the SNI resolver.

use super::challenges::Http01Challenges;
use super::config::AcmeConfig;
use super::on_demand::OnDemand;
use super::order::{self, OrderError};
use super::store::{AcmeStore, StoreError};
use crate::hostname::Hostname;
use crate::metrics::TlsMetrics;
use crate::tls::certificate::{self, LoadedCert, TlsCertError};
use crate::tls::resolver::CertResolver;
use instant_acme::{Account, AccountBuilder, NewAccount};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{info, info_span, warn, Instrument};

/// Why one attempt failed (the loop logs it, counts it and retries later).
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("ACME account: {0}")]
    Account(instant_acme::Error),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error("state dir: {0}")]
    Store(#[from] StoreError),
    #[error("the CA's certificate is unusable: {0}")]
    Cert(#[from] TlsCertError),
}

/// Why a name is being ordered, for logs and metric labels.
#[derive(Debug, Clone, Copy)]
enum Reason {
    Initial,
    OnDemand,
    Renewal,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Initial => "initial",
            Reason::OnDemand => "on_demand",
            Reason::Renewal => "renewal",
        }
    }
}

/// Per-name bookkeeping.
struct Managed {
    first: Reason,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The slot a name's ACME certificate occupies in the resolver.
pub fn slot(name: &str) -> String {
    format!("acme:{name}")
}

/// When `cert` should be renewed: `renew_before` ahead of expiry, or a third of its lifetime
/// ahead when that is shorter (short-lived certificates renew at two thirds of their life).
fn renew_at(cert: &LoadedCert, renew_before: Duration) -> SystemTime {
    let lifetime = cert
        .not_after
        .duration_since(cert.not_before)
        .unwrap_or_default();
    cert.not_after - renew_before.min(lifetime / 3)
}

/// `SystemTime` → tokio `Instant` (past times become now).
fn instant_of(t: SystemTime) -> Instant {
    let ahead = t.duration_since(SystemTime::now()).unwrap_or_default();
    Instant::now() + ahead
}

/// Delay before retry number `failures` (1-based): `retry_min` doubling up to `retry_max`,
/// with the upper half jittered so many edges do not retry in step.
fn backoff(config: &AcmeConfig, failures: u32) -> Duration {
    let exp = config
        .retry_min
        .saturating_mul(1u32 << failures.saturating_sub(1).min(20))
        .min(config.retry_max);
    let half = exp / 2;
    half + half.mul_f64(rand::thread_rng().gen::<f64>())
}

/// The running client.
pub struct AcmeManager {
    config: AcmeConfig,
    store: AcmeStore,
    resolver: Arc<CertResolver>,
    challenges: Arc<Http01Challenges>,
    metrics: TlsMetrics,
    account: Option<Account>,
    names: BTreeMap<String, Managed>,
}

/// Starts the client: loads stored certificates into `resolver`, installs the on-demand gate,
/// and spawns the loop until `shutdown`.
pub fn start(
    config: AcmeConfig,
    store: AcmeStore,
    resolver: Arc<CertResolver>,
    challenges: Arc<Http01Challenges>,
    metrics: TlsMetrics,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    // instant-acme's client builds its rustls config from the process default provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut names = BTreeMap::new();
    for name in &config.names {
        names.insert(name.to_string(), Reason::Initial);
    }
    let on_demand_allows = |name: &str| {
        let host = Hostname::parse(name);
        config.on_demand.as_ref().is_some_and(|od| {
            host.as_ref()
                .is_ok_and(|h| od.allow.iter().any(|p| p.covers(h)))
        })
    };
    // Stored certificates for names still configured or allowed are served and renewed;
    // the others are left alone on disk.
    for name in store.stored_names() {
        if !names.contains_key(&name) && !on_demand_allows(&name) {
            continue;
        }
        let files = store.cert_files(&name);
        match certificate::load(&files.cert, &files.key) {
            Ok(cert) => {
                info!(name, not_after = ?cert.not_after, "stored ACME certificate loaded");
                resolver.set(&slot(&name), Some(Arc::new(cert)));
                names.entry(name).or_insert(Reason::OnDemand);
            }
            Err(e) => warn!(
                name,
                "stored ACME certificate unusable, ordering a new one: {e}"
            ),
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    if let Some(od) = &config.on_demand {
        let gate = Arc::new(OnDemand::new(
            od.clone(),
            names.keys().cloned(),
            tx,
            metrics.clone(),
        ));
        resolver.set_miss_hook(Box::new(move |name| gate.request(name)));
    }
    let manager = AcmeManager {
        names: names
            .into_iter()
            .map(|(n, first)| {
                (
                    n,
                    Managed {
                        first,
                        failures: 0,
                        retry_at: None,
                    },
                )
            })
            .collect(),
        config,
        store,
        resolver,
        challenges,
        metrics,
        account: None,
    };
    tokio::spawn(manager.run(rx, shutdown).instrument(info_span!("acme")))
}

impl AcmeManager {
    async fn run(
        mut self,
        mut on_demand: mpsc::UnboundedReceiver<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let now = Instant::now();
            let wake = self
                .names
                .keys()
                .map(|n| self.due(n))
                .min()
                .unwrap_or(now + self.config.check_interval)
                .min(now + self.config.check_interval);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                Some(name) = on_demand.recv() => {
                    self.names.entry(name).or_insert(Managed {
                        first: Reason::OnDemand,
                        failures: 0,
                        retry_at: None,
                    });
                }
                _ = shutdown.changed() => return,
            }
            let due: Vec<String> = self
                .names
                .keys()
                .filter(|n| self.due(n) <= Instant::now())
                .cloned()
                .collect();
            for name in due {
                tokio::select! {
                    _ = self.attempt(&name) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }

    /// When `name` next needs work: now without a certificate, at its renewal time with one,
    /// never before its retry time after a failure.
    fn due(&self, name: &str) -> Instant {
        let renew = match self.resolver.get(&slot(name)) {
            Some(cert) => instant_of(renew_at(&cert, self.config.renew_before)),
            None => Instant::now(),
        };
        match self.names.get(name).and_then(|m| m.retry_at) {
            Some(retry) => renew.max(retry),
            None => renew,
        }
    }

    async fn attempt(&mut self, name: &str) {
        let reason = match (self.resolver.get(&slot(name)), self.names.get(name)) {
            (Some(_), _) => Reason::Renewal,
            (None, Some(m)) => m.first,
            (None, None) => Reason::Initial,
        };
        info!(name, reason = reason.label(), "ordering certificate");
        let result = self.issue(name).await;
        let Some(managed) = self.names.get_mut(name) else {
            return;
        };
        match result {
            Ok(cert) => {
                info!(name, reason = reason.label(), not_after = ?cert.not_after, "certificate obtained");
                self.resolver.set(&slot(name), Some(cert));
                self.metrics
                    .acme_issued
                    .with_label_values(&[reason.label()])
                    .inc();
                managed.failures = 0;
                managed.retry_at = None;
            }
            Err(e) => {
                managed.failures += 1;
                let wait = backoff(&self.config, managed.failures);
                managed.retry_at = Some(Instant::now() + wait);
                warn!(name, reason = reason.label(), failures = managed.failures, retry_in = ?wait, "ACME order failed: {e}");
                self.metrics
                    .acme_failures
                    .with_label_values(&[reason.label()])
                    .inc();
                if matches!(&e, AttemptError::Order(o) if o.account_missing()) {
                    warn!("the CA does not know the stored account; a new one will be created");
                    self.store.forget_account(&self.config.directory);
                    self.account = None;
                }
            }
        }
    }

    async fn issue(&mut self, name: &str) -> Result<Arc<LoadedCert>, AttemptError> {
        let challenges = self.challenges.clone();
        let account = self.account().await?;
        let issued = order::obtain(account, name, &challenges).await?;
        let files = self
            .store
            .save_cert(name, &issued.chain_pem, &issued.key_pem)?;
        Ok(Arc::new(certificate::load(&files.cert, &files.key)?))
    }

    /// The ACME account: cached, else from the state dir, else newly registered and saved.
    async fn account(&mut self) -> Result<&Account, AttemptError> {
        if self.account.is_none() {
            let directory = self.config.directory.clone();
            let account = match self.store.load_account(&directory)? {
                Some(creds) => self
                    .builder()?
                    .from_credentials(creds)
                    .await
                    .map_err(AttemptError::Account)?,
                None => {
                    let contact: Vec<&str> =
                        self.config.contact.iter().map(String::as_str).collect();
                    let (account, creds) = self
                        .builder()?
                        .create(
                            &NewAccount {
                                contact: &contact,
                                terms_of_service_agreed: true,
                                only_return_existing: false,
                            },
                            directory.clone(),
                            None,
                        )
                        .await
                        .map_err(AttemptError::Account)?;
                    self.store.save_account(&directory, &creds)?;
                    info!(directory, id = account.id(), "ACME account registered");
                    account
                }
            };
            self.account = Some(account);
        }
        self.account
            .as_ref()
            .ok_or_else(|| AttemptError::Account(instant_acme::Error::Str("no account")))
    }

    fn builder(&self) -> Result<AccountBuilder, AttemptError> {
        match &self.config.ca_root {
            Some(root) => Account::builder_with_root(root),
            None => Account::builder(),
        }
        .map_err(AttemptError::Account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let mut c = AcmeConfig::new("x");
        c.retry_min = Duration::from_secs(60);
        c.retry_max = Duration::from_secs(600);
        for (failures, max) in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 600), (40, 600)] {
            let d = backoff(&c, failures);
            assert!(d >= Duration::from_secs(max / 2), "{failures}: {d:?}");
            assert!(d <= Duration::from_secs(max), "{failures}: {d:?}");
        }
    }
}
