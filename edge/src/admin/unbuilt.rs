//! [`Unbuilt`]: the [`Admin`] an edge serves until its control plane (store, credentials,
//! sessions) is built: every call answers 503, so the listener, its auth and `edge admin` can
//! be run and tested end to end in the meantime. The control plane replaces it in `start.rs`.

use super::api::{Actor, Admin, AdminError};
use super::model::{
    Credential, CredentialCreate, CredentialUpdate, Endpoint, EndpointCreate, ReservedAddr,
    ReservedAddrCreate, ReservedDomain, ReservedDomainCreate, TunnelSession,
};
use async_trait::async_trait;

/// Answers every call with [`AdminError::Store`].
#[derive(Debug, Default)]
pub struct Unbuilt;

fn unbuilt<T>() -> Result<T, AdminError> {
    Err(AdminError::Store(
        "this edge has no control plane yet (issue #20)".into(),
    ))
}

#[async_trait]
impl Admin for Unbuilt {
    async fn credentials(&self) -> Result<Vec<Credential>, AdminError> {
        unbuilt()
    }
    async fn credential(&self, _: &str) -> Result<Credential, AdminError> {
        unbuilt()
    }
    async fn create_credential(
        &self,
        _: &Actor,
        _: CredentialCreate,
    ) -> Result<Credential, AdminError> {
        unbuilt()
    }
    async fn update_credential(
        &self,
        _: &Actor,
        _: &str,
        _: CredentialUpdate,
    ) -> Result<Credential, AdminError> {
        unbuilt()
    }
    async fn delete_credential(&self, _: &Actor, _: &str) -> Result<(), AdminError> {
        unbuilt()
    }
    async fn reserved_domains(&self) -> Result<Vec<ReservedDomain>, AdminError> {
        unbuilt()
    }
    async fn reserved_domain(&self, _: &str) -> Result<ReservedDomain, AdminError> {
        unbuilt()
    }
    async fn create_reserved_domain(
        &self,
        _: &Actor,
        _: ReservedDomainCreate,
    ) -> Result<ReservedDomain, AdminError> {
        unbuilt()
    }
    async fn delete_reserved_domain(&self, _: &Actor, _: &str) -> Result<(), AdminError> {
        unbuilt()
    }
    async fn reserved_addrs(&self) -> Result<Vec<ReservedAddr>, AdminError> {
        unbuilt()
    }
    async fn reserved_addr(&self, _: &str) -> Result<ReservedAddr, AdminError> {
        unbuilt()
    }
    async fn create_reserved_addr(
        &self,
        _: &Actor,
        _: ReservedAddrCreate,
    ) -> Result<ReservedAddr, AdminError> {
        unbuilt()
    }
    async fn delete_reserved_addr(&self, _: &Actor, _: &str) -> Result<(), AdminError> {
        unbuilt()
    }
    async fn tunnel_sessions(&self) -> Result<Vec<TunnelSession>, AdminError> {
        unbuilt()
    }
    async fn tunnel_session(&self, _: &str) -> Result<TunnelSession, AdminError> {
        unbuilt()
    }
    async fn stop_tunnel_session(&self, _: &Actor, _: &str) -> Result<(), AdminError> {
        unbuilt()
    }
    async fn endpoints(&self) -> Result<Vec<Endpoint>, AdminError> {
        unbuilt()
    }
    async fn endpoint(&self, _: &str) -> Result<Endpoint, AdminError> {
        unbuilt()
    }
    async fn create_endpoint(&self, _: &Actor, _: EndpointCreate) -> Result<Endpoint, AdminError> {
        unbuilt()
    }
    async fn delete_endpoint(&self, _: &Actor, _: &str) -> Result<(), AdminError> {
        unbuilt()
    }
    async fn store_ready(&self) -> Result<(), AdminError> {
        Ok(())
    }
}
