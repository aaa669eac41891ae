//! Compiling an endpoint's traffic-policy layers (operator, agent flags, agent files) into one
//! engine when the endpoint comes online — never per request.

use super::vaults::Vaults;
use crate::cluster::rate_limits::SharedRateLimits;
use crate::outbound::PolicyCaller;
use crate::tunnel::authtoken::TokenId;
use sha2::{Digest, Sha256};
use sluice_policy::{
    Authenticator, EdgeFacts, Engine, ForwardError, HttpCaller, InternalEndpoints, InternalUrl,
    KeySource, LoadEnv, Policy, PolicyErrors, Shorthand,
};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::sync::Arc;

/// What compiled engines may wait for, shared by every endpoint: the JWKS cache
/// (jwt-validation, ID tokens), the sign-in service (oauth, openid-connect), the outbound
/// client (http-request) and, in a cluster, the shared rate-limit buckets; and what
/// policies read when they compile: secret vaults and the default sign-in apps.
#[derive(Clone)]
pub struct PolicyServices {
    /// JWKS documents.
    pub keys: Arc<dyn KeySource>,
    /// Sign-in verdicts.
    pub login: Arc<dyn Authenticator>,
    /// http-request's calls, under edge.yaml's `outbound:` rules.
    pub http: Arc<PolicyCaller>,
    /// What policies may read beyond the request (`facts:` in edge.yaml); a layer reading a
    /// fact these lack is refused.
    pub facts: Arc<EdgeFacts>,
    /// For `edge.yaml`'s own policies: every vault.
    pub operator_env: LoadEnv,
    /// For agents' policies: the vaults marked `agents: true`.
    pub agent_env: LoadEnv,
    /// In a cluster: rate-limit buckets in the store, shared with the other edges (each
    /// engine gets its endpoint's); `None`: each engine counts in its own memory.
    pub rate_limits: Option<Arc<SharedRateLimits>>,
}

impl PolicyServices {
    /// The load environments from the configured vaults, default apps and edge facts.
    pub fn load_envs(
        vaults: &[crate::config::SecretVault],
        apps: &sluice_policy::LoginApps,
        facts: &EdgeFacts,
    ) -> (LoadEnv, LoadEnv) {
        let env = |v: Vaults| {
            LoadEnv::default()
                .with_secrets(Arc::new(v))
                .with_login_apps(apps.clone())
                .with_supplies(facts.supplies())
        };
        (env(Vaults::operator(vaults)), env(Vaults::agents(vaults)))
    }
}

/// Why an endpoint's policy layers do not compile: every problem of every layer.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct CompileError {
    /// One entry per layer that failed, each naming its origin (file, flags) and every
    /// problem in it, one per line.
    pub problems: Vec<String>,
}

/// No namespace: for the operator's policies that answer hosts no agent holds, which belong
/// to no authtoken, so forward-internal finds nothing.
struct NoNamespace;

impl InternalEndpoints for NoNamespace {
    fn check(&self, target: &InternalUrl) -> Result<(), ForwardError> {
        Err(ForwardError::NotFound(target.to_string()))
    }
}

/// Compiles the `operator` layers (`edge.yaml`'s), then the `agent`'s, into one engine, in
/// order. `None` when there is no layer, so requests skip policy evaluation entirely. The error
/// lists every problem of every layer, one per line. Each call builds fresh state (rate-limit
/// buckets are per engine on a single edge); `services` serve the actions that wait (JWKS,
/// sign-in, calls, shared rate limits) and the secrets each kind of layer may read, and
/// `owner` is the endpoint's authtoken with its namespace, for forward-internal and
/// http-request's internal targets (none: they reach nothing). `scope` names the endpoint the
/// same way on every edge (its name in the store, `cluster::spec::store_key`): in a cluster, its rate-limit buckets are
/// the store's under that name, so they outlive the agent's session.
pub fn compile<'a>(
    operator: impl IntoIterator<Item = &'a PolicySource>,
    agent: impl IntoIterator<Item = &'a PolicySource>,
    services: &PolicyServices,
    owner: Option<(TokenId, Arc<dyn InternalEndpoints>)>,
    scope: &str,
) -> Result<Option<Arc<Engine>>, CompileError> {
    let mut layers: Vec<Policy> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let sources = (operator.into_iter().map(|s| (s, &services.operator_env)))
        .chain(agent.into_iter().map(|s| (s, &services.agent_env)));
    for (source, env) in sources {
        match compile_source(source, env) {
            Ok(policy) => layers.push(policy),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(CompileError { problems });
    }
    let (internal, http): (Arc<dyn InternalEndpoints>, Arc<dyn HttpCaller>) = match owner {
        Some((token, internal)) => (internal.clone(), services.http.for_owner(token, internal)),
        None => (Arc::new(NoNamespace), services.http.clone()),
    };
    Ok((!layers.is_empty()).then(|| {
        let mut engine = Engine::new(layers)
            .with_key_source(services.keys.clone())
            .with_authenticator(services.login.clone())
            .with_http_caller(http)
            .with_internal_endpoints(internal)
            .with_edge_facts(services.facts.clone());
        if let Some(shared) = &services.rate_limits {
            engine = engine.with_rate_limit_store(shared.scoped(scope.to_string()));
        }
        Arc::new(engine)
    }))
}

/// A digest of `sources` (kind and text of each layer, in order; their labels do not count):
/// equal for members that run the same policy.
pub fn fingerprint<'a>(sources: impl IntoIterator<Item = &'a PolicySource>) -> [u8; 32] {
    let mut digest = Sha256::new();
    for source in sources {
        let kind: &[u8] = match source.kind {
            PolicyKind::Document => b"document",
            PolicyKind::Shorthand => b"shorthand",
        };
        digest.update(kind);
        digest.update((source.text.len() as u64).to_be_bytes());
        digest.update(source.text.as_bytes());
    }
    digest.finalize().into()
}

/// One layer, its secrets and default apps from `env`; the error is the layer's problems as
/// text (origin first).
fn compile_source(source: &PolicySource, env: &LoadEnv) -> Result<Policy, String> {
    let compiled: Result<Policy, PolicyErrors> = match source.kind {
        PolicyKind::Document => Policy::parse_with(&source.text, &source.origin, env),
        PolicyKind::Shorthand => serde_json::from_str::<Shorthand>(&source.text)
            .map_err(|e| format!("{}: malformed shorthand flags: {e}", source.origin))?
            .compile_with(env),
    };
    compiled.map_err(|errors| errors.to_string())
}
