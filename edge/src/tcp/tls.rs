//! TLS endpoints (`tls://NAME.DOMAIN`): the edge's HTTPS port hands a connection whose SNI
//! names one here before any TLS is done, and it is carried to the agent like a TCP
//! endpoint's connection, ClientHello included, so the agent's upstream terminates TLS with
//! its own certificate. A name an HTTPS endpoint with on_tcp_connect rules holds runs them
//! first (https.rs).

use super::client::Client;
use super::connection;
use super::https::HttpsConnect;
use super::state::TcpState;
use crate::addrs::UNSPECIFIED;
use crate::tls::front::{
    PassthroughTarget, RawTlsConn, SniDecision, SniRoutes, SniTable, TlsOpening,
};
use crate::tunnel::routes::RouteSet;
use futures_util::future::BoxFuture;
use sluice_proto::scheme::Scheme;
use std::sync::Arc;

/// The HTTPS port's router: names a TLS endpoint holds pass through to its agent; names of
/// HTTPS endpoints with on_tcp_connect rules run them before the handshake; the table's names
/// (set by the edge's embedder) next; everything else is the edge's HTTPS.
pub struct TlsEndpoints {
    state: Arc<TcpState>,
    table: Arc<SniTable>,
}

impl TlsEndpoints {
    /// Routes by the registry in `state`, then by `table`.
    pub fn new(state: Arc<TcpState>, table: Arc<SniTable>) -> Self {
        Self { state, table }
    }
}

impl SniRoutes for TlsEndpoints {
    fn decide(&self, opening: &TlsOpening<'_>) -> SniDecision {
        let Some(sni) = opening.sni else {
            return self.table.decide(opening);
        };
        let routes = &self.state.routes;
        if let Some(set) = routes.lookup(Scheme::Tls, sni) {
            return SniDecision::Passthrough(Arc::new(Passthrough {
                set,
                state: self.state.clone(),
            }));
        }
        // An HTTPS endpoint with on_tcp_connect rules runs them on the connection first.
        let with_rules = routes
            .lookup(Scheme::Https, sni)
            .and_then(|set| set.pick())
            .filter(|route| {
                route
                    .policy
                    .as_ref()
                    .is_some_and(|e| e.has_tcp_connect_rules())
            });
        match with_rules {
            Some(route) => SniDecision::Connect(Arc::new(HttpsConnect {
                route,
                state: self.state.clone(),
            })),
            None => self.table.decide(opening),
        }
    }
}

/// One connection's way to a TLS endpoint's member.
struct Passthrough {
    set: Arc<RouteSet>,
    state: Arc<TcpState>,
}

impl PassthroughTarget for Passthrough {
    fn serve(&self, conn: RawTlsConn) -> BoxFuture<'static, ()> {
        let (set, state) = (self.set.clone(), self.state.clone());
        Box::pin(async move {
            let local = conn.local.unwrap_or(UNSPECIFIED);
            let peer = conn.client.unwrap_or(UNSPECIFIED);
            let client = Client::Tls(conn.stream);
            let sni = Some(conn.sni);
            connection::serve(client, peer, local, sni, set.pick(), &state).await;
        })
    }
}
