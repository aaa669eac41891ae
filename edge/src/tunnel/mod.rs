//! The agent side of the edge: QUIC listener, agent sessions, and the connector that turns a
//! proxied request into a QUIC stream.

pub mod admission;
pub mod connector;
pub mod listener;
pub mod reset_key;
pub mod session;
