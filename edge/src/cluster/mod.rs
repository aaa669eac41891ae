//! Several edges as one service (docs/cluster.md): the shared store's configuration
//! (`config.rs`) and this edge's endpoint claims in it (`claims.rs`).

pub mod claims;
pub mod config;
