//! The public side of the edge, in the order a request meets it: the HTTP/1.x server that hands
//! requests to pingora ([`h1`]), the pingora phase spine ([`proxy`]), the head guard, the edge's
//! own answers, the endpoints a request passes (its public endpoint, then forward-internal
//! targets) and each one's request policy, the forwarding headers, and the responses the edge
//! writes itself.

pub(crate) mod conn;
pub(crate) mod ctx;
pub(crate) mod endpoint_chain;
pub(crate) mod forwarding;
pub(crate) mod guard;
pub(crate) mod h1;
pub(crate) mod local;
pub(crate) mod proxy;
pub(crate) mod request_policy;
pub(crate) mod respond;
pub(crate) mod state;
