//! Several edges as one service (docs/cluster.md): the `cluster:` section (`config.rs`), the
//! keys edges must share or keep apart (`members.rs`), this edge's endpoint claims in the
//! shared store (`claims.rs`, each described by a `spec.rs` entry), the other edges' endpoints
//! mirrored here (`mirror.rs`) behind the route registry (`registry.rs`), and the links between
//! edges (`peer_auth.rs`, `peers.rs`) over which requests are forwarded and relayed
//! (`relay.rs`). Each edge lists its agent sessions in the store (`sessions.rs`) and takes
//! messages for them from the others (`control.rs`: the operator's stop, replacement by a new
//! run). Rate-limit buckets (`rate_limits.rs`) and sign-in state (`sign_in.rs`) are shared
//! too, set up before the policy services by `shared.rs`, and so are the admin API's rows
//! (`admin_rows.rs`, each edge's SQLite file their copy). [`join`] connects and checks;
//! [`Joined::admin_rows`] syncs the admin rows; [`Joined::run`] starts the rest.

pub mod admin_rows;
pub mod claims;
pub mod config;
pub mod control;
pub mod members;
pub mod mirror;
pub mod peer_auth;
pub mod peers;
pub mod rate_limits;
pub mod registry;
pub mod relay;
pub mod sessions;
pub mod shared;
pub mod sign_in;
pub mod spec;
pub mod store;

use crate::certs::TunnelIdentity;
use crate::metrics::EdgeMetrics;
use crate::store::Store;
use crate::tunnel::routes::LocalRoutes;
use crate::tunnel::state::TunnelState;
use admin_rows::{AdminRows, AdminRowsError};
use claims::{Claims, RENEW_EVERY};
use config::ClusterConfig;
use members::{MemberError, Members};
use mirror::Mirror;
use peer_auth::{PeerAuthError, PeerSecret};
use peers::PeerLinks;
use redis::aio::ConnectionManager;
use relay::RelayState;
use sessions::SharedSessions;
use sluice_proto::transport::endpoint;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// Why this edge could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Another live edge conflicts.
    #[error("cluster: {0}")]
    Member(#[from] MemberError),
    /// The links between edges could not be set up.
    #[error("cluster links: {0}")]
    Peer(#[from] PeerAuthError),
    /// The address other edges reach this one at could not be bound.
    #[error("cluster: binding advertise_addr {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// An edge that joined its cluster, before its mirror and links run.
pub struct Joined {
    /// This edge's claims (admission writes them).
    pub claims: Arc<Claims>,
    /// Every edge's agent sessions (the admin API lists and stops them).
    pub sessions: Arc<SharedSessions>,
    edge_id: String,
    client: redis::Client,
    store: ConnectionManager,
    members: Members,
    secret: Arc<PeerSecret>,
    /// Dials the other edges, and (with `advertise_addr`) takes their links.
    peer_endpoint: quinn::Endpoint,
    /// Where the other edges reach this one, when they can.
    advertised: Option<SocketAddr>,
    /// `store_errors{op}`.
    errors: prometheus::IntCounterVec,
}

/// Connects to the store in `config` (which must answer now), binds the links' endpoint on
/// `advertise_addr` (port 0 takes a free port, which is what the store then holds), and checks
/// this edge's keys against the other live edges.
pub async fn join(
    config: &ClusterConfig,
    identity: &TunnelIdentity,
    reset_key: &[u8],
    session_key: &[u8],
    errors: prometheus::IntCounterVec,
) -> Result<Joined, JoinError> {
    let (client, store) = store::connect(&config.store).await?;
    let server = peer_auth::server_config(identity)?;
    let (bind, server) = match config.advertise_addr {
        Some(addr) => (addr, Some(server)),
        // Without an address other edges cannot reach this one: it only dials.
        None => (SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), None),
    };
    let listens = server.is_some();
    let peer_endpoint = endpoint(bind, quinn::EndpointConfig::default(), server)
        .map_err(|source| JoinError::Bind { addr: bind, source })?;
    let bound = peer_endpoint
        .local_addr()
        .map_err(|source| JoinError::Bind { addr: bind, source })?;
    let advertised = listens.then_some(bound);
    let members = Members::join(
        store.clone(),
        &config.edge_id,
        advertised,
        &config.peer_secret,
        reset_key,
        session_key,
    )
    .await?;
    let claims = Claims::new(store.clone(), &config.edge_id, errors.clone());
    let sessions = SharedSessions::new(store.clone(), &config.edge_id, errors.clone());
    info!(edge_id = %config.edge_id, ?advertised, "joined the cluster");
    Ok(Joined {
        claims,
        sessions,
        edge_id: config.edge_id.clone(),
        client,
        store,
        members,
        secret: Arc::new(PeerSecret::new(&config.peer_secret)),
        peer_endpoint,
        advertised,
        errors,
    })
}

impl Joined {
    /// Where the other edges reach this one (the bound port when `advertise_addr` said 0).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.advertised
    }

    /// The admin API's rows in the store, with `copy` (this edge's SQLite file) their durable
    /// copy, synced once before this returns (the store seeded, or a never-clustered file's
    /// rows imported, when due), so the control plane loads the cluster's rows from the copy.
    /// Its [`AdminRows::follow`] keeps the copy current afterwards.
    pub async fn admin_rows(&self, copy: Store) -> Result<Arc<AdminRows>, AdminRowsError> {
        let rows = AdminRows::new(
            self.client.clone(),
            self.store.clone(),
            copy,
            self.errors.clone(),
        );
        rows.join().await?;
        Ok(rows)
    }

    /// Mirrors the other edges' endpoints into `remote` (read once before this returns, so the
    /// edge routes them from its first request), and starts the tasks: renewals, the mirror's
    /// subscription, and (with an address) the links from other edges, relayed with
    /// `open_timeout` to this edge's agents.
    pub async fn run(
        self,
        tunnel: &Arc<TunnelState>,
        remote: Arc<LocalRoutes>,
        metrics: &EdgeMetrics,
        open_timeout: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, JoinError> {
        let peers = PeerLinks::new(
            &self.edge_id,
            self.peer_endpoint.clone(),
            self.secret.clone(),
            self.store.clone(),
            metrics.peer_streams_open.clone(),
        )?;
        let mirror = Mirror::new(
            &self.edge_id,
            self.store.clone(),
            remote,
            tunnel.clone(),
            peers,
            metrics.store_errors.clone(),
        );
        mirror.resync().await;
        let mut tasks = vec![
            tokio::spawn(renew_forever(self.claims.clone(), self.members)),
            tokio::spawn(mirror.follow(self.client.clone())),
            tokio::spawn(self.sessions.publish_forever(tunnel.directory.clone())),
            tokio::spawn(control::follow(
                self.client,
                self.edge_id.clone(),
                tunnel.clone(),
                metrics.store_errors.clone(),
            )),
        ];
        if self.advertised.is_some() {
            let relay = Arc::new(RelayState {
                edge_id: self.edge_id,
                routes: tunnel.routes.clone(),
                claims: self.claims,
                open_timeout,
                streams_open: metrics.peer_streams_open.clone(),
                relayed: metrics.relayed_requests.clone(),
            });
            tasks.push(tokio::spawn(peers::accept_loop(
                self.peer_endpoint,
                self.secret,
                relay,
                shutdown,
            )));
        }
        Ok(tasks)
    }
}

/// Renews the claims and the membership every [`RENEW_EVERY`] until aborted.
async fn renew_forever(claims: Arc<Claims>, members: Members) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        members.renew().await;
        claims.renew().await;
    }
}
