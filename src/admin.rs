//! The admin API's listener in this process over [`MemoryAdmin`], a small in-memory control
//! plane, for the tests of the HTTP side (auth, routes, bodies, `edge admin`, schemathesis)
//! that do not need an edge's real store.

use async_trait::async_trait;
use sluice_edge::admin::api::{Actor, Admin, AdminError};
use sluice_edge::admin::auth::AdminTokens;
use sluice_edge::admin::model::{
    Credential, CredentialCreate, CredentialUpdate, Endpoint, EndpointCreate, Link, Ref,
    ReservedAddr, ReservedAddrCreate, ReservedDomain, ReservedDomainCreate, Source, TunnelSession,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// An admin token the test listeners accept.
pub const ADMIN_TOKEN: &str = "adm_e2e_0123456789abcdef";

/// The credential [`MemoryAdmin`] starts with, as if from edge.yaml (read-only).
pub const CONFIG_CREDENTIAL: &str = "cr_config0";
/// The agent session [`MemoryAdmin`] starts with.
pub const SESSION: &str = "ses_1";

/// Creation time of everything [`MemoryAdmin`] makes.
const CREATED: &str = "2026-01-01T00:00:00Z";

#[derive(Default)]
struct State {
    next: u32,
    credentials: Vec<Credential>,
    domains: Vec<ReservedDomain>,
    addrs: Vec<ReservedAddr>,
    sessions: Vec<TunnelSession>,
    endpoints: Vec<Endpoint>,
    actors: Vec<Actor>,
}

/// A control plane in memory: the admin API's operations with the errors a real one gives
/// (404 for unknown ids, 400 for invalid names, 409 for taken ones and edge.yaml's objects).
/// It records who made each change.
pub struct MemoryAdmin(Mutex<State>);

impl Default for MemoryAdmin {
    fn default() -> Self {
        let config = Credential {
            id: CONFIG_CREDENTIAL.into(),
            uri: format!("/credentials/{CONFIG_CREDENTIAL}"),
            created_at: CREATED.into(),
            description: "from edge.yaml".into(),
            metadata: String::new(),
            acl: Vec::new(),
            max_sessions: None,
            max_endpoints: None,
            source: Source::Config,
            token: None,
        };
        let session = TunnelSession {
            id: SESSION.into(),
            uri: format!("/tunnel_sessions/{SESSION}"),
            credential: reference("credentials", CONFIG_CREDENTIAL),
            agent_version: "0.1.0".into(),
            ip: "127.0.0.1".into(),
            started_at: CREATED.into(),
            endpoints: vec!["http://demo.localhost".into()],
            links: vec![Link {
                remote_addr: "127.0.0.1:50000".into(),
                transport: "quic".into(),
            }],
        };
        Self(Mutex::new(State {
            credentials: vec![config],
            sessions: vec![session],
            ..State::default()
        }))
    }
}

fn reference(kind: &str, id: &str) -> Ref {
    Ref {
        id: id.into(),
        uri: format!("/{kind}/{id}"),
    }
}

fn not_found(kind: &'static str, id: &str) -> AdminError {
    AdminError::NotFound {
        kind,
        id: id.into(),
    }
}

/// The element of `items` with `id`, or 404.
fn find<'a, T>(
    items: &'a mut [T],
    id: &str,
    kind: &'static str,
    key: impl Fn(&T) -> &str,
) -> Result<&'a mut T, AdminError> {
    items
        .iter_mut()
        .find(|t| key(t) == id)
        .ok_or_else(|| not_found(kind, id))
}

/// Removes the element of `items` with `id`, or 404.
fn remove<T>(
    items: &mut Vec<T>,
    id: &str,
    kind: &'static str,
    key: impl Fn(&T) -> &str,
) -> Result<T, AdminError> {
    let at = items
        .iter()
        .position(|t| key(t) == id)
        .ok_or_else(|| not_found(kind, id))?;
    Ok(items.remove(at))
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}_{}", self.next)
    }

    fn owner(&self, id: &str) -> Result<Ref, AdminError> {
        self.credentials
            .iter()
            .find(|c| c.id == id)
            .map(|c| reference("credentials", &c.id))
            .ok_or_else(|| AdminError::Invalid(format!("credential_id '{id}' names no credential")))
    }

    fn api_credential(&mut self, id: &str) -> Result<&mut Credential, AdminError> {
        let c = find(&mut self.credentials, id, "credential", |c| &c.id)?;
        match c.source {
            Source::Config => Err(AdminError::ReadOnly {
                kind: "credential",
                id: id.into(),
            }),
            Source::Api => Ok(c),
        }
    }
}

fn check_acl(acl: &[String]) -> Result<(), AdminError> {
    match acl.iter().find(|r| !r.starts_with("bind:") || r.len() == 5) {
        Some(bad) => Err(AdminError::Invalid(format!(
            "acl: '{bad}' is not a bind: rule"
        ))),
        None => Ok(()),
    }
}

impl MemoryAdmin {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` as `actor`, recording who asked.
    fn change<T>(
        &self,
        actor: &Actor,
        change: impl FnOnce(&mut State) -> Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        let mut state = self.state();
        state.actors.push(actor.clone());
        change(&mut state)
    }

    /// Everyone who asked for a change so far, in order.
    pub fn actors(&self) -> Vec<Actor> {
        self.state().actors.clone()
    }
}

#[async_trait]
impl Admin for MemoryAdmin {
    async fn credentials(&self) -> Result<Vec<Credential>, AdminError> {
        Ok(self.state().credentials.clone())
    }
    async fn credential(&self, id: &str) -> Result<Credential, AdminError> {
        find(&mut self.state().credentials, id, "credential", |c| &c.id).map(|c| c.clone())
    }
    async fn create_credential(
        &self,
        actor: &Actor,
        new: CredentialCreate,
    ) -> Result<Credential, AdminError> {
        self.change(actor, |s| {
            let acl = new.acl.unwrap_or_default();
            check_acl(&acl)?;
            let id = s.id("cr");
            let credential = Credential {
                uri: format!("/credentials/{id}"),
                id,
                created_at: CREATED.into(),
                description: new.description.unwrap_or_default(),
                metadata: new.metadata.unwrap_or_default(),
                acl,
                max_sessions: new.max_sessions,
                max_endpoints: new.max_endpoints,
                source: Source::Api,
                token: None,
            };
            s.credentials.push(credential.clone());
            let token = format!("tok_{}", hex(rand::random::<[u8; 12]>()));
            Ok(Credential {
                token: Some(token),
                ..credential
            })
        })
    }
    async fn update_credential(
        &self,
        actor: &Actor,
        id: &str,
        change: CredentialUpdate,
    ) -> Result<Credential, AdminError> {
        self.change(actor, |s| {
            let c = s.api_credential(id)?;
            if let Some(acl) = change.acl {
                check_acl(&acl)?;
                c.acl = acl;
            }
            if let Some(d) = change.description {
                c.description = d;
            }
            if let Some(m) = change.metadata {
                c.metadata = m;
            }
            if let Some(n) = change.max_sessions {
                c.max_sessions = n;
            }
            if let Some(n) = change.max_endpoints {
                c.max_endpoints = n;
            }
            Ok(c.clone())
        })
    }
    async fn delete_credential(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        self.change(actor, |s| {
            s.api_credential(id)?;
            s.credentials.retain(|c| c.id != id);
            s.domains.retain(|d| d.credential.id != id);
            s.addrs.retain(|a| a.credential.id != id);
            Ok(())
        })
    }

    async fn reserved_domains(&self) -> Result<Vec<ReservedDomain>, AdminError> {
        Ok(self.state().domains.clone())
    }
    async fn reserved_domain(&self, id: &str) -> Result<ReservedDomain, AdminError> {
        find(&mut self.state().domains, id, "reserved domain", |d| &d.id).map(|d| d.clone())
    }
    async fn create_reserved_domain(
        &self,
        actor: &Actor,
        new: ReservedDomainCreate,
    ) -> Result<ReservedDomain, AdminError> {
        self.change(actor, |s| {
            let credential = s.owner(&new.credential_id)?;
            let domain = match new.domain.trim() {
                "" => return Err(AdminError::Invalid("domain: empty".into())),
                d if d.contains('.') => d.to_string(),
                d => format!("{d}.localhost"),
            };
            if s.domains.iter().any(|d| d.domain == domain) {
                return Err(AdminError::Conflict(format!(
                    "{domain} is reserved already"
                )));
            }
            let id = s.id("rd");
            let reserved = ReservedDomain {
                uri: format!("/reserved_domains/{id}"),
                id,
                created_at: CREATED.into(),
                description: new.description.unwrap_or_default(),
                metadata: new.metadata.unwrap_or_default(),
                domain,
                credential,
            };
            s.domains.push(reserved.clone());
            Ok(reserved)
        })
    }
    async fn delete_reserved_domain(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        self.change(actor, |s| {
            remove(&mut s.domains, id, "reserved domain", |d| &d.id).map(drop)
        })
    }

    async fn reserved_addrs(&self) -> Result<Vec<ReservedAddr>, AdminError> {
        Ok(self.state().addrs.clone())
    }
    async fn reserved_addr(&self, id: &str) -> Result<ReservedAddr, AdminError> {
        find(&mut self.state().addrs, id, "reserved address", |a| &a.id).map(|a| a.clone())
    }
    async fn create_reserved_addr(
        &self,
        actor: &Actor,
        new: ReservedAddrCreate,
    ) -> Result<ReservedAddr, AdminError> {
        self.change(actor, |s| {
            let credential = s.owner(&new.credential_id)?;
            let port = match new.addr.as_deref() {
                None => 20_000 + s.next,
                Some(a) => a
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .map(u32::from)
                    .ok_or_else(|| AdminError::Invalid(format!("addr '{a}': no port")))?,
            };
            let addr = format!("localhost:{port}");
            if s.addrs.iter().any(|a| a.addr == addr) {
                return Err(AdminError::Conflict(format!("{addr} is reserved already")));
            }
            let id = s.id("ra");
            let reserved = ReservedAddr {
                uri: format!("/reserved_addrs/{id}"),
                id,
                created_at: CREATED.into(),
                description: new.description.unwrap_or_default(),
                metadata: new.metadata.unwrap_or_default(),
                addr,
                credential,
            };
            s.addrs.push(reserved.clone());
            Ok(reserved)
        })
    }
    async fn delete_reserved_addr(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        self.change(actor, |s| {
            remove(&mut s.addrs, id, "reserved address", |a| &a.id).map(drop)
        })
    }

    async fn tunnel_sessions(&self) -> Result<Vec<TunnelSession>, AdminError> {
        Ok(self.state().sessions.clone())
    }
    async fn tunnel_session(&self, id: &str) -> Result<TunnelSession, AdminError> {
        find(&mut self.state().sessions, id, "tunnel session", |t| &t.id).map(|t| t.clone())
    }
    async fn stop_tunnel_session(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        self.change(actor, |s| {
            remove(&mut s.sessions, id, "tunnel session", |t| &t.id).map(drop)
        })
    }

    async fn endpoints(&self) -> Result<Vec<Endpoint>, AdminError> {
        Ok(self.state().endpoints.clone())
    }
    async fn endpoint(&self, id: &str) -> Result<Endpoint, AdminError> {
        find(&mut self.state().endpoints, id, "endpoint", |e| &e.id).map(|e| e.clone())
    }
    async fn create_endpoint(
        &self,
        actor: &Actor,
        new: EndpointCreate,
    ) -> Result<Endpoint, AdminError> {
        self.change(actor, |s| {
            let Some((scheme, _)) = new.url.split_once("://") else {
                return Err(AdminError::Invalid(format!("url '{}': no scheme", new.url)));
            };
            let proto = match scheme {
                "http" | "https" | "tcp" | "tls" => scheme.to_string(),
                other => return Err(AdminError::Invalid(format!("url: scheme '{other}'"))),
            };
            if new.kind.as_deref().is_some_and(|k| k != "cloud") {
                return Err(AdminError::Invalid("type: only cloud endpoints".into()));
            }
            let credential = new
                .credential_id
                .as_deref()
                .map(|c| s.owner(c))
                .transpose()?;
            let taken = s.endpoints.iter().any(|e| e.url == new.url);
            if taken && !new.pooling_enabled {
                return Err(AdminError::Conflict(format!(
                    "{} is online already",
                    new.url
                )));
            }
            let id = s.id("ep");
            let endpoint = Endpoint {
                uri: format!("/endpoints/{id}"),
                id,
                kind: "cloud".into(),
                url: new.url,
                proto,
                binding: "public".into(),
                pooling_enabled: new.pooling_enabled,
                tunnel_session: None,
                credential,
                traffic_policy: Some(new.traffic_policy),
                description: new.description.unwrap_or_default(),
                metadata: new.metadata.unwrap_or_default(),
                source: Some(Source::Api),
            };
            s.endpoints.push(endpoint.clone());
            Ok(endpoint)
        })
    }
    async fn delete_endpoint(&self, actor: &Actor, id: &str) -> Result<(), AdminError> {
        self.change(actor, |s| {
            remove(&mut s.endpoints, id, "endpoint", |e| &e.id).map(drop)
        })
    }

    async fn store_ready(&self) -> Result<(), AdminError> {
        Ok(())
    }
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The admin listener on a loopback port of this process, over a [`MemoryAdmin`], accepting
/// [`ADMIN_TOKEN`]. Stops when dropped.
pub struct AdminServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The control plane it answers from.
    pub admin: Arc<MemoryAdmin>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AdminServer {
    /// Starts one on `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(crate::any_port()).await?;
        let addr = listener.local_addr()?;
        let admin = Arc::new(MemoryAdmin::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(sluice_edge::admin::listener::serve(
            listener,
            AdminTokens::new([ADMIN_TOKEN]),
            admin.clone(),
            stopped,
        ));
        Ok(Self {
            addr,
            admin,
            stop,
            task,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}
