//! The operator's control plane: credentials, reserved names, agent sessions and cloud
//! endpoints, changed at run time through the admin API (docs/operating.md).
//!
//! - `model.rs`: the API's JSON types, ngrok-shaped;
//! - `api.rs`: [`api::Admin`], the operations the listener calls, and their typed errors.

pub mod api;
pub mod model;
