//! The operator's control plane: credentials, reserved names, agent sessions and cloud
//! endpoints, changed at run time through the admin API (docs/operating.md).
//!
//! - `model.rs`: the API's JSON types, ngrok-shaped;
//! - `api.rs`: [`api::Admin`], the operations the listener calls, and their typed errors;
//! - `plane.rs`: [`plane::ControlPlane`], those operations over the store and the agent side;
//! - `view.rs`: how the edge's state reads in the API;
//! - `listener.rs`: [`listener::serve`], the HTTP side: `routes.rs` the operations' table,
//!   `auth.rs` the bearer admin tokens and the failure limit, `reply.rs` the JSON answers;

pub mod api;
pub mod auth;
pub mod listener;
pub mod model;
#[cfg(test)]
mod openapi_tests;
pub(crate) mod plane;
mod reply;
mod routes;
mod view;
