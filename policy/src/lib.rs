//! Sluice's traffic-policy engine: ngrok-compatible `traffic-policy.yml` documents compiled once
//! into an immutable [`Engine`], evaluated per request without networking or async.
//!
//! ```text
//! Policy::parse(yaml, "traffic-policy.yml")?  ─┐
//! Shorthand { basic_auth, .. }.compile()?      ├─> Engine::new(layers)  (Arc, Send + Sync)
//!                                              ─┘
//! per request: let mut st = engine.new_request(conn, endpoint);
//!              engine.on_http_request(&mut st, &mut req)   -> RequestVerdict
//!              engine.on_http_response(&mut st, &req, &mut res) -> ResponseVerdict
//!              st.take_body_transform()                    -> compress-response streaming
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actions;
mod check;
pub mod codes;
pub mod compress;
pub mod dry_run;
mod engine;
mod error;
mod expr;
mod fast;
mod functions;
mod head;
mod node;
mod phase;
mod policy;
mod shorthand;
mod state;
#[cfg(test)]
mod testutil;
mod values;
mod vars;

pub use compress::BodyTransform;
pub use engine::{Engine, RequestVerdict, ResponseVerdict};
pub use error::{PolicyError, PolicyErrors, Pos};
pub use head::{RequestHead, ResponseHead};
pub use phase::Phase;
pub use policy::Policy;
pub use shorthand::Shorthand;
pub use state::{
    ActionOutcome, Clock, ConnInfo, Decision, EndpointInfo, RequestState, SystemClock, TraceEntry,
};
