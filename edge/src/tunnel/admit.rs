//! Admitting an agent: protocol version, authtoken (with per-address failure limits), each
//! endpoint's hostname, scheme and compiled policy, the credential's `bind:` rules,
//! reservations and endpoint limit, then claiming every hostname or none and counting the
//! session against its credential's limit.

use super::authtoken::TokenId;
use super::credentials::Credential;
use super::directory::{Listed, SessionEntry};
use super::handle::SessionHandle;
use super::namespace::Namespace;
use super::ports::{PortError, PortHold};
use super::routes::{Binding, EndpointKey, Member, Route};
use super::state::TunnelState;
use crate::cluster::claims::{Claim, ClaimError};
use crate::cluster::spec::{store_key, MemberSpec};
use crate::hostname::{names_only_scheme, requested_scheme, Hostname};
use crate::policy::compile;
use sluice_policy::{Engine, InternalUrl};
use sluice_proto::close_code;
use sluice_proto::control::{BoundEndpoint, Hello, PolicySource, Rejection, Welcome};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::link::Link;
use sluice_proto::scheme::Scheme;
use sluice_proto::PROTOCOL_VERSION;
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;
use tracing::{info, warn};

/// A rejection with `code` and a message for the agent's user.
pub(crate) fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// An admitted agent: the answer it gets, its session and the endpoint members it holds.
pub(crate) struct Admitted {
    /// The `Welcome` to send.
    pub welcome: Welcome,
    /// The session every route's requests go over.
    pub session: Arc<SessionHandle>,
    /// Its members, one per endpoint, already claimed.
    pub routes: Vec<Arc<Route>>,
    /// The TCP ports its `tcp://` endpoints hold, open until the session ends.
    pub ports: Vec<PortHold>,
    /// Its entry in the directory of sessions, listed before the agent hears it is online
    /// (so limits and the operator's list count it at once), removed when dropped.
    pub listed: Listed,
}

/// The store's names of `routes`' endpoints.
fn cluster_names(routes: &[Arc<Route>]) -> Vec<String> {
    routes.iter().map(|r| store_key(&r.key)).collect()
}

/// `route`'s claim in the cluster store, with what the other edges need to serve it
/// (`policies`: the agent's layers).
fn cluster_claim(route: &Route, policies: &[PolicySource]) -> Claim {
    let spec = MemberSpec {
        scheme: route.key.scheme.as_str().to_string(),
        hostname: route.key.hostname.to_string(),
        internal_port: match route.key.binding {
            Binding::Internal { port, .. } => Some(port),
            Binding::Public | Binding::Port(_) => None,
        },
        tcp_port: match route.key.binding {
            Binding::Port(port) => Some(port),
            Binding::Public | Binding::Internal { .. } => None,
        },
        url: route.url.clone(),
        id: route.endpoint.id.clone(),
        pooling: route.pooling,
        policies: policies.to_vec(),
        policy_id: hex::encode(route.policy_id),
    };
    Claim {
        name: store_key(&route.key),
        key: route.key.clone(),
        // A struct of strings, numbers and booleans always serializes.
        spec: serde_json::to_string(&spec).unwrap_or_default(),
    }
}

/// Lets go of `routes`, claimed for `session_id`: in this edge's registry, and this session's
/// share of the cluster claims.
pub(crate) async fn release(state: &TunnelState, routes: &[Arc<Route>], session_id: &str) {
    for route in routes {
        state.routes.release(&route.key, session_id);
    }
    if let Some(cluster) = &state.cluster {
        cluster.release(&cluster_names(routes)).await;
    }
}

/// Whether `hello` moves the agent run's session `old` to the new one (from TCP back to
/// QUIC): only the same run, with the same token, may say so.
fn is_move(hello: &Hello, old: &SessionHandle, owner: TokenId) -> bool {
    hello.moving_from.as_deref() == Some(old.id.as_str())
        && old.run_id == hello.run_id
        && old.owner == owner
}

/// Checks version and token, resolves hostnames and TCP ports, and claims them all or none.
pub(crate) async fn admit(
    hello: &Hello,
    conn: &Link,
    state: &TunnelState,
    session_id: &str,
    remote: SocketAddr,
) -> Result<Admitted, Rejection> {
    if hello.version != PROTOCOL_VERSION {
        return Err(reject(
            ErrorCode::UnsupportedVersion,
            version_mismatch(hello.version, &hello.agent_version),
        ));
    }
    let credential = authenticate(hello, state, remote.ip())?;
    let owner = credential.token;
    if hello.endpoints.is_empty() {
        return Err(reject(ErrorCode::HandshakeFailed, "no endpoints requested"));
    }
    // Agents from before pooling send no run id: each session is then its own run.
    let run_id = if hello.run_id.is_empty() {
        session_id
    } else {
        &hello.run_id
    };
    let session = Arc::new(SessionHandle::new(
        session_id.to_string(),
        owner,
        run_id.to_string(),
        conn.clone(),
        state.metrics.quic_streams_open.clone(),
    ));
    let mut seen = HashSet::new();
    let mut routes = Vec::with_capacity(hello.endpoints.len());
    let mut claims = Vec::new();
    let mut ports = Vec::new();
    for (id, request) in (0u32..).zip(&hello.endpoints) {
        let url = request.url.as_deref();
        let public_tcp =
            url.and_then(requested_scheme) == Some(Scheme::Tcp) && !url.is_some_and(is_internal);
        let (key, url) = if public_tcp {
            let (key, url, hold) =
                tcp_endpoint(url.unwrap_or_default(), state, &credential).await?;
            ports.push(hold);
            (key, url)
        } else {
            requested_endpoint(url, state, owner)?
        };
        check_allowed(&credential, &key, state)?;
        if !seen.insert(key.clone()) {
            return Err(reject(
                ErrorCode::UrlNotAllowed,
                format!("'{key}' is requested twice"),
            ));
        }
        let (policy, policy_id) = member_policy(state, &key, &request.policies, owner)
            .map_err(|e| reject(ErrorCode::PolicyInvalid, e.to_string()))?;
        check_phases(policy.as_deref(), &key)?;
        let route = Arc::new(Route {
            endpoint: Arc::new(key.info(&state.urls, format!("{session_id}/{id}"), &url)),
            key,
            url,
            pooling: request.pooling_enabled,
            member: Member::Agent {
                session: session.clone(),
                endpoint_id: id,
            },
            policy,
            policy_id,
        });
        if state.cluster.is_some() {
            claims.push(cluster_claim(&route, &request.policies));
        }
        routes.push(route);
    }
    check_endpoint_limit(&credential, routes.len(), run_id, state)?;
    // In a cluster, the store's claim first (no store call on a single edge).
    if let Some(cluster) = &state.cluster {
        cluster
            .claim(&claims, owner, run_id)
            .await
            .map_err(|e| match e {
                ClaimError::Taken(_) => reject(ErrorCode::HostnameTaken, e.to_string()),
                ClaimError::Unavailable(_) => reject(ErrorCode::StoreUnavailable, e.to_string()),
            })?;
    }
    let replaced = match state.routes.claim(routes.clone()) {
        Ok(replaced) => replaced,
        Err(e) => {
            if let Some(cluster) = &state.cluster {
                cluster.release(&cluster_names(&routes)).await;
            }
            return Err(reject(ErrorCode::HostnameTaken, e.to_string()));
        }
    };
    for old in replaced {
        let Some((old_session, _)) = old.agent() else {
            continue;
        };
        old_session.release_slot();
        if is_move(hello, old_session, owner) {
            // Make-before-break: the agent finishes what the old session has, then closes it.
            info!(old_session = %old_session.id, endpoint = %old.key, "endpoint moved to this session; the old one drains");
            old_session.leave();
        } else {
            info!(old_session = %old_session.id, endpoint = %old.key, "endpoint member replaced by the same authtoken");
            old_session
                .link
                .conn
                .close(close_code::REPLACED, b"replaced by a new session");
        }
    }
    // Counted after the claim, so an agent reconnecting before its old session timed out
    // replaces that session instead of being refused for it.
    let Some(slot) = state
        .sessions_per_token
        .acquire(owner, credential.max_sessions)
    else {
        release(state, &routes, session_id).await;
        let limit = match credential.max_sessions {
            Some(n) => format!("{n}, its credential's limit (max_sessions)"),
            None => format!(
                "{}, the edge's limit (max_agents_per_token)",
                state.sessions_per_token.limit()
            ),
        };
        return Err(reject(
            ErrorCode::AgentLimitReached,
            format!("this authtoken already has as many agent sessions online as allowed: {limit}"),
        ));
    };
    session.hold_slot(slot);
    let listed = state.directory.register(SessionEntry {
        handle: session.clone(),
        agent_version: hello.agent_version.chars().take(64).collect(),
        remote,
        started: SystemTime::now(),
        endpoints: routes.iter().map(|r| r.url.clone()).collect(),
    });
    let endpoints = routes
        .iter()
        .zip(0u32..)
        .map(|(r, id)| BoundEndpoint {
            id,
            url: r.url.clone(),
            hostname: r.key.hostname.to_string(),
        })
        .collect();
    Ok(Admitted {
        welcome: Welcome {
            session_id: session_id.to_string(),
            endpoints,
            edge_id: state.cluster.as_ref().map(|c| c.edge_id().to_string()),
        },
        session,
        routes,
        ports,
        listed,
    })
}

/// The engine of a member of `key` whose agent sent `layers` (after the operator's layers for
/// its name; `None` without any), and the digest of those layers.
pub(crate) fn member_policy(
    state: &TunnelState,
    key: &EndpointKey,
    layers: &[PolicySource],
    owner: TokenId,
) -> Result<(Option<Arc<Engine>>, [u8; 32]), compile::CompileError> {
    // edge.yaml's policies name hostnames and run HTTP phases: they apply to HTTP endpoints
    // only.
    let operator = || {
        state
            .operators
            .sources_for(&key.hostname)
            .filter(|_| key.scheme.is_http())
    };
    let policy = compile::compile(
        operator(),
        layers,
        &state.services,
        Some((owner, Namespace::of(&state.routes, owner))),
        &store_key(key),
    )?;
    Ok((policy, compile::fingerprint(operator().chain(layers))))
}

/// Refuses a name or address outside the credential's `bind:` rules, or reserved for another
/// credential (even while that one is offline).
fn check_allowed(
    credential: &Credential,
    key: &EndpointKey,
    state: &TunnelState,
) -> Result<(), Rejection> {
    let host = key.hostname.as_str();
    let id = &credential.id;
    let (allowed, usable, shown) = match key.binding {
        Binding::Port(port) => (
            credential.acl.allows_addr(host, port),
            state.reservations.port_usable_by(port, id),
            format!("{host}:{port}"),
        ),
        Binding::Public => (
            credential.acl.allows_host(host),
            state.reservations.domain_usable_by(host, id),
            host.to_string(),
        ),
        // Internal names live in the credential's own namespace: nobody else's to reserve.
        Binding::Internal { .. } => (credential.acl.allows_host(host), true, host.to_string()),
    };
    if !allowed {
        return Err(reject(
            ErrorCode::BindNotAllowed,
            format!(
                "'{shown}' is outside this authtoken's bind: rules ({})",
                credential.acl
            ),
        ));
    }
    if !usable {
        return Err(reject(
            ErrorCode::NameReserved,
            format!("'{shown}' is reserved for another authtoken"),
        ));
    }
    Ok(())
}

/// Refuses a session that would take its credential past `max_endpoints`, counting the
/// endpoints of its other sessions (not those of its own run, which it replaces).
fn check_endpoint_limit(
    credential: &Credential,
    asked: usize,
    run_id: &str,
    state: &TunnelState,
) -> Result<(), Rejection> {
    let Some(max) = credential.max_endpoints else {
        return Ok(());
    };
    let held = state.directory.endpoints_of(credential.token, run_id);
    if held + asked > max {
        return Err(reject(
            ErrorCode::EndpointLimitReached,
            format!(
                "this authtoken holds {held} endpoints and asks for {asked} more; its limit is \
                 {max} (max_endpoints)"
            ),
        ));
    }
    Ok(())
}

/// A `tcp://` endpoint: the port its URL names (`tcp://DOMAIN:PORT`, or `tcp://:PORT`), or a
/// random free one (`tcp://`, `tcp://DOMAIN`), held for the session.
async fn tcp_endpoint(
    url: &str,
    state: &TunnelState,
    credential: &Credential,
) -> Result<(EndpointKey, String, PortHold), Rejection> {
    let Some(ports) = &state.tcp_ports else {
        return Err(reject(
            ErrorCode::TcpNotEnabled,
            "this edge has no TCP ports; its operator enables tcp:// endpoints with \
             `tcp_ports: 20000-20999` in edge.yaml (or --tcp-ports / SLUICE_TCP_PORTS)",
        ));
    };
    let hold = match requested_port(url, &state.urls.domain)? {
        Some(port) => ports.hold(port).await,
        // A random port is never one reserved for someone else.
        None => ports.hold_random(|port| state.reservations.port_usable_by(port, &credential.id)),
    }
    .map_err(|e| {
        let code = match e {
            PortError::Exhausted(_) => ErrorCode::TcpPortsExhausted,
            PortError::OutsideRange { .. } | PortError::Bind { .. } => ErrorCode::TcpPortNotAllowed,
        };
        reject(code, e.to_string())
    })?;
    let key = EndpointKey::tcp(state.urls.domain.clone(), hold.port());
    Ok((key, state.urls.tcp_url(hold.port()), hold))
}

/// The port a `tcp://` URL (or a bare `HOST:PORT`) asks for; `None` for any. Its host, when
/// given, must be the edge's domain: TCP endpoints are told apart by port alone.
pub(crate) fn requested_port(url: &str, domain: &Hostname) -> Result<Option<u16>, Rejection> {
    let bad = |why: &str| reject(ErrorCode::UrlNotAllowed, format!("'{url}': {why}"));
    if names_only_scheme(url) {
        return Ok(None);
    }
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    if !host.is_empty() && !host.eq_ignore_ascii_case(domain.as_str()) {
        return Err(bad(&format!(
            "a tcp:// endpoint's host is this edge's domain, '{domain}'"
        )));
    }
    port.map(|p| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("the port is not a number between 1 and 65535"))
    })
    .transpose()
}

/// Refuses a policy with phases that never run on the endpoint: HTTP phases on a `tcp://` or
/// `tls://` endpoint, `on_tcp_connect` on an internal HTTP endpoint.
fn check_phases(policy: Option<&Engine>, key: &EndpointKey) -> Result<(), Rejection> {
    let internal = matches!(key.binding, Binding::Internal { .. });
    for layer in policy.map(Engine::layers).unwrap_or_default() {
        layer
            .check_protocol(key.scheme.as_str(), internal)
            .map_err(|e| reject(ErrorCode::PolicyInvalid, e.to_string()))?;
    }
    Ok(())
}

/// Says which side to upgrade when the agent speaks `agent` and this edge
/// [`PROTOCOL_VERSION`].
fn version_mismatch(agent: u32, agent_release: &str) -> String {
    let side = if agent < PROTOCOL_VERSION {
        "upgrade the agent"
    } else {
        "upgrade the edge"
    };
    // The agent names its own release; a long name is cut, it only goes back to the agent.
    let agent_release: String = agent_release.chars().take(32).collect();
    format!(
        "this agent (sluice {agent_release}) speaks protocol {agent}, this edge (sluice {}) \
         speaks protocol {PROTOCOL_VERSION}: {side}",
        env!("CARGO_PKG_VERSION")
    )
}

/// Checks the authtoken, refusing addresses that failed too often recently without looking at
/// the token at all, and logging each failure with its count (never the token).
fn authenticate(
    hello: &Hello,
    state: &TunnelState,
    remote: IpAddr,
) -> Result<Arc<Credential>, Rejection> {
    if let Err(retry) = state.auth_failures.check(remote) {
        return Err(reject(
            ErrorCode::AuthRateLimited,
            format!(
                "too many failed authtoken attempts from {remote}; retry in {} s",
                retry.as_secs().max(1)
            ),
        ));
    }
    state
        .credentials
        .verify(hello.authtoken.expose())
        .ok_or_else(|| {
            let failures = state.auth_failures.record(remote);
            warn!(%remote, failures, "wrong authtoken");
            reject(
                ErrorCode::AuthtokenInvalid,
                ErrorCode::AuthtokenInvalid.message(),
            )
        })
}

/// The endpoint a URL asks for (an agent's `--url`, a cloud endpoint's `url`; none: a random
/// name) and its URL as shown. A name under `.internal` is an internal endpoint in `owner`'s
/// namespace (https and port 443 unless it says otherwise); any other is public, under the
/// edge's domain, with the scheme its URL names or the edge's default.
pub(crate) fn requested_endpoint(
    url: Option<&str>,
    state: &TunnelState,
    owner: TokenId,
) -> Result<(EndpointKey, String), Rejection> {
    if let Some(url) = url.filter(|u| is_internal(u)) {
        let internal = InternalUrl::parse(url).map_err(|e| reject(ErrorCode::UrlNotAllowed, e))?;
        let key = EndpointKey::internal(owner, &internal).ok_or_else(|| {
            reject(
                ErrorCode::UrlNotAllowed,
                format!("'{internal}': not an http, https, tcp or tls URL"),
            )
        })?;
        return Ok((key, internal.to_string()));
    }
    let hostname = requested_hostname(url, state)?;
    let scheme = endpoint_scheme(url, state)?;
    let url = state.urls.public_url(&hostname, scheme);
    Ok((EndpointKey::public(scheme, hostname), url))
}

/// Whether an agent's URL names an internal endpoint (`NAME.internal`, with or without scheme
/// and port).
fn is_internal(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split([':', '/']).next().unwrap_or_default();
    host.trim_end_matches('.')
        .to_ascii_lowercase()
        .ends_with(".internal")
}

/// The endpoint's scheme: the one its URL names, else the edge's default. https:// on an edge
/// without an HTTPS listener is refused rather than silently served over http.
fn endpoint_scheme(url: Option<&str>, state: &TunnelState) -> Result<Scheme, Rejection> {
    match url.and_then(requested_scheme) {
        Some(Scheme::Https) if state.urls.https_port.is_none() => Err(reject(
            ErrorCode::UrlNotAllowed,
            "this edge has no HTTPS listener; ask for an http:// URL",
        )),
        Some(Scheme::Tls) if state.urls.https_port.is_none() => Err(reject(
            ErrorCode::UrlNotAllowed,
            "this edge has no HTTPS listener, which tls:// endpoints share",
        )),
        Some(Scheme::Tcp) => Err(reject(
            ErrorCode::UrlNotAllowed,
            "tcp:// endpoints are brought online by agents only",
        )),
        Some(scheme) => Ok(scheme),
        None => Ok(state.urls.default_scheme()),
    }
}

fn requested_hostname(url: Option<&str>, state: &TunnelState) -> Result<Hostname, Rejection> {
    let hostname = match url.filter(|u| !names_only_scheme(u)) {
        Some(url) => Hostname::from_requested_url(url, &state.urls.domain)
            .map_err(|e| reject(ErrorCode::UrlNotAllowed, e.to_string()))?,
        None => Hostname::random_under(&state.urls.domain),
    };
    if state.auth_hostname.as_ref() == Some(&hostname) {
        return Err(reject(
            ErrorCode::UrlNotAllowed,
            format!("'{hostname}' is this edge's sign-in host (auth_host)"),
        ));
    }
    Ok(hostname)
}
