//! [`PublicUrls`]: how endpoints are reached from outside (the domain, the public ports) and
//! the scheme an endpoint gets when the agent does not name one. Both sides of the edge read it.

use crate::hostname::Hostname;
use sluice_policy::EndpointInfo;
use sluice_proto::scheme::Scheme;

/// The edge's public addresses, as endpoint URLs show them.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    /// Base domain.
    pub domain: Hostname,
    /// Port shown in public http:// URLs (omitted when 80).
    pub http_port: u16,
    /// Port shown in public https:// URLs (omitted when 443); `None` without an HTTPS
    /// listener. Endpoints are https:// by default when it is set.
    pub https_port: Option<u16>,
}

impl PublicUrls {
    /// The scheme endpoints get when the agent does not ask for one: https when the edge has
    /// an HTTPS listener (as ngrok does), else http.
    pub fn default_scheme(&self) -> Scheme {
        match self.https_port {
            Some(_) => Scheme::Https,
            None => Scheme::Http,
        }
    }

    /// The public listener's port for `scheme` (TLS endpoints share the HTTPS port); 0 for
    /// TCP, whose endpoints each have a port of their own ([`PublicUrls::tcp_url`]).
    pub fn port_for(&self, scheme: Scheme) -> u16 {
        match scheme {
            Scheme::Https | Scheme::Tls => self.https_port.unwrap_or(443),
            Scheme::Http => self.http_port,
            Scheme::Tcp => 0,
        }
    }

    /// The public URL for `host` over `scheme`, without the port when it is the default one.
    pub fn public_url(&self, host: &Hostname, scheme: Scheme) -> String {
        match (scheme, self.port_for(scheme)) {
            (Scheme::Http, 80) | (Scheme::Https | Scheme::Tls, 443) => {
                format!("{}://{host}", scheme.as_str())
            }
            (_, port) => format!("{}://{host}:{port}", scheme.as_str()),
        }
    }

    /// The URL of the TCP endpoint on the edge's `port`: `tcp://DOMAIN:PORT`.
    pub fn tcp_url(&self, port: u16) -> String {
        format!("tcp://{}:{port}", self.domain)
    }

    /// The `endpoint.*` facts policies see for `host` served over `scheme`.
    pub fn endpoint_info(&self, id: String, host: &Hostname, scheme: Scheme) -> EndpointInfo {
        EndpointInfo {
            id,
            url: self.public_url(host, scheme),
            host: host.to_string(),
            port: self.port_for(scheme),
            protocol: scheme.as_str().to_string(),
        }
    }
}
