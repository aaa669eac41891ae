//! [`Namespace`]: one authtoken's internal endpoints, as forward-internal sees them. Each
//! endpoint's engine gets the view of its own authtoken, so a policy can never reach another
//! tenant's internal endpoints.

use super::authtoken::TokenId;
use super::routes::{EndpointKey, RouteRegistry};
use sluice_policy::{ForwardError, InternalEndpoints, InternalUrl};
use std::sync::{Arc, Weak};

/// The internal endpoints of one authtoken, read from the route registry.
pub struct Namespace {
    /// Weak: the registry holds the engines that hold this view.
    routes: Weak<dyn RouteRegistry>,
    owner: TokenId,
}

impl Namespace {
    /// `owner`'s view of `routes`, ready to hand to an engine.
    pub fn of(routes: &Arc<dyn RouteRegistry>, owner: TokenId) -> Arc<dyn InternalEndpoints> {
        Arc::new(Self {
            routes: Arc::downgrade(routes),
            owner,
        })
    }
}

impl InternalEndpoints for Namespace {
    fn check(&self, target: &InternalUrl) -> Result<(), ForwardError> {
        let key = EndpointKey::internal(self.owner, target).ok_or_else(|| {
            ForwardError::SchemeMismatch {
                url: target.to_string(),
                reason: "not an http, https, tcp or tls URL".into(),
            }
        })?;
        let Some(routes) = self.routes.upgrade() else {
            return Err(ForwardError::NotFound(target.to_string()));
        };
        if let Some(set) = routes.lookup_key(&key) {
            return if set.is_online() {
                Ok(())
            } else {
                Err(ForwardError::Offline(target.to_string()))
            };
        }
        let other = key.other_scheme();
        if routes.lookup_key(&other).is_some() {
            return Err(ForwardError::SchemeMismatch {
                url: target.to_string(),
                reason: format!("only {other} is online"),
            });
        }
        Err(ForwardError::NotFound(target.to_string()))
    }
}
