//! [`PeerLinks`]: the links this edge keeps to the other edges of its cluster, one per edge
//! that holds an endpoint requests here may need, each redialled while that edge is needed;
//! and [`accept_loop`], the listening side, which hands each authenticated link's streams to
//! the relay (`relay.rs`).

use super::members::address_of;
use super::peer_auth::{client_config, PeerAuthError, PeerSecret};
use super::relay::{self, RelayState};
use crate::tunnel::stream::{LinkSlot, StreamLink};
use parking_lot::Mutex;
use prometheus::IntGauge;
use redis::aio::ConnectionManager;
use sluice_proto::link::Link;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, info_span, warn, Instrument};

/// The first wait before redialling an edge; doubled per failure up to [`REDIAL_MAX`].
const REDIAL_FIRST: Duration = Duration::from_millis(200);
const REDIAL_MAX: Duration = Duration::from_secs(5);

/// How often a link's keeper checks that the link is still wanted.
const WANTED_CHECK: Duration = Duration::from_secs(1);

/// The server name diallers send (the proofs authenticate, not the name).
const PEER_SERVER_NAME: &str = "peer.sluice.invalid";

/// Why a link to another edge could not be had.
#[derive(Debug, thiserror::Error)]
enum DialError {
    #[error("the edge has no advertised address in the store")]
    NoAddress,
    #[error("connecting: {0}")]
    Connect(String),
    #[error(transparent)]
    Auth(#[from] PeerAuthError),
    #[error("the edge at that address is '{0}'")]
    OtherEdge(String),
}

/// This edge's side of its links to the other edges.
pub struct PeerLinks {
    edge_id: String,
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    secret: Arc<PeerSecret>,
    store: ConnectionManager,
    /// Streams open on links to other edges.
    streams_open: IntGauge,
    slots: Mutex<HashMap<String, Weak<LinkSlot>>>,
}

impl PeerLinks {
    /// Links dialled from `endpoint` as `edge_id`, addresses read from `store`.
    pub fn new(
        edge_id: &str,
        endpoint: quinn::Endpoint,
        secret: Arc<PeerSecret>,
        store: ConnectionManager,
        streams_open: IntGauge,
    ) -> Result<Arc<Self>, PeerAuthError> {
        Ok(Arc::new(Self {
            edge_id: edge_id.to_string(),
            endpoint,
            client: client_config()?,
            secret,
            store,
            streams_open,
            slots: Mutex::default(),
        }))
    }

    /// The slot of the link to `edge_id`: dialled in the background, and kept up for as long
    /// as a route holds the slot.
    pub fn slot(self: &Arc<Self>, edge_id: &str) -> Arc<LinkSlot> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(edge_id).and_then(Weak::upgrade) {
            return slot;
        }
        let slot = Arc::new(LinkSlot::default());
        slots.insert(edge_id.to_string(), Arc::downgrade(&slot));
        let span = info_span!("peer", edge = %edge_id);
        tokio::spawn(
            self.clone()
                .keep(edge_id.to_string(), Arc::downgrade(&slot))
                .instrument(span),
        );
        slot
    }

    /// Dials `edge_id` and keeps the link in `slot` while the slot is wanted, redialling with
    /// backoff when the link ends or cannot be had.
    async fn keep(self: Arc<Self>, edge_id: String, slot: Weak<LinkSlot>) {
        let mut wait = REDIAL_FIRST;
        while slot.strong_count() > 0 {
            match self.dial(&edge_id).await {
                Ok(conn) => {
                    info!("linked to the edge");
                    wait = REDIAL_FIRST;
                    let link = Arc::new(StreamLink::new(conn.clone(), self.streams_open.clone()));
                    if let Some(slot) = slot.upgrade() {
                        slot.set(Some(link));
                    }
                    let why = self.hold(&conn, &slot).await;
                    if let Some(slot) = slot.upgrade() {
                        slot.set(None);
                    }
                    info!("link to the edge ended: {why}");
                }
                Err(e) => {
                    warn!("no link to the edge: {e}");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(REDIAL_MAX);
                }
            }
        }
        self.slots.lock().retain(|_, s| s.strong_count() > 0);
    }

    /// Waits until `conn` ends, or closes it once no route wants `slot` any more.
    async fn hold(&self, conn: &Link, slot: &Weak<LinkSlot>) -> String {
        let mut check = tokio::time::interval(WANTED_CHECK);
        loop {
            tokio::select! {
                closed = conn.closed() => return closed.to_string(),
                _ = check.tick() => if slot.strong_count() == 0 {
                    conn.close(0, b"no longer needed");
                    return "no longer needed".to_string();
                },
            }
        }
    }

    /// One authenticated link to `edge_id`, at the address it advertises.
    async fn dial(&self, edge_id: &str) -> Result<Link, DialError> {
        let addr = address_of(&self.store, edge_id)
            .await
            .ok_or(DialError::NoAddress)?;
        let conn = self
            .endpoint
            .connect_with(self.client.clone(), addr, PEER_SERVER_NAME)
            .map_err(|e| DialError::Connect(e.to_string()))?
            .await
            .map_err(|e| DialError::Connect(e.to_string()))?;
        let theirs = self.secret.dial(&conn, &self.edge_id).await?;
        if theirs != edge_id {
            conn.close(0u32.into(), b"not the edge dialled");
            return Err(DialError::OtherEdge(theirs));
        }
        Ok(Link::Quic(conn))
    }
}

/// Accepts links from the other edges on `endpoint` until `shutdown` turns true: each is
/// authenticated, then every stream it opens is relayed to this edge's members.
pub async fn accept_loop(
    endpoint: quinn::Endpoint,
    secret: Arc<PeerSecret>,
    state: Arc<RelayState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    let span = info_span!("peer_link", from = %incoming.remote_address());
                    tokio::spawn(serve(incoming, secret.clone(), state.clone()).instrument(span));
                }
                None => break,
            },
            _ = shutdown.changed() => if *shutdown.borrow() {
                break;
            },
        }
    }
}

/// One link from another edge: the proofs, then its streams.
async fn serve(incoming: quinn::Incoming, secret: Arc<PeerSecret>, state: Arc<RelayState>) {
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => return warn!("a link from another edge failed: {e}"),
    };
    let from = match secret.accept(&conn, &state.edge_id).await {
        Ok(from) => from,
        Err(e) => {
            warn!("refused a link from another edge: {e}");
            conn.close(1u32.into(), b"peer proof refused");
            return;
        }
    };
    info!(%from, "an edge linked to this one");
    let link = Link::Quic(conn);
    while let Ok((send, recv)) = link.accept_bi().await {
        let span = info_span!("relayed_stream", %from);
        tokio::spawn(relay::serve_stream(state.clone(), send, recv).instrument(span));
    }
}
