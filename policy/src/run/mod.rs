//! Running: the engine, the state of one request as it runs, and the offline dry run.
//!
//! The engine evaluates a request's phases against the compiled policies, keeping what it
//! learns in the request's state; the dry run does the same offline for one request.
//!
//! Reading order: `facts` (what the edge gives) → `state` (one request as it runs, with
//! `scratch` for the actions' own data) → `handshake` (terminate-tls's, made by the edge) →
//! `engine` (the phases) → `outcome` (what the engine reports) → `dry_run`.

pub(crate) mod body;
pub mod dry_run;
pub(crate) mod engine;
pub(crate) mod facts;
pub(crate) mod handshake;
pub(crate) mod outcome;
pub(crate) mod replace;
pub(crate) mod scratch;
pub(crate) mod services;
pub(crate) mod sse;
pub(crate) mod state;

#[cfg(test)]
mod tests;
