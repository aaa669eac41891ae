//! Glue between the proxy and the `sluice-policy` engine: compiling endpoint policies when
//! they come online, the operator's policies, running a request's phases inside pingora's
//! (with what on_tcp_connect left on an HTTPS connection), and reading a body for the actions
//! that need it.

pub(crate) mod body;
pub(crate) mod compile;
pub(crate) mod connections;
pub(crate) mod heads;
pub(crate) mod operator;
pub(crate) mod run;
pub(crate) mod vaults;
