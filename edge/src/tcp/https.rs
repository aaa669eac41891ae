//! on_tcp_connect of HTTPS endpoints, run once per connection at the HTTPS port before the
//! edge's handshake: terminate-tls there sets the handshake's versions, certificate and mutual
//! TLS, and what the phase leaves (variables, the client's certificate) reaches every request
//! on the connection through [`ConnectionPhases`].

use super::state::TcpState;
use super::terminate::{facts, server_config};
use crate::addrs::UNSPECIFIED;
use crate::policy::connections::ConnectionPhases;
use crate::tls::front::{ConnectRules, FrontHandshake, TlsOpening};
use crate::tls::http_alpn;
use crate::tls::resolver::CertResolver;
use crate::tls::stream::Keep;
use crate::tunnel::routes::Route;
use futures_util::future::BoxFuture;
use sluice_policy::{ConnInfo, ConnectVerdict, Handshake, HandshakeFuture, TerminateTls};
use std::sync::Arc;
use std::time::SystemTime;
use tracing::info;

/// One HTTPS endpoint member's on_tcp_connect, for a connection whose SNI names it.
pub(crate) struct HttpsConnect {
    pub route: Arc<Route>,
    pub state: Arc<TcpState>,
}

impl ConnectRules for HttpsConnect {
    fn run<'a>(
        &'a self,
        opening: TlsOpening<'a>,
        handshake: &'a mut FrontHandshake,
    ) -> BoxFuture<'a, Option<Keep>> {
        Box::pin(async move {
            let engine = self.route.policy.as_ref()?;
            let client = opening.client.unwrap_or(UNSPECIFIED);
            let local = opening.local.unwrap_or(UNSPECIFIED);
            let mut conn = ConnInfo::new(client, local.port(), SystemTime::now());
            conn.server_ip = opening.local.map(|a| a.ip());
            conn.tls.sni = opening.sni.map(str::to_string);
            let mut st = engine.new_request(conn, self.route.endpoint.clone());
            let mut edge = EdgeHandshake {
                front: &mut *handshake,
                edge_certs: self.state.edge_certs.clone(),
            };
            let verdict = engine.on_tcp_connect_tls(&mut st, &mut edge).await;
            if !matches!(verdict, ConnectVerdict::Continue { .. }) {
                info!(client = %client, sni = ?opening.sni, "connection closed by the endpoint's on_tcp_connect rules");
                return None;
            }
            if !handshake.finished() {
                let tls = handshake.finish(None).await.ok()?;
                st.set_tls(facts(tls));
            }
            let phases: &Arc<ConnectionPhases> = &self.state.connections;
            let id = &self.route.endpoint.id;
            let registration = phases.register(client, local, id, st.connection_phase());
            Some(Box::new(registration) as Keep)
        })
    }
}

/// terminate-tls on an HTTPS connection: the front's handshake with the action's settings
/// and the HTTP protocols.
struct EdgeHandshake<'h> {
    front: &'h mut FrontHandshake,
    edge_certs: Option<Arc<CertResolver>>,
}

impl Handshake for EdgeHandshake<'_> {
    fn terminate<'a>(&'a mut self, settings: &'a TerminateTls) -> HandshakeFuture<'a> {
        Box::pin(async move {
            let mut config =
                server_config(settings, self.edge_certs.clone()).map_err(|e| e.to_string())?;
            config.alpn_protocols = http_alpn();
            let tls = self.front.finish(Some(Arc::new(config))).await;
            tls.map(facts).map_err(|e| e.to_string())
        })
    }
}
