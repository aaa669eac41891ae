//! How the control plane's state reads in the API: store rows, configured credentials, live
//! sessions and route members turned into [`super::model`] values.

use super::model::{
    Credential, Endpoint, Link, Ref, ReservedAddr, ReservedDomain, Source, TunnelSession,
};
use crate::cluster::sessions::SharedSession;
use crate::config::CloudEndpointSpec;
use crate::hostname::Hostname;
use crate::store::rows::{CloudEndpointRow, CredentialRow, ReservationRow, Reserved};
use crate::tunnel::authtoken::TokenId;
use crate::tunnel::credentials::{self, Credentials};
use crate::tunnel::routes::{Binding, Member, Route};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `kind` of reserved domains in errors and event names.
pub const DOMAIN: &str = "reserved domain";
/// The `kind` of reserved TCP addresses.
pub const ADDR: &str = "reserved addr";

fn reference(collection: &str, id: &str) -> Ref {
    Ref {
        id: id.to_string(),
        uri: format!("/{collection}/{id}"),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A credential from `edge.yaml` (its `created_at`: when this edge started).
pub fn configured_credential(c: &credentials::Credential, started: SystemTime) -> Credential {
    Credential {
        id: c.id.clone(),
        uri: format!("/credentials/{}", c.id),
        created_at: rfc3339(started),
        description: "edge.yaml authtoken".into(),
        metadata: String::new(),
        acl: Vec::new(),
        max_sessions: None,
        max_endpoints: None,
        source: Source::Config,
        token: None,
    }
}

/// A credential created through the API (never with its token).
pub fn credential(row: &CredentialRow) -> Credential {
    Credential {
        id: row.id.clone(),
        uri: format!("/credentials/{}", row.id),
        created_at: row.created_at.clone(),
        description: row.description.clone(),
        metadata: row.metadata.clone(),
        acl: row.acl.clone(),
        max_sessions: row.max_sessions,
        max_endpoints: row.max_endpoints,
        source: Source::Api,
        token: None,
    }
}

/// [`DOMAIN`] or [`ADDR`].
pub fn reservation_kind(row: &ReservationRow) -> &'static str {
    match row.reserved {
        Reserved::Domain(_) => DOMAIN,
        Reserved::Port(_) => ADDR,
    }
}

/// The reserved name as users write it: the hostname, or `DOMAIN:PORT`.
pub fn reserved_name(row: &ReservationRow, domain: &Hostname) -> String {
    match &row.reserved {
        Reserved::Domain(d) => d.clone(),
        Reserved::Port(p) => format!("{domain}:{p}"),
    }
}

/// A reserved domain.
pub fn reserved_domain(row: &ReservationRow) -> ReservedDomain {
    ReservedDomain {
        id: row.id.clone(),
        uri: format!("/reserved_domains/{}", row.id),
        created_at: row.created_at.clone(),
        description: row.description.clone(),
        metadata: row.metadata.clone(),
        domain: match &row.reserved {
            Reserved::Domain(d) => d.clone(),
            Reserved::Port(_) => String::new(),
        },
        credential: reference("credentials", &row.credential_id),
    }
}

/// A reserved TCP address.
pub fn reserved_addr(row: &ReservationRow, domain: &Hostname) -> ReservedAddr {
    ReservedAddr {
        id: row.id.clone(),
        uri: format!("/reserved_addrs/{}", row.id),
        created_at: row.created_at.clone(),
        description: row.description.clone(),
        metadata: row.metadata.clone(),
        addr: reserved_name(row, domain),
        credential: reference("credentials", &row.credential_id),
    }
}

/// The credential reference of a token (`deleted` once its credential is gone).
fn credential_ref(credentials: &Credentials, token: TokenId) -> Ref {
    let id = credentials
        .by_token(token)
        .map_or_else(|| "deleted".to_string(), |c| c.id.clone());
    reference("credentials", &id)
}

/// A live agent session, on this edge or (in a cluster, `cluster`) on any edge: the
/// link names its edge.
pub fn session(s: &SharedSession, credentials: &Credentials, cluster: bool) -> TunnelSession {
    let id = &s.id;
    let owner = TokenId::from_hex(&s.owner);
    TunnelSession {
        id: id.clone(),
        uri: format!("/tunnel_sessions/{id}"),
        credential: match owner {
            Some(owner) => credential_ref(credentials, owner),
            None => reference("credentials", "deleted"),
        },
        agent_version: s.agent_version.clone(),
        ip: s
            .remote
            .parse::<SocketAddr>()
            .map_or_else(|_| s.remote.clone(), |a| a.ip().to_string()),
        started_at: rfc3339(UNIX_EPOCH + Duration::from_millis(s.started_ms)),
        endpoints: s.endpoints.clone(),
        links: vec![Link {
            remote_addr: s.remote.clone(),
            transport: s.transport.clone(),
            edge_id: cluster.then(|| s.edge_id.clone()),
        }],
    }
}

/// The API id of a route member: an agent's `ep_<session>_<n>`, a stored cloud endpoint's own
/// id, a configured one's `ep_cfg_` and a digest of its URL.
fn endpoint_id(route: &Route) -> String {
    match &route.member {
        Member::Agent {
            session,
            endpoint_id,
        } => format!(
            "ep_{}_{endpoint_id}",
            session.id.strip_prefix("ses_").unwrap_or(&session.id)
        ),
        // The operator's list shows this edge's members; another edge lists its own.
        Member::Remote {
            edge_id, endpoint, ..
        } => format!(
            "ep_{edge_id}_{}",
            hex::encode(&Sha256::digest(endpoint.as_bytes())[..8])
        ),
        Member::Cloud { id, .. } if id.starts_with("ep_") => id.clone(),
        Member::Cloud { id, .. } => format!(
            "ep_cfg_{}",
            hex::encode(&Sha256::digest(id.as_bytes())[..8])
        ),
    }
}

/// An endpoint member online; `stored` and `configured` say where a cloud one was defined.
pub fn endpoint(
    route: &Route,
    credentials: &Credentials,
    stored: Option<&CloudEndpointRow>,
    configured: Option<&CloudEndpointSpec>,
) -> Endpoint {
    let id = endpoint_id(route);
    let (kind, session) = match &route.member {
        Member::Agent { session, .. } => ("agent", Some(reference("tunnel_sessions", &session.id))),
        Member::Remote { .. } => ("agent", None),
        Member::Cloud { .. } => ("cloud", None),
    };
    let (policy, description, metadata, source) = match (stored, configured) {
        (Some(row), _) => (
            Some(row.traffic_policy.clone()),
            row.description.clone(),
            row.metadata.clone(),
            Some(Source::Api),
        ),
        (None, Some(spec)) => (
            Some(spec.policy.text.clone()),
            String::new(),
            String::new(),
            Some(Source::Config),
        ),
        (None, None) => (None, String::new(), String::new(), None),
    };
    Endpoint {
        uri: format!("/endpoints/{id}"),
        id,
        kind: kind.into(),
        url: route.url.clone(),
        proto: route.key.scheme.as_str().into(),
        binding: match route.key.binding {
            Binding::Internal { .. } => "internal",
            Binding::Public | Binding::Port(_) => "public",
        }
        .into(),
        pooling_enabled: route.pooling,
        tunnel_session: session,
        credential: Some(credential_ref(credentials, route.owner())),
        traffic_policy: policy,
        description,
        metadata,
        source,
    }
}
