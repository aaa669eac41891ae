//! What answers one endpoint's requests: a pooled client to an HTTP(S) upstream, the static
//! file server, an in-process application service, or, for a `tcp://` or `tls://` endpoint,
//! the TCP address its connections go to. Built once per agent run.

use super::app_service::AppService;
use super::file_server::{FileServer, FileServerError};
use super::upstream_client::{self, UpstreamClient};
use crate::config::agent::AgentConfig;
use crate::config::endpoint::{EndpointConfig, ProxyProtocol};
use crate::config::upstream::Upstream;
use crate::trust::TlsError;

/// Why an endpoint's handler could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// TLS settings for an `https://` upstream (e.g. an unreadable CA file).
    #[error("upstream {upstream}: {source}")]
    Tls {
        /// The upstream.
        upstream: String,
        /// The cause.
        source: TlsError,
    },
    /// A `file://` directory that does not exist.
    #[error(transparent)]
    Files(#[from] FileServerError),
}

/// The handler for one endpoint.
pub enum Handler {
    /// Forward to an HTTP(S) upstream.
    Http(Box<UpstreamClient>),
    /// Serve files.
    Files(FileServer),
    /// Call the application.
    App(AppService),
    /// Carry connections to a TCP address.
    Tcp(TcpTarget),
}

/// Where a `tcp://` or `tls://` endpoint's connections go.
#[derive(Debug, Clone)]
pub struct TcpTarget {
    /// `host:port`.
    pub address: String,
    /// The PROXY protocol header written first, if any.
    pub proxy_protocol: Option<ProxyProtocol>,
    /// How long connecting may take.
    pub connect_timeout: std::time::Duration,
}

/// An endpoint with its handler.
pub struct Route {
    /// The endpoint's settings.
    pub config: EndpointConfig,
    /// What answers its requests.
    pub handler: Handler,
}

/// Builds one route per endpoint, in config order (the edge addresses them by index).
pub fn routes(config: &AgentConfig) -> Result<Vec<Route>, HandlerError> {
    config
        .endpoints
        .iter()
        .map(|ep| {
            let handler = match &ep.upstream {
                Upstream::Http { .. } => Handler::Http(Box::new(
                    upstream_client::build(
                        ep.upstream_protocol,
                        &ep.upstream_tls_verify,
                        config.upstream_connect_timeout,
                    )
                    .map_err(|source| HandlerError::Tls {
                        upstream: ep.upstream.to_string(),
                        source,
                    })?,
                )),
                Upstream::Files { root } => Handler::Files(FileServer::new(root)?),
                Upstream::Service(app) => Handler::App(app.clone()),
                Upstream::Tcp { address } => Handler::Tcp(TcpTarget {
                    address: address.to_string(),
                    proxy_protocol: ep.proxy_protocol,
                    connect_timeout: config.upstream_connect_timeout,
                }),
            };
            Ok(Route {
                config: ep.clone(),
                handler,
            })
        })
        .collect()
}
