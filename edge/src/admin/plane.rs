//! [`ControlPlane`]: the [`Admin`] operations over the edge's store and its running agent
//! side. Each change is written to the store first (one transaction), then published to the
//! snapshots admission reads (credentials, reservations) or to the route registry (cloud
//! endpoints), then recorded as an audit event. Changes run one at a time.
//!
//! In a cluster the rows live in the store (`cluster/admin_rows.rs`): a change is made there,
//! and the edge's file is the copy every read serves; the other edges' changes arrive through
//! [`RowsChanged`].

use super::api::{Actor, Admin, AdminError};
use super::model::{
    Credential, CredentialCreate, CredentialUpdate, Endpoint, EndpointCreate, ReservedAddr,
    ReservedAddrCreate, ReservedDomain, ReservedDomainCreate, TunnelSession,
};
use super::view;
use crate::cloud::{self, CloudEndpointError};
use crate::cluster::admin_rows::{AdminRows, AdminRowsError, Change, RowsChanged};
use crate::cluster::sessions::{SessionsError, SharedSession, SharedSessions};
use crate::config::CloudEndpointSpec;
use crate::events::EventExport;
use crate::hostname::Hostname;
use crate::ids::new_id;
use crate::store::rows::{
    self, AllRows, CloudEndpointRow, CredentialRow, ReservationRow, Reserved,
};
use crate::store::{Store, StoreError};
use crate::tunnel::acl::Acl;
use crate::tunnel::admit::requested_port;
use crate::tunnel::authtoken::{digest, TokenId};
use crate::tunnel::credentials::{self, CredentialSource};
use crate::tunnel::reservations;
use crate::tunnel::state::TunnelState;
use async_trait::async_trait;
use rusqlite::Connection;
use serde::Serialize;
use sluice_proto::close_code;
use sluice_proto::control::{PolicyKind, PolicySource};
use sluice_proto::scheme::Scheme;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// Why the control plane could not load the store's state at start.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row no longer compiles (edited by hand, or the edge's config changed).
    #[error("{store}: {what}: {message}; fix or delete the row (sqlite3 {store})")]
    Row {
        /// The database file.
        store: String,
        /// Which row.
        what: String,
        /// What is wrong.
        message: String,
    },
}

/// The control plane: the store, the agent side it changes, and where audit events go.
pub struct ControlPlane {
    /// The rows; in a cluster, this edge's copy of the store's.
    store: Store,
    /// In a cluster, where changes are made.
    cluster_rows: Option<Arc<AdminRows>>,
    tunnel: Arc<TunnelState>,
    /// `edge.yaml`'s tokens (and the dev token), read-only here.
    configured: Vec<credentials::Credential>,
    /// `edge.yaml`'s cloud endpoints by member id, for the endpoint list.
    configured_cloud: HashMap<String, CloudEndpointSpec>,
    events: Arc<EventExport>,
    /// When this edge started: the `created_at` of configured credentials.
    started: SystemTime,
    /// One change at a time, so a published snapshot always matches the store.
    changes: tokio::sync::Mutex<()>,
    /// In a cluster, every edge's agent sessions.
    cluster_sessions: Option<Arc<SharedSessions>>,
}

impl ControlPlane {
    /// Loads the store's credentials and reservations into the agent side and brings its cloud
    /// endpoints online. Called at start, before the edge serves; in a cluster, after
    /// `cluster_rows` synced the file with the store.
    pub fn load(
        store: Store,
        cluster_rows: Option<Arc<AdminRows>>,
        tunnel: Arc<TunnelState>,
        configured: &[String],
        configured_cloud: &[CloudEndpointSpec],
        events: Arc<EventExport>,
        cluster_sessions: Option<Arc<SharedSessions>>,
    ) -> Result<Self, PlaneError> {
        let plane = Self {
            store,
            cluster_rows,
            tunnel,
            configured: configured
                .iter()
                .map(|t| credentials::Credential::configured(t))
                .collect(),
            configured_cloud: configured_cloud
                .iter()
                .map(|s| (cloud::config_member_id(&s.url), s.clone()))
                .collect(),
            events,
            started: SystemTime::now(),
            changes: tokio::sync::Mutex::new(()),
            cluster_sessions,
        };
        let (creds, reserved, clouds) = plane.store.run_now(|c| {
            Ok((
                rows::credentials(c)?,
                rows::reservations(c)?,
                rows::cloud_endpoints(c)?,
            ))
        })?;
        let row_error = |what: String, message: String| PlaneError::Row {
            store: plane.store.path().display().to_string(),
            what,
            message,
        };
        for c in &creds {
            Acl::parse(&c.acl)
                .map_err(|e| row_error(format!("credential {}", c.id), e.to_string()))?;
        }
        plane.publish(&creds, &reserved);
        for row in &clouds {
            plane
                .bring_online(row)
                .map_err(|e| row_error(format!("cloud endpoint {}", row.id), e.to_string()))?;
        }
        Ok(plane)
    }

    /// Publishes the credentials and reservations admission reads.
    fn publish(&self, creds: &[CredentialRow], reserved: &[ReservationRow]) {
        let stored = creds.iter().map(|c| credentials::Credential {
            id: c.id.clone(),
            token: TokenId::from_digest(c.token_digest),
            source: CredentialSource::Api,
            // Checked when written (and at load): a row that does not compile allows nothing.
            acl: Acl::parse(&c.acl).unwrap_or_else(|_| Acl::nothing()),
            max_sessions: c.max_sessions.map(|n| n as usize),
            max_endpoints: c.max_endpoints.map(|n| n as usize),
        });
        self.tunnel
            .credentials
            .replace(self.configured.iter().cloned().chain(stored).collect());
        let mut snapshot = reservations::Reserved::default();
        for r in reserved {
            match &r.reserved {
                Reserved::Domain(d) => snapshot.domains.insert(d.clone(), r.credential_id.clone()),
                Reserved::Port(p) => snapshot.ports.insert(*p, r.credential_id.clone()),
            };
        }
        self.tunnel.reservations.replace(snapshot);
    }

    /// Makes a change and publishes what admission reads (credentials, reservations): on an
    /// edge on its own in its file (`local`, then the file read back in the same call); in a
    /// cluster in the store (`change`), whose sync of this edge's copy published it already
    /// ([`RowsChanged`]).
    async fn write(
        &self,
        change: Change<'_>,
        local: impl FnOnce(&mut Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), Failed> {
        if let Some(cluster) = &self.cluster_rows {
            return cluster.change(change, self).await.map_err(Failed::Cluster);
        }
        let (creds, reserved) = self
            .store
            .run(move |c| {
                local(c)?;
                Ok((rows::credentials(c)?, rows::reservations(c)?))
            })
            .await
            .map_err(Failed::Local)?;
        self.publish(&creds, &reserved);
        Ok(())
    }

    /// Closes the agent sessions of an authtoken whose credential was deleted.
    fn close_sessions_of(&self, token: TokenId) {
        for entry in self.tunnel.directory.of(token) {
            entry.handle.link.conn.close(
                close_code::CREDENTIAL_DELETED,
                b"the edge operator deleted this authtoken",
            );
        }
    }

    /// Brings a stored cloud endpoint online.
    fn bring_online(&self, row: &CloudEndpointRow) -> Result<(), AdminError> {
        let owner = self.cloud_owner(row.credential_id.as_deref())?;
        let spec = CloudEndpointSpec {
            origin: format!("cloud endpoint {}", row.id),
            url: row.url.clone(),
            policy: PolicySource {
                origin: format!("endpoints/{}", row.id),
                kind: PolicyKind::Document,
                text: row.traffic_policy.clone(),
            },
            pooling_enabled: row.pooling_enabled,
            authtoken: None,
        };
        cloud::bring_one_online(&spec, owner, row.id.clone(), &self.tunnel)
            .map(drop)
            .map_err(cloud_error)
    }

    /// Whose namespace a cloud endpoint forwards into: the named credential, else `edge.yaml`'s
    /// only token.
    fn cloud_owner(&self, credential_id: Option<&str>) -> Result<TokenId, AdminError> {
        match credential_id {
            Some(id) => Ok(self.credential_by_id(id)?.token),
            None => self.tunnel.credentials.only_configured().ok_or_else(|| {
                AdminError::Invalid(
                    "credential_id: required, as the edge has no single edge.yaml authtoken \
                     whose internal endpoints the endpoint would forward to"
                        .into(),
                )
            }),
        }
    }

    fn credential_by_id(&self, id: &str) -> Result<Arc<credentials::Credential>, AdminError> {
        self.tunnel
            .credentials
            .by_id(id)
            .ok_or_else(|| not_found("credential", id))
    }

    /// Records an audit event: `kind_action.v0` (`credential_created.v0`), the actor as its
    /// principal.
    fn audit(&self, actor: &Actor, event_type: &str, object: &impl Serialize) {
        let object = serde_json::to_value(object).unwrap_or_default();
        info!(actor = %actor.token_id, remote = %actor.remote, event_type, "admin change");
        self.events.emit_audit(
            event_type,
            serde_json::json!({ "id": actor.token_id, "ip": actor.remote.to_string() }),
            object,
        );
    }

    /// The API credential `id`; a configured one is read-only, any other not found.
    async fn stored_credential(&self, id: &str) -> Result<CredentialRow, AdminError> {
        let row = self
            .credential_rows()
            .await?
            .into_iter()
            .find(|c| c.id == id);
        row.ok_or_else(|| match self.tunnel.credentials.by_id(id) {
            Some(_) => AdminError::ReadOnly {
                kind: "credential",
                id: id.to_string(),
            },
            None => not_found("credential", id),
        })
    }

    async fn credential_rows(&self) -> Result<Vec<CredentialRow>, AdminError> {
        self.store
            .run(|c| rows::credentials(c))
            .await
            .map_err(store_error)
    }

    async fn reservation_rows(&self) -> Result<Vec<ReservationRow>, AdminError> {
        self.store
            .run(|c| rows::reservations(c))
            .await
            .map_err(store_error)
    }

    async fn reservation(
        &self,
        id: &str,
        kind: &'static str,
    ) -> Result<ReservationRow, AdminError> {
        self.reservation_rows()
            .await?
            .into_iter()
            .find(|r| r.id == id && view::reservation_kind(r) == kind)
            .ok_or_else(|| not_found(kind, id))
    }

    /// Reserves `reserved` for `credential_id` after checking nobody else holds it now.
    async fn reserve(
        &self,
        reserved: Reserved,
        credential_id: &str,
        description: Option<String>,
        metadata: Option<String>,
    ) -> Result<ReservationRow, AdminError> {
        let owner = self.credential_by_id(credential_id)?;
        let holders: Vec<TokenId> = match &reserved {
            Reserved::Domain(d) => [Scheme::Http, Scheme::Https, Scheme::Tls]
                .into_iter()
                .filter_map(|s| self.tunnel.routes.lookup(s, d))
                .flat_map(|set| set.members().iter().map(|m| m.owner()).collect::<Vec<_>>())
                .collect(),
            Reserved::Port(p) => self
                .tunnel
                .routes
                .lookup_port(*p)
                .map(|set| set.members().iter().map(|m| m.owner()).collect())
                .unwrap_or_default(),
        };
        let row = ReservationRow {
            id: new_id(match reserved {
                Reserved::Domain(_) => "rd",
                Reserved::Port(_) => "ra",
            }),
            reserved,
            credential_id: owner.id.clone(),
            created_at: now(),
            description: description.unwrap_or_default(),
            metadata: metadata.unwrap_or_default(),
        };
        let shown = view::reserved_name(&row, &self.tunnel.urls.domain);
        if holders.iter().any(|h| *h != owner.token) {
            return Err(AdminError::Conflict(format!(
                "'{shown}' is online for another credential; it can be reserved once that \
                 endpoint is offline"
            )));
        }
        let insert = row.clone();
        let _change = self.changes.lock().await;
        let taken = format!("'{shown}' is already reserved");
        self.write(Change::Reserve(&row), move |c| {
            rows::insert_reservation(c, &insert)
        })
        .await
        .map_err(|e| match e {
            Failed::Local(e) => unique_conflict(e, &taken),
            Failed::Cluster(AdminRowsError::Reserved { .. }) => AdminError::Conflict(taken),
            Failed::Cluster(e) => cluster_error(e),
        })?;
        Ok(row)
    }

    /// Deletes reservation `id` of `kind`.
    async fn unreserve(
        &self,
        actor: &Actor,
        id: &str,
        kind: &'static str,
    ) -> Result<(), AdminError> {
        let _change = self.changes.lock().await;
        let row = self.reservation(id, kind).await?;
        let owned = id.to_string();
        self.write(Change::Unreserve(id), move |c| {
            rows::delete_reservation(c, &owned).map(drop)
        })
        .await
        .map_err(|e| e.into_admin(kind, id))?;
        let event = format!("{}_deleted.v0", kind.replace(' ', "_"));
        match row.reserved {
            Reserved::Domain(_) => self.audit(actor, &event, &view::reserved_domain(&row)),
            Reserved::Port(_) => self.audit(actor, &event, &self.addr_view(&row)),
        }
        Ok(())
    }

    fn addr_view(&self, row: &ReservationRow) -> ReservedAddr {
        view::reserved_addr(row, &self.tunnel.urls.domain)
    }

    /// A free port of the range for a new reservation: reserved by nobody, held by nobody.
    fn free_port(&self, reserved: &[ReservationRow]) -> Result<u16, AdminError> {
        let ports = self.tcp_ports()?;
        let taken: std::collections::HashSet<u16> = reserved
            .iter()
            .filter_map(|r| match r.reserved {
                Reserved::Port(p) => Some(p),
                Reserved::Domain(_) => None,
            })
            .collect();
        ports
            .ports()
            .find(|p| !taken.contains(p) && self.tunnel.routes.lookup_port(*p).is_none())
            .ok_or_else(|| {
                AdminError::Conflict("every port of tcp_ports is reserved or in use".into())
            })
    }

    fn tcp_ports(&self) -> Result<crate::tunnel::ports::PortRange, AdminError> {
        self.tunnel
            .tcp_ports
            .as_ref()
            .map(|p| p.range)
            .ok_or_else(|| {
                AdminError::Invalid(
                    "this edge has no tcp_ports, so it has no TCP addresses to reserve".into(),
                )
            })
    }

    /// The port a reservation's `addr` names (`PORT` or `DOMAIN:PORT`), within `tcp_ports`,
    /// read as an agent's `tcp://` URL is.
    fn requested_port(&self, addr: &str) -> Result<u16, AdminError> {
        let range = self.tcp_ports()?;
        let domain = &self.tunnel.urls.domain;
        let addr = match addr.contains(':') {
            true => addr.to_string(),
            false => format!("{domain}:{addr}"),
        };
        let port = requested_port(&addr, domain)
            .map_err(|r| AdminError::Invalid(format!("addr: {}", r.message)))?
            .ok_or_else(|| {
                AdminError::Invalid(format!("addr: '{addr}': expected PORT or {domain}:PORT"))
            })?;
        if !range.contains(port) {
            return Err(AdminError::Invalid(format!(
                "addr: port {port} is outside this edge's tcp_ports ({range})"
            )));
        }
        Ok(port)
    }

    async fn cloud_rows(&self) -> Result<Vec<CloudEndpointRow>, AdminError> {
        self.store
            .run(|c| rows::cloud_endpoints(c))
            .await
            .map_err(store_error)
    }

    /// Checks `bind:` rules about to be stored.
    fn check_acl(acl: Option<&[String]>) -> Result<(), AdminError> {
        match acl {
            Some(acl) => Acl::parse(acl)
                .map(drop)
                .map_err(|e| AdminError::Invalid(e.to_string())),
            None => Ok(()),
        }
    }

    /// Checks the free-text fields every object has.
    fn check_notes(
        description: Option<&String>,
        metadata: Option<&String>,
    ) -> Result<(), AdminError> {
        for (name, value) in [("description", description), ("metadata", metadata)] {
            if value.is_some_and(|v| v.len() > MAX_TEXT) {
                return Err(AdminError::Invalid(format!(
                    "{name}: longer than {MAX_TEXT} bytes"
                )));
            }
        }
        Ok(())
    }

    /// This edge's sessions, as the cluster lists them.
    fn local_sessions(&self) -> Vec<SharedSession> {
        let edge_id = self.cluster_sessions.as_ref().map_or("", |c| c.edge_id());
        self.tunnel
            .directory
            .all()
            .iter()
            .map(|e| SharedSession::of(e, edge_id))
            .collect()
    }

    /// Session `id`: this edge's, else (in a cluster) another edge's.
    async fn find_session(&self, id: &str) -> Result<SharedSession, AdminError> {
        if let Some(local) = self.local_sessions().into_iter().find(|s| s.id == id) {
            return Ok(local);
        }
        let found = match &self.cluster_sessions {
            Some(cluster) => cluster.get(id).await.map_err(sessions_error)?,
            None => None,
        };
        found.ok_or_else(|| not_found("tunnel session", id))
    }

    fn session_view(&self, session: &SharedSession) -> TunnelSession {
        view::session(
            session,
            &self.tunnel.credentials,
            self.cluster_sessions.is_some(),
        )
    }

    /// Releases the cloud endpoint member `id`.
    fn take_offline(&self, id: &str) {
        for route in self.tunnel.routes.members() {
            if route.member_id() == id {
                self.tunnel.routes.release(&route.key, id);
            }
        }
    }
}

/// The longest `description` or `metadata` accepted (ngrok: 255 and 4096 bytes).
const MAX_TEXT: usize = 4096;

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn not_found(kind: &'static str, id: &str) -> AdminError {
    AdminError::NotFound {
        kind,
        id: id.to_string(),
    }
}

fn store_error(e: StoreError) -> AdminError {
    AdminError::Store(e.to_string())
}

fn sessions_error(e: SessionsError) -> AdminError {
    AdminError::Store(e.to_string())
}

/// A unique-constraint failure as a conflict; anything else as a store failure.
fn unique_conflict(e: StoreError, message: &str) -> AdminError {
    match &e {
        StoreError::Query(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            AdminError::Conflict(message.to_string())
        }
        _ => store_error(e),
    }
}

/// A change that failed, in this edge's file or in the cluster store.
enum Failed {
    Local(StoreError),
    Cluster(AdminRowsError),
}

impl Failed {
    /// As the API answers it, for a change to `kind` `id`.
    fn into_admin(self, kind: &'static str, id: &str) -> AdminError {
        match self {
            Failed::Local(e) => store_error(e),
            // Another edge deleted it between this edge's read and the change.
            Failed::Cluster(AdminRowsError::NotFound) => not_found(kind, id),
            Failed::Cluster(e) => cluster_error(e),
        }
    }
}

/// A cluster store's refusal as the API answers it.
fn cluster_error(e: AdminRowsError) -> AdminError {
    match e {
        AdminRowsError::InUse(ids) => AdminError::Conflict(format!(
            "cloud endpoints {} forward into this credential's namespace; delete them first",
            ids.join(", ")
        )),
        AdminRowsError::Reserved { holder } => {
            AdminError::Conflict(format!("already reserved ({holder})"))
        }
        other => AdminError::Store(other.to_string()),
    }
}

fn cloud_error(e: CloudEndpointError) -> AdminError {
    match e {
        CloudEndpointError::Claim { source, .. } => AdminError::Conflict(source.to_string()),
        other => AdminError::Invalid(other.to_string()),
    }
}

/// A new authtoken: 32 random bytes, hex, with a prefix that says what it is.
fn new_token() -> String {
    format!("sluice_{}", hex::encode(rand::random::<[u8; 32]>()))
}

#[async_trait]
impl Admin for ControlPlane {
    async fn credentials(&self) -> Result<Vec<Credential>, AdminError> {
        let rows = self.credential_rows().await?;
        Ok(self
            .configured
            .iter()
            .map(|c| view::configured_credential(c, self.started))
            .chain(rows.iter().map(view::credential))
            .collect())
    }

    async fn credential(&self, id: &str) -> Result<Credential, AdminError> {
        self.credentials()
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found("credential", id))
    }

    async fn create_credential(
        &self,
        actor: &Actor,
        new: CredentialCreate,
    ) -> Result<Credential, AdminError> {
        Self::check_acl(new.acl.as_deref())?;
        Self::check_notes(new.description.as_ref(), new.metadata.as_ref())?;
        let token = new_token();
        let row = CredentialRow {
            id: new_id("cr"),
            token_digest: digest(&token),
            created_at: now(),
            description: new.description.unwrap_or_default(),
            metadata: new.metadata.unwrap_or_default(),
            acl: new.acl.unwrap_or_default(),
            max_sessions: new.max_sessions,
            max_endpoints: new.max_endpoints,
        };
        let insert = row.clone();
        let _change = self.changes.lock().await;
        self.write(Change::CreateCredential(&row), move |c| {
            rows::put_credential(c, &insert)
        })
        .await
        .map_err(|e| e.into_admin("credential", &row.id))?;
        let shown = view::credential(&row);
        self.audit(actor, "credential_created.v0", &shown);
        Ok(Credential {
            token: Some(token),
            ..shown
        })
    }

    async fn update_credential(
        &self,
        actor: &Actor,
        id: &str,
        change: CredentialUpdate,
    ) -> Result<Credential, AdminError> {
        Self::check_acl(change.acl.as_deref())?;
        Self::check_notes(change.description.as_ref(), change.metadata.as_ref())?;
        let _change = self.changes.lock().await;
        let mut row = self.stored_credential(id).await?;
        if let Some(d) = change.description {
            row.description = d;
        }
        if let Some(m) = change.metadata {
            row.metadata = m;
        }
        if let Some(acl) = change.acl {
            row.acl = acl;
        }
        if let Some(n) = change.max_sessions {
            row.max_sessions = n;
        }
        if let Some(n) = change.max_endpoints {
            row.max_endpoints = n;
        }
        let put = row.clone();
        self.write(Change::UpdateCredential(&row), move |c| {
            rows::put_credential(c, &put)
        })
        .await
        .map_err(|e| e.into_admin("credential", id))?;
        let shown = view::credential(&row);
        self.audit(actor, "credential_updated.v0", &shown);
        Ok(shown)
    }

    async fn delete_credential(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        let _change = self.changes.lock().await;
        let row = self.stored_credential(id).await?;
        let users: Vec<String> = self
            .cloud_rows()
            .await?
            .into_iter()
            .filter(|e| e.credential_id.as_deref() == Some(id))
            .map(|e| e.id)
            .collect();
        if !users.is_empty() {
            return Err(AdminError::Conflict(format!(
                "cloud endpoints {} forward into this credential's namespace; delete them first",
                users.join(", ")
            )));
        }
        let owned = id.to_string();
        self.write(Change::DeleteCredential(id), move |c| {
            rows::delete_credential(c, &owned).map(drop)
        })
        .await
        .map_err(|e| e.into_admin("credential", id))?;
        self.close_sessions_of(TokenId::from_digest(row.token_digest));
        self.audit(actor, "credential_deleted.v0", &view::credential(&row));
        Ok(())
    }

    async fn reserved_domains(&self) -> Result<Vec<ReservedDomain>, AdminError> {
        Ok(self
            .reservation_rows()
            .await?
            .iter()
            .filter(|r| matches!(r.reserved, Reserved::Domain(_)))
            .map(view::reserved_domain)
            .collect())
    }

    async fn reserved_domain(&self, id: &str) -> Result<ReservedDomain, AdminError> {
        Ok(view::reserved_domain(
            &self.reservation(id, view::DOMAIN).await?,
        ))
    }

    async fn create_reserved_domain(
        &self,
        actor: &Actor,
        new: ReservedDomainCreate,
    ) -> Result<ReservedDomain, AdminError> {
        Self::check_notes(new.description.as_ref(), new.metadata.as_ref())?;
        let host = Hostname::from_requested_url(&new.domain, &self.tunnel.urls.domain)
            .map_err(|e| AdminError::Invalid(format!("domain: {e}")))?;
        let row = self
            .reserve(
                Reserved::Domain(host.as_str().to_ascii_lowercase()),
                &new.credential_id,
                new.description,
                new.metadata,
            )
            .await?;
        let shown = view::reserved_domain(&row);
        self.audit(actor, "reserved_domain_created.v0", &shown);
        Ok(shown)
    }

    async fn delete_reserved_domain(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        self.unreserve(actor, id, view::DOMAIN).await
    }

    async fn reserved_addrs(&self) -> Result<Vec<ReservedAddr>, AdminError> {
        Ok(self
            .reservation_rows()
            .await?
            .iter()
            .filter(|r| matches!(r.reserved, Reserved::Port(_)))
            .map(|r| self.addr_view(r))
            .collect())
    }

    async fn reserved_addr(&self, id: &str) -> Result<ReservedAddr, AdminError> {
        Ok(self.addr_view(&self.reservation(id, view::ADDR).await?))
    }

    async fn create_reserved_addr(
        &self,
        actor: &Actor,
        new: ReservedAddrCreate,
    ) -> Result<ReservedAddr, AdminError> {
        Self::check_notes(new.description.as_ref(), new.metadata.as_ref())?;
        let port = match &new.addr {
            Some(addr) => self.requested_port(addr)?,
            None => self.free_port(&self.reservation_rows().await?)?,
        };
        let row = self
            .reserve(
                Reserved::Port(port),
                &new.credential_id,
                new.description,
                new.metadata,
            )
            .await?;
        let shown = self.addr_view(&row);
        self.audit(actor, "reserved_addr_created.v0", &shown);
        Ok(shown)
    }

    async fn delete_reserved_addr(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        self.unreserve(actor, id, view::ADDR).await
    }

    async fn tunnel_sessions(&self) -> Result<Vec<TunnelSession>, AdminError> {
        let mut all: Vec<SharedSession> = self.local_sessions();
        if let Some(cluster) = &self.cluster_sessions {
            let others = cluster.all().await.map_err(sessions_error)?;
            all.extend(
                others
                    .into_iter()
                    .filter(|s| s.edge_id != cluster.edge_id()),
            );
            all.sort_by(|a, b| (a.started_ms, &a.id).cmp(&(b.started_ms, &b.id)));
        }
        Ok(all.iter().map(|s| self.session_view(s)).collect())
    }

    async fn tunnel_session(&self, id: &str) -> Result<TunnelSession, AdminError> {
        self.find_session(id).await.map(|s| self.session_view(&s))
    }

    async fn stop_tunnel_session(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        let session = self.find_session(id).await?;
        let shown = self.session_view(&session);
        match (self.tunnel.directory.get(id), &self.cluster_sessions) {
            (Some(entry), _) => {
                entry
                    .handle
                    .link
                    .conn
                    .close(close_code::STOPPED, b"stopped by the edge operator");
                // Answer once its endpoints are released, so the name is free when the call
                // returns.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
                while self.tunnel.directory.get(id).is_some()
                    && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            // Held by another edge: it closes the session when told to.
            (None, Some(cluster)) => cluster.stop(&session).await.map_err(sessions_error)?,
            (None, None) => return Err(not_found("tunnel session", id)),
        }
        self.audit(actor, "tunnel_session_stopped.v0", &shown);
        Ok(())
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, AdminError> {
        let stored: HashMap<String, CloudEndpointRow> = self
            .cloud_rows()
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        let mut all: Vec<Endpoint> = self
            .tunnel
            .routes
            .members()
            .iter()
            .map(|route| {
                view::endpoint(
                    route,
                    &self.tunnel.credentials,
                    stored.get(route.member_id()),
                    self.configured_cloud.get(route.member_id()),
                )
            })
            .collect();
        all.sort_by(|a, b| (&a.url, &a.id).cmp(&(&b.url, &b.id)));
        Ok(all)
    }

    async fn endpoint(&self, id: &str) -> Result<Endpoint, AdminError> {
        self.endpoints()
            .await?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| not_found("endpoint", id))
    }

    async fn create_endpoint(
        &self,
        actor: &Actor,
        new: EndpointCreate,
    ) -> Result<Endpoint, AdminError> {
        if new.kind.as_deref().is_some_and(|k| k != "cloud") {
            return Err(AdminError::Invalid(
                "type: the API creates cloud endpoints only; agents bring the others online".into(),
            ));
        }
        Self::check_notes(new.description.as_ref(), new.metadata.as_ref())?;
        let row = CloudEndpointRow {
            id: new_id("ep"),
            url: new.url,
            traffic_policy: new.traffic_policy,
            pooling_enabled: new.pooling_enabled,
            credential_id: new.credential_id,
            created_at: now(),
            description: new.description.unwrap_or_default(),
            metadata: new.metadata.unwrap_or_default(),
        };
        let _change = self.changes.lock().await;
        // Online first (every check runs there), then stored; a store failure takes it back
        // offline, so nothing is half-applied.
        self.bring_online(&row)?;
        let insert = row.clone();
        if let Err(e) = self
            .write(Change::CreateCloud(&row), move |c| {
                rows::insert_cloud_endpoint(c, &insert)
            })
            .await
        {
            self.take_offline(&row.id);
            return Err(e.into_admin("endpoint", &row.id));
        }
        drop(_change);
        let shown = self.endpoint(&row.id).await?;
        self.audit(actor, "endpoint_created.v0", &shown);
        Ok(shown)
    }

    async fn delete_endpoint(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        let _change = self.changes.lock().await;
        let owned = id.to_string();
        let row = self
            .store
            .run(move |c| rows::cloud_endpoint_by_id(c, &owned))
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Err(if self.endpoints().await?.iter().any(|e| e.id == id) {
                AdminError::ReadOnly {
                    kind: "endpoint",
                    id: id.to_string(),
                }
            } else {
                not_found("endpoint", id)
            });
        };
        let shown = self.endpoint(id).await.ok();
        let owned = id.to_string();
        self.write(Change::DeleteCloud(id), move |c| {
            rows::delete_cloud_endpoint(c, &owned).map(drop)
        })
        .await
        .map_err(|e| e.into_admin("endpoint", id))?;
        self.take_offline(&row.id);
        if let Some(shown) = shown {
            self.audit(actor, "endpoint_deleted.v0", &shown);
        }
        Ok(())
    }
}

impl RowsChanged for ControlPlane {
    fn rows_changed(&self, before: &AllRows, now: &AllRows) {
        for c in &now.credentials {
            // Checked on the edge that stored it; one that does not compile here allows nothing.
            if let Err(e) = Acl::parse(&c.acl) {
                warn!(credential = %c.id, "the cluster's credential does not compile here: {e}");
            }
        }
        self.publish(&now.credentials, &now.reservations);
        // Deleted on another edge (or here): its sessions on this edge end as after a local
        // delete.
        let kept: HashSet<[u8; 32]> = now.credentials.iter().map(|c| c.token_digest).collect();
        for gone in before
            .credentials
            .iter()
            .filter(|c| !kept.contains(&c.token_digest))
        {
            self.close_sessions_of(TokenId::from_digest(gone.token_digest));
        }
        let kept: HashSet<&str> = now.cloud.iter().map(|e| e.id.as_str()).collect();
        for gone in before
            .cloud
            .iter()
            .filter(|e| !kept.contains(e.id.as_str()))
        {
            self.take_offline(&gone.id);
        }
        // Online already when made on this edge (create_endpoint brings it online first).
        let online: HashSet<String> = self
            .tunnel
            .routes
            .members()
            .iter()
            .map(|r| r.member_id().to_string())
            .collect();
        for row in now.cloud.iter().filter(|e| !online.contains(&e.id)) {
            if let Err(e) = self.bring_online(row) {
                warn!(endpoint = %row.id, url = %row.url, "the cluster's cloud endpoint cannot come online here: {e}");
            }
        }
    }
}
