//! The admin API's JSON types. Names follow ngrok's API (`credentials`, `reserved_domains`,
//! `reserved_addrs`, `tunnel_sessions`, `endpoints`; `id`, `uri`, `created_at`, `acl`), with
//! Sluice's additions (limits, `source`, `links`). Requests refuse unknown fields.

use serde::{Deserialize, Deserializer, Serialize};

/// Where an object was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Through the admin API; stored in the edge's store.
    Api,
    /// In `edge.yaml` (or flags, env); read-only through the API.
    Config,
}

/// A reference to another object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Its id.
    pub id: String,
    /// Its path in the API.
    pub uri: String,
}

/// An authtoken's record. The token itself is only in the create call's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// `cr_…`.
    pub id: String,
    /// `/credentials/{id}`.
    pub uri: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Free text.
    pub description: String,
    /// Free text (ngrok: arbitrary user data, often JSON).
    pub metadata: String,
    /// `bind:` rules; empty allows every name.
    pub acl: Vec<String>,
    /// Agent sessions online at once; `null`: the edge's `max_agents_per_token`.
    pub max_sessions: Option<u32>,
    /// Endpoints online at once over all its sessions; `null`: no limit.
    pub max_endpoints: Option<u32>,
    /// `api` or `config`.
    pub source: Source,
    /// The token, in the create call's answer only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token: Option<String>,
}

/// `POST /credentials`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialCreate {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Free text.
    #[serde(default)]
    pub metadata: Option<String>,
    /// `bind:` rules.
    #[serde(default)]
    pub acl: Option<Vec<String>>,
    /// Sessions limit.
    #[serde(default)]
    pub max_sessions: Option<u32>,
    /// Endpoints limit.
    #[serde(default)]
    pub max_endpoints: Option<u32>,
}

/// `PATCH /credentials/{id}`: absent fields stay; `null` clears a limit.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialUpdate {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New metadata.
    #[serde(default)]
    pub metadata: Option<String>,
    /// New `bind:` rules (replacing the old).
    #[serde(default)]
    pub acl: Option<Vec<String>>,
    /// New sessions limit; `Some(None)` clears it.
    #[serde(default, deserialize_with = "present")]
    pub max_sessions: Option<Option<u32>>,
    /// New endpoints limit; `Some(None)` clears it.
    #[serde(default, deserialize_with = "present")]
    pub max_endpoints: Option<Option<u32>>,
}

/// A field that is present, `null` included: `Some(None)` for `null`, `None` when absent
/// (through `default`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A hostname reserved for one credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedDomain {
    /// `rd_…`.
    pub id: String,
    /// `/reserved_domains/{id}`.
    pub uri: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Free text.
    pub description: String,
    /// Free text.
    pub metadata: String,
    /// The hostname, under the edge's domain.
    pub domain: String,
    /// The credential that owns it.
    pub credential: Ref,
}

/// `POST /reserved_domains`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedDomainCreate {
    /// The hostname (`name.DOMAIN`, or just `name`).
    pub domain: String,
    /// The owning credential's id.
    pub credential_id: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Free text.
    #[serde(default)]
    pub metadata: Option<String>,
}

/// A TCP address (a port of the edge's `tcp_ports`) reserved for one credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedAddr {
    /// `ra_…`.
    pub id: String,
    /// `/reserved_addrs/{id}`.
    pub uri: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Free text.
    pub description: String,
    /// Free text.
    pub metadata: String,
    /// `DOMAIN:PORT`.
    pub addr: String,
    /// The credential that owns it.
    pub credential: Ref,
}

/// `POST /reserved_addrs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedAddrCreate {
    /// `DOMAIN:PORT` or `PORT`; absent: a free port of the range.
    #[serde(default)]
    pub addr: Option<String>,
    /// The owning credential's id.
    pub credential_id: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Free text.
    #[serde(default)]
    pub metadata: Option<String>,
}

/// One of a session's connections to the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The agent's address as the edge sees it.
    pub remote_addr: String,
    /// `quic`, or `tcp` (TLS over TCP, when the agent's network blocks UDP).
    pub transport: String,
    /// In a cluster, the edge it is connected to (`cluster.edge_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
}

/// An agent session online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSession {
    /// `ses_…`.
    pub id: String,
    /// `/tunnel_sessions/{id}`.
    pub uri: String,
    /// The credential it authenticated with.
    pub credential: Ref,
    /// The agent's release.
    pub agent_version: String,
    /// The agent's address.
    pub ip: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The URLs of its endpoints.
    pub endpoints: Vec<String>,
    /// Its connections.
    pub links: Vec<Link>,
}

/// An endpoint member online (a pooled URL has one per agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `ep_…`.
    pub id: String,
    /// `/endpoints/{id}`.
    pub uri: String,
    /// `agent` or `cloud`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its URL.
    pub url: String,
    /// `http`, `https`, `tcp` or `tls`.
    pub proto: String,
    /// `public` or `internal`.
    pub binding: String,
    /// Whether it shares its URL with other members.
    pub pooling_enabled: bool,
    /// The agent session holding it (agent endpoints).
    pub tunnel_session: Option<Ref>,
    /// The credential it belongs to, when it names one.
    pub credential: Option<Ref>,
    /// The policy document (cloud endpoints).
    pub traffic_policy: Option<String>,
    /// Free text (cloud endpoints).
    pub description: String,
    /// Free text (cloud endpoints).
    pub metadata: String,
    /// `api` or `config` (cloud endpoints; agents' are neither stored nor configured).
    pub source: Option<Source>,
}

/// `POST /endpoints`: a cloud endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointCreate {
    /// Its URL (`https://name.DOMAIN`, …).
    pub url: String,
    /// `cloud`, the only kind the API creates; absent means the same.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The policy, YAML or JSON (ngrok's traffic-policy document).
    pub traffic_policy: String,
    /// Share the URL with other members.
    #[serde(default)]
    pub pooling_enabled: bool,
    /// Whose namespace its `forward-internal` reaches; absent: the edge's only credential.
    #[serde(default)]
    pub credential_id: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Free text.
    #[serde(default)]
    pub metadata: Option<String>,
}

/// A list answer: `{"<name>": [...], "uri": "/<name>", "next_page_uri": null}`; Sluice
/// answers every object in one page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    /// The objects, under the collection's name.
    #[serde(flatten)]
    pub items: std::collections::BTreeMap<String, Vec<T>>,
    /// The collection's path.
    pub uri: String,
    /// Always `null`.
    pub next_page_uri: Option<String>,
}

impl<T> Page<T> {
    /// One page holding everything in collection `name`.
    pub fn all(name: &str, items: Vec<T>) -> Self {
        Self {
            items: [(name.to_string(), items)].into(),
            uri: format!("/{name}"),
            next_page_uri: None,
        }
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `ERR_SLUICE_…`.
    pub error_code: String,
    /// The HTTP status, repeated.
    pub status_code: u16,
    /// What went wrong, and where.
    pub msg: String,
}
