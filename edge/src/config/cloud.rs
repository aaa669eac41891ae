//! [`CloudEndpointSpec`]: an endpoint the edge holds itself, with a traffic policy and no
//! agent. `edge.yaml`'s `cloud_endpoints:` feeds it today; the admin API will feed the same
//! type.

use sluice_proto::control::{PolicySource, Secret};

/// A cloud endpoint as defined, before it is validated against the running edge (URL under
/// the domain, authtoken known, policy able to answer) and brought online.
#[derive(Debug, Clone)]
pub struct CloudEndpointSpec {
    /// Where it was defined, for messages (`edge.yaml cloud_endpoints[0]`).
    pub origin: String,
    /// Its URL with the scheme: `https://www.example.com`, `http://app.example.com`, or an
    /// internal one, `https://api.internal:8443`.
    pub url: String,
    /// The traffic policy, which must be able to answer (it has no agent behind it).
    pub policy: PolicySource,
    /// Whether agents of the same authtoken with `--pooling-enabled` may share its URL.
    pub pooling_enabled: bool,
    /// The authtoken it belongs to: whose internal endpoints it forwards to and whose pools it
    /// joins. Optional when the edge accepts exactly one authtoken.
    pub authtoken: Option<Secret>,
}
