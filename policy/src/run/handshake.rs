//! terminate-tls's handshake, made where the action runs: the edge's side of it ([`Handshake`])
//! and what became of it, which the engine keeps for the action to record.

use crate::run::facts::TlsInfo;
use crate::tls::TerminateTls;
use std::future::Future;
use std::pin::Pin;

/// What [`Handshake::terminate`] returns.
pub type HandshakeFuture<'a> = Pin<Box<dyn Future<Output = Result<TlsInfo, String>> + Send + 'a>>;

/// The edge's side of terminate-tls: finishes the TLS handshake the client started, with the
/// action's settings, while on_tcp_connect waits. The rules after the action then read the
/// handshake's facts (`conn.tls.*`, the client certificate under mutual TLS).
pub trait Handshake: Send {
    /// Finishes the handshake with `settings`: its facts, or why it failed (the engine then
    /// closes the connection).
    fn terminate<'a>(&'a mut self, settings: &'a TerminateTls) -> HandshakeFuture<'a>;
}

/// What became of the handshake a terminate-tls asked for: the engine keeps it in the
/// connection's state and runs the action again, which records it.
#[derive(Debug)]
pub(crate) enum Handshaken {
    /// Finished; the facts are in the state's `conn.tls`.
    Done,
    /// Failed, for this reason.
    Failed(String),
    /// Nobody to make it (offline evaluation, the dry run): the settings are reported in the
    /// verdict instead.
    Deferred,
}
