//! One request, from the edge's QUIC stream to the endpoint's upstream and back, in the order
//! it meets them: `stream.rs` reads the request's frames and writes the response's,
//! `forwarder.rs` rewrites the request for its handler,
//! `observe.rs` lets watchers see it, `handler.rs` picks what answers the endpoint — a pooled
//! client (`upstream_client.rs`, `upstream_tls.rs`), the file server (`file_server.rs`) or an
//! in-process service (`app_service.rs`) — and `location_rewrite.rs` fixes redirects on the
//! way back. `body.rs` is the body type every hop shares. A `tcp://` or `tls://` endpoint's
//! connection takes `connection.rs` instead: a TCP upstream, its bytes both ways.

pub(crate) mod app_service;
pub mod body;
pub(crate) mod connection;
pub(crate) mod file_server;
pub(crate) mod forwarder;
pub(crate) mod handler;
pub(crate) mod location_rewrite;
pub mod observe;
pub(crate) mod stream;
pub(crate) mod upstream_client;
pub(crate) mod upstream_tls;
