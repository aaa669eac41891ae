//! [`MemberSpec`]: what the cluster store keeps of an endpoint an edge holds, so that the other
//! edges can run its traffic policy and forward its requests (docs/cluster.md).

use crate::hostname::Hostname;
use crate::tunnel::authtoken::TokenId;
use crate::tunnel::routes::{Binding, EndpointKey};
use serde::{Deserialize, Serialize};
use sluice_proto::control::PolicySource;
use sluice_proto::scheme::Scheme;

/// The store's name for an endpoint: its URL for a public one (`https://app.example.com`,
/// `tcp://example.com:20001`); an internal one is its authtoken's own, so its digest comes
/// first (`internal:DIGEST:https://api.internal`).
pub fn store_key(key: &EndpointKey) -> String {
    match key.binding {
        Binding::Internal { owner, port } => format!(
            "internal:{}:{}://{}:{port}",
            owner.hex(),
            key.scheme.as_str(),
            key.hostname
        ),
        Binding::Public | Binding::Port(_) => key.to_string(),
    }
}

/// One member as the edge holding it describes it to the others: the agent's policy layers
/// (each edge adds its own `edge.yaml` layers, which operators keep the same everywhere) and
/// the facts policies read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// `http`, `https`, `tcp` or `tls`.
    pub scheme: String,
    /// The hostname or wildcard pattern.
    pub hostname: String,
    /// An internal endpoint's port (absent for a public one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<u16>,
    /// A `tcp://` endpoint's port on the edges (its `tcp_ports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_port: Option<u16>,
    /// The URL shown to users.
    pub url: String,
    /// The endpoint id policies and events see (`ses_…/N`, the holding edge's).
    pub id: String,
    /// Whether the member enabled pooling.
    pub pooling: bool,
    /// The agent's policy layers, in order.
    pub policies: Vec<PolicySource>,
    /// The digest of the policy the holding edge runs for it (its `edge.yaml` layers and
    /// these): forwarded requests name it, and that edge hands them only to a member running
    /// the same one.
    pub policy_id: String,
}

/// Why a stored spec cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not the JSON this edge writes.
    #[error("unreadable member spec: {0}")]
    Json(#[from] serde_json::Error),
    /// A field out of range.
    #[error("member spec: {0}")]
    Field(&'static str),
}

impl MemberSpec {
    /// The key of the endpoint it describes, owned by `owner`.
    pub fn key(&self, owner: TokenId) -> Result<EndpointKey, SpecError> {
        let scheme = Scheme::parse(&self.scheme).ok_or(SpecError::Field("unknown scheme"))?;
        let hostname =
            Hostname::parse(&self.hostname).map_err(|_| SpecError::Field("invalid hostname"))?;
        Ok(match (self.internal_port, self.tcp_port) {
            (Some(port), _) => EndpointKey {
                scheme,
                hostname,
                binding: Binding::Internal { owner, port },
            },
            (None, Some(port)) if scheme == Scheme::Tcp => EndpointKey::tcp(hostname, port),
            (None, Some(_)) => return Err(SpecError::Field("a port on a scheme other than tcp")),
            (None, None) => EndpointKey::public(scheme, hostname),
        })
    }

    /// The policy digest as bytes.
    pub fn policy_digest(&self) -> Result<[u8; 32], SpecError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.policy_id, &mut out)
            .map_err(|_| SpecError::Field("policy_id is not 32 bytes of hex"))?;
        Ok(out)
    }

    /// Reads a spec the store returned.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        Ok(serde_json::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::authtoken::digest;

    #[test]
    fn specs_name_their_endpoint_and_internal_keys_their_owner() {
        let owner = TokenId::from_digest(digest("token"));
        let spec = MemberSpec {
            scheme: "https".into(),
            hostname: "api.internal".into(),
            internal_port: Some(8443),
            tcp_port: None,
            url: "https://api.internal:8443".into(),
            id: "ses_1/0".into(),
            pooling: false,
            policies: Vec::new(),
            policy_id: hex::encode([9u8; 32]),
        };
        let back = MemberSpec::parse(&serde_json::to_string(&spec).expect("json")).expect("spec");
        let key = back.key(owner).expect("key");
        assert_eq!(
            store_key(&key),
            format!("internal:{}:https://api.internal:8443", owner.hex())
        );
        assert_eq!(back.policy_digest().expect("digest"), [9u8; 32]);
        let public = EndpointKey::public(Scheme::Http, Hostname::parse("a.example").expect("h"));
        assert_eq!(store_key(&public), "http://a.example");
        assert!(MemberSpec::parse("{}").is_err());
        let tcp = MemberSpec {
            scheme: "tcp".into(),
            hostname: "localhost".into(),
            internal_port: None,
            tcp_port: Some(20001),
            ..back
        };
        let key = tcp.key(owner).expect("tcp key");
        assert_eq!(store_key(&key), "tcp://localhost:20001");
        let wrong = MemberSpec {
            scheme: "https".into(),
            ..tcp
        };
        assert!(wrong.key(owner).is_err());
    }
}
