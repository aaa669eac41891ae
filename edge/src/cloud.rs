//! Cloud endpoints: endpoints the edge holds itself, defined by the operator
//! ([`CloudEndpointSpec`]), validated and claimed at start so they are live before the first
//! request. They have a policy and no agent: the policy answers or forwards every request.

use crate::cluster::spec::store_key;
use crate::config::CloudEndpointSpec;
use crate::policy::compile;
use crate::tunnel::admit::requested_endpoint;
use crate::tunnel::authtoken::TokenId;
use crate::tunnel::namespace::Namespace;
use crate::tunnel::routes::{ClaimError, Member, Route};
use crate::tunnel::state::TunnelState;
use std::sync::Arc;
use tracing::info;

/// Why a cloud endpoint cannot come online; the edge does not start.
#[derive(Debug, thiserror::Error)]
pub enum CloudEndpointError {
    /// The URL is malformed, outside the edge's domain, or https:// without an HTTPS listener.
    #[error("{origin}: url '{url}': {message}")]
    Url {
        /// Where it was defined.
        origin: String,
        /// The URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The authtoken is not one the edge accepts, or none is given and the edge accepts
    /// several.
    #[error("{origin}: {message}")]
    Owner {
        /// Where it was defined.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The policy does not compile.
    #[error("{origin}: traffic policy:\n{problems}")]
    Policy {
        /// Where it was defined.
        origin: String,
        /// Every problem, one per line, each located.
        problems: String,
    },
    /// The policy can never answer (`FILE:LINE:COLUMN: …` first).
    #[error("{problem} ({origin}, {url})")]
    NeverAnswers {
        /// Where it was defined.
        origin: String,
        /// The URL.
        url: String,
        /// The located problem.
        problem: Box<sluice_policy::PolicyError>,
    },
    /// Another cloud endpoint holds the URL and they do not both enable pooling.
    #[error("{origin}: {source}")]
    Claim {
        /// Where it was defined.
        origin: String,
        /// The registry's refusal.
        source: ClaimError,
    },
}

/// Validates every cloud endpoint, then claims them: all come online, or the edge reports
/// the first problem and none does.
pub fn bring_online(
    specs: &[CloudEndpointSpec],
    state: &TunnelState,
) -> Result<(), CloudEndpointError> {
    let routes = specs
        .iter()
        .map(|spec| {
            route(
                spec,
                owner(spec, state)?,
                config_member_id(&spec.url),
                state,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    for (route, spec) in routes.into_iter().zip(specs) {
        claim(route, spec, state)?;
    }
    Ok(())
}

/// Validates one cloud endpoint (the admin API's) and brings it online as member `id` of
/// `owner`; the member is returned, for its release.
pub fn bring_one_online(
    spec: &CloudEndpointSpec,
    owner: TokenId,
    id: String,
    state: &TunnelState,
) -> Result<Arc<Route>, CloudEndpointError> {
    let route = route(spec, owner, id, state)?;
    claim(route.clone(), spec, state)?;
    Ok(route)
}

/// The member id of a cloud endpoint defined in `edge.yaml`.
pub fn config_member_id(url: &str) -> String {
    format!("cloud/{url}")
}

fn claim(
    route: Arc<Route>,
    spec: &CloudEndpointSpec,
    state: &TunnelState,
) -> Result<(), CloudEndpointError> {
    state
        .routes
        .claim(vec![route.clone()])
        .map_err(|source| CloudEndpointError::Claim {
            origin: spec.origin.clone(),
            source,
        })?;
    info!(url = %route.url, "cloud endpoint online");
    Ok(())
}

/// The member a cloud endpoint adds to its URL's route set.
fn route(
    spec: &CloudEndpointSpec,
    owner: TokenId,
    id: String,
    state: &TunnelState,
) -> Result<Arc<Route>, CloudEndpointError> {
    let (key, url) =
        requested_endpoint(Some(&spec.url), state, owner).map_err(|r| CloudEndpointError::Url {
            origin: spec.origin.clone(),
            url: spec.url.clone(),
            message: r.message,
        })?;
    let sources = || {
        state
            .operators
            .sources_for(&key.hostname)
            .chain([&spec.policy])
    };
    // A cloud endpoint's own policy is edge.yaml's: it reads every vault.
    let policy = compile::compile(
        sources(),
        std::iter::empty(),
        &state.services,
        Some((owner, Namespace::of(&state.routes, owner))),
        &store_key(&key),
    )
    .map_err(|e| CloudEndpointError::Policy {
        origin: spec.origin.clone(),
        problems: e.to_string(),
    })?;
    // Some layer (the operator's or its own) must be able to answer; the error points at its
    // own document.
    let layers = policy.as_ref().map(|e| e.layers()).unwrap_or_default();
    if !layers.iter().any(|l| l.check_answers().is_ok()) {
        let problem = match layers.last() {
            Some(own) => own.check_answers().err(),
            None => None,
        };
        return Err(CloudEndpointError::NeverAnswers {
            origin: spec.origin.clone(),
            url: url.clone(),
            problem: Box::new(problem.unwrap_or_else(|| empty_policy(spec))),
        });
    }
    let policy_id = compile::fingerprint(sources());
    Ok(Arc::new(Route {
        endpoint: Arc::new(key.info(&state.urls, id.clone(), &url)),
        key,
        url,
        pooling: spec.pooling_enabled,
        member: Member::Cloud { id, owner },
        policy_id,
        policy,
    }))
}

/// The authtoken a cloud endpoint belongs to.
fn owner(spec: &CloudEndpointSpec, state: &TunnelState) -> Result<TokenId, CloudEndpointError> {
    let failed = |message: &str| CloudEndpointError::Owner {
        origin: spec.origin.clone(),
        message: message.to_string(),
    };
    match &spec.authtoken {
        Some(token) => state
            .credentials
            .verify(token.expose())
            .map(|c| c.token)
            .ok_or_else(|| failed("authtoken is not one of the edge's authtokens")),
        None => state.credentials.only_configured().ok_or_else(|| {
            failed(
                "the edge accepts several authtokens: give authtoken: (one of them) to say whose \
                 internal endpoints this endpoint forwards to",
            )
        }),
    }
}

/// The error for a policy document with no rules at all (it compiles to no layer).
fn empty_policy(spec: &CloudEndpointSpec) -> sluice_policy::PolicyError {
    sluice_policy::PolicyError {
        origin: spec.policy.origin.clone(),
        pos: None,
        path: String::new(),
        message: "the policy is empty, and a cloud endpoint's policy must answer".to_string(),
    }
}
