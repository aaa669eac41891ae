//! The operator's control plane: credentials, reserved names, agent sessions and cloud
//! endpoints, changed at run time through the admin API (docs/operating.md).
//!
//! - `model.rs`: the API's JSON types, ngrok-shaped;
//! - `api.rs`: [`api::Admin`], the operations the listener calls, and their typed errors;
//! - `plane.rs`: [`plane::ControlPlane`], those operations over the store and the agent side;
//! - `view.rs`: how the edge's state reads in the API.

pub mod api;
pub mod model;
pub(crate) mod plane;
mod view;
