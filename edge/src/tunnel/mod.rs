//! The agent side of the edge, in the order an agent meets it: the QUIC listener, a session's
//! handshake and admission (credentials, `bind:` rules, reservations, limits), the directory of
//! live sessions, the route registry it claims hostnames in, and
//! the connector that turns a proxied request into a QUIC stream on its session.

pub(crate) mod acl;
pub(crate) mod admission;
pub(crate) mod admit;
pub(crate) mod authtoken;
pub(crate) mod connector;
pub(crate) mod credentials;
pub(crate) mod directory;
pub(crate) mod exchange;
pub(crate) mod handle;
pub(crate) mod listener;
pub(crate) mod liveness;
pub(crate) mod namespace;
pub(crate) mod peers;
pub(crate) mod ports;
pub(crate) mod reservations;
pub(crate) mod reset_key;
pub(crate) mod routes;
pub(crate) mod session;
pub(crate) mod state;
pub(crate) mod stream;
pub(crate) mod unreachable;
