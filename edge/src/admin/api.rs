//! [`Admin`]: what the admin listener can ask of the edge, and [`AdminError`], what it answers
//! when that fails. The listener (HTTP, auth, JSON) sits on one side; the control plane
//! (store, credentials, sessions, endpoints) implements it on the other.

use super::model::{
    Credential, CredentialCreate, CredentialUpdate, Endpoint, EndpointCreate, ReservedAddr,
    ReservedAddrCreate, ReservedDomain, ReservedDomainCreate, TunnelSession,
};
use async_trait::async_trait;
use std::net::IpAddr;

/// Who asked for a change, for audit events: the admin token's short id (never the token) and
/// the caller's address.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `adm_` and a prefix of the admin token's digest.
    pub token_id: String,
    /// The caller's address.
    pub remote: IpAddr,
}

/// Why an admin operation failed. Each maps to one HTTP status and one `ERR_SLUICE_` code
/// (docs/errors.md, "Admin API").
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No such object (404).
    #[error("{kind} '{id}' not found")]
    NotFound {
        /// What was looked for: `credential`, `reserved domain`, ….
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The request is malformed or names something invalid (400); the message says where.
    #[error("{0}")]
    Invalid(String),
    /// The change conflicts with what exists (409): a name reserved twice, a URL held.
    #[error("{0}")]
    Conflict(String),
    /// The object comes from `edge.yaml` and cannot be changed through the API (409).
    #[error("{kind} '{id}' is defined in edge.yaml and read-only here")]
    ReadOnly {
        /// What it is.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The store failed (503); nothing was changed.
    #[error("the edge's store is unavailable: {0}")]
    Store(String),
}

impl AdminError {
    /// The HTTP status the listener answers with.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::NotFound { .. } => 404,
            AdminError::Invalid(_) => 400,
            AdminError::Conflict(_) | AdminError::ReadOnly { .. } => 409,
            AdminError::Store(_) => 503,
        }
    }

    /// The `error_code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::NotFound { .. } => "ERR_SLUICE_7104",
            AdminError::Invalid(_) => "ERR_SLUICE_7100",
            AdminError::Conflict(_) => "ERR_SLUICE_7109",
            AdminError::ReadOnly { .. } => "ERR_SLUICE_7110",
            AdminError::Store(_) => "ERR_SLUICE_7503",
        }
    }
}

/// The control plane's operations, one per admin API call. Every change takes effect at once,
/// without a restart, and is recorded in the store before it is answered.
#[async_trait]
pub trait Admin: Send + Sync + 'static {
    /// Every credential, `edge.yaml`'s first (read-only), then the API's by creation.
    async fn credentials(&self) -> Result<Vec<Credential>, AdminError>;
    /// One credential.
    async fn credential(&self, id: &str) -> Result<Credential, AdminError>;
    /// A new credential; the answer is the only one that carries its `token`.
    async fn create_credential(
        &self,
        actor: &Actor,
        new: CredentialCreate,
    ) -> Result<Credential, AdminError>;
    /// Changes the fields `change` names; sessions already online keep running.
    async fn update_credential(
        &self,
        actor: &Actor,
        id: &str,
        change: CredentialUpdate,
    ) -> Result<Credential, AdminError>;
    /// Deletes a credential with its reservations and closes its sessions.
    async fn delete_credential(&self, actor: &Actor, id: &str) -> Result<(), AdminError>;

    /// Every reserved domain.
    async fn reserved_domains(&self) -> Result<Vec<ReservedDomain>, AdminError>;
    /// One reserved domain.
    async fn reserved_domain(&self, id: &str) -> Result<ReservedDomain, AdminError>;
    /// Reserves a hostname for a credential.
    async fn create_reserved_domain(
        &self,
        actor: &Actor,
        new: ReservedDomainCreate,
    ) -> Result<ReservedDomain, AdminError>;
    /// Frees a reserved hostname (an endpoint online on it stays online).
    async fn delete_reserved_domain(&self, actor: &Actor, id: &str) -> Result<(), AdminError>;

    /// Every reserved TCP address.
    async fn reserved_addrs(&self) -> Result<Vec<ReservedAddr>, AdminError>;
    /// One reserved TCP address.
    async fn reserved_addr(&self, id: &str) -> Result<ReservedAddr, AdminError>;
    /// Reserves a TCP port of the edge's range for a credential (a free one when none is
    /// named).
    async fn create_reserved_addr(
        &self,
        actor: &Actor,
        new: ReservedAddrCreate,
    ) -> Result<ReservedAddr, AdminError>;
    /// Frees a reserved TCP address.
    async fn delete_reserved_addr(&self, actor: &Actor, id: &str) -> Result<(), AdminError>;

    /// Every agent session online.
    async fn tunnel_sessions(&self) -> Result<Vec<TunnelSession>, AdminError>;
    /// One agent session.
    async fn tunnel_session(&self, id: &str) -> Result<TunnelSession, AdminError>;
    /// Stops an agent session: the agent exits ("stopped by the edge operator") and does not
    /// reconnect; its endpoints go offline at once.
    async fn stop_tunnel_session(&self, actor: &Actor, id: &str) -> Result<(), AdminError>;

    /// Every endpoint member online: agents' (pooled ones one entry each), internal ones, and
    /// cloud endpoints.
    async fn endpoints(&self) -> Result<Vec<Endpoint>, AdminError>;
    /// One endpoint member.
    async fn endpoint(&self, id: &str) -> Result<Endpoint, AdminError>;
    /// A new cloud endpoint, online when answered.
    async fn create_endpoint(
        &self,
        actor: &Actor,
        new: EndpointCreate,
    ) -> Result<Endpoint, AdminError>;
    /// Deletes a cloud endpoint created through the API.
    async fn delete_endpoint(&self, actor: &Actor, id: &str) -> Result<(), AdminError>;
}
