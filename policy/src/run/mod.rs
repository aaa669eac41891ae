//! Running: the engine evaluates a request's phases against the compiled policies and keeps
//! the request's state; the dry run does the same offline for one request.

pub mod dry_run;
pub(crate) mod engine;
pub(crate) mod state;
