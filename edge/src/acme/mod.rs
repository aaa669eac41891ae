//! Built-in ACME (RFC 8555) client: HTTP-01 challenges served by the edge itself.

pub mod challenges;
pub mod config;
pub mod manager;
pub mod on_demand;
pub mod order;
pub mod store;
