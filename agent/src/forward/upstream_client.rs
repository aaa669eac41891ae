//! [`UpstreamClient`]: the pooled hyper client one endpoint uses to reach its HTTP(S)
//! upstream, built for the endpoint's protocol (HTTP/1.1, or HTTP/2 — h2c with prior knowledge
//! for `http://`, ALPN `h2` for `https://`) and certificate verification.

use super::body::ProxyBody;
use super::upstream_tls;
use crate::config::endpoint::{UpstreamProtocol, UpstreamTlsVerify};
use crate::trust::TlsError;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A keep-alive pool to one endpoint's upstream.
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, ProxyBody>;

/// Builds the client for an endpoint.
pub fn build(
    protocol: UpstreamProtocol,
    verify: &UpstreamTlsVerify,
    connect_timeout: Duration,
) -> Result<UpstreamClient, TlsError> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    // The https connector hands `http://` URIs to the plain connector.
    connector.enforce_http(false);
    let tls = upstream_tls::client_config(verify)?;
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = match protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(connector),
        UpstreamProtocol::Http2 => builder.enable_http2().wrap_connector(connector),
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.pool_idle_timeout(Duration::from_secs(90));
    if protocol == UpstreamProtocol::Http2 {
        // Prior knowledge: no HTTP/1.1 upgrade dance, as gRPC servers expect.
        client.http2_only(true);
    }
    Ok(client.build(connector))
}
