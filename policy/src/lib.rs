//! Sluice's traffic-policy engine: ngrok-compatible `traffic-policy.yml` documents compiled once
//! into an immutable [`Engine`], evaluated per request without networking. The only waiting is
//! [`Engine::on_http_request_async`] asking the caller's [`KeySource`] for JWKS documents, its
//! [`Authenticator`] for sign-in verdicts (oauth, openid-connect), its [`HttpCaller`] for
//! http-request's calls and its [`RateLimitStore`] for shared rate-limit counts.
//!
//! ```text
//! Policy::parse(yaml, "traffic-policy.yml")?  ─┐
//! Shorthand { basic_auth, .. }.compile()?      ├─> Engine::new(layers)  (Arc, Send + Sync)
//!                                              ─┘
//! per connection: let mut st = engine.new_request(conn, endpoint);
//!              engine.on_tcp_connect(&mut st).await  -> ConnectVerdict (then st.set_tls(..))
//! per request: let mut st = engine.new_request(conn, endpoint);  (or the connection's state)
//!              engine.on_http_request(&mut st, &mut req)   -> RequestVerdict
//!              engine.on_http_response(&mut st, &req, &mut res) -> ResponseVerdict
//!              st.take_body_transform()                    -> compress-response streaming
//! ```
//!
//! ```
//! use sluice_policy::{ConnInfo, EndpointInfo, Engine, Policy, RequestVerdict};
//! use std::time::SystemTime;
//!
//! let policy = Policy::parse(
//!     "on_http_request:\n  - expressions: [\"req.url.path.startsWith('/admin')\"]\n    actions: [{type: deny}]\n",
//!     "traffic-policy.yml",
//! )?;
//! let engine = Engine::new(vec![policy]);
//! let mut conn = ConnInfo::new("203.0.113.7:50000".parse()?, 443, SystemTime::now());
//! conn.tls.version = Some("1.3".into());
//! let mut st = engine.new_request(conn, EndpointInfo::default());
//! let (mut req, ()) = http::Request::get("/admin/users").body(())?.into_parts();
//! match engine.on_http_request(&mut st, &mut req) {
//!     RequestVerdict::Respond(res) => assert_eq!(res.status(), 403),
//!     _ => unreachable!("denied"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The crate's tree, in the order a policy meets it
//!
//! ```text
//! load/      text -> Policy: node (YAML/JSON with positions), check (located errors, typed
//!            fields), parse (Policy::parse, rules), shorthand (the agent's flags), errors
//! cel/       expressions: names (what they may name), expr, template (${}), vars (one
//!            request's variables), functions/ (ngrok's macros, a file per group), fast (native
//!            common shapes)
//! run/       the engine and one request: facts, state (+ scratch for actions' own data),
//!            engine (the phases), outcome, services, body, dry_run
//! actions/   mod.rs the registry (one line per `type:`), action.rs / config.rs what every
//!            action implements and reads its config with, then one file per action
//! ```
//!
//! Imports point one way, with no loop between files: actions use load, cel and run's state;
//! load's parser and run's engine use the registry. The root files are the vocabulary all of
//! them share with the edge: [`Phase`], [`RequestHead`]/[`ResponseHead`], [`KeySource`],
//! [`RateLimitStore`] (rate-limit buckets shared by several edges),
//! [`InternalEndpoints`] (forward-internal's targets), [`EdgeFacts`] (what the edge knows
//! beyond a request: region, IP databases, the user-agent parser), [`identity`], [`codes`],
//! [`jws`].
//!
//! # Public API
//!
//! Everything the edge, the agent and the test kit use is re-exported here, and nothing else
//! is public. Four modules are public because their users call them by module, and each is
//! one coherent piece of the edge's work rather than engine internals:
//! [`codes`] (the error codes and the responses the edge builds with them), [`identity`]
//! (the sign-in interface the edge implements), [`jws`] (token verification the edge's
//! OpenID Connect check shares with jwt-validation) and [`dry_run`] (`agent policy test`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actions;
mod cel;
mod client_cert;
pub mod codes;
mod counters;
mod dns;
mod forward;
mod head;
pub mod identity;
mod intel;
pub mod jws;
mod keys;
mod load;
mod outbound;
mod phase;
mod run;
mod secrets;
#[cfg(test)]
mod testutil;
mod tls;
mod user_agent;

pub use client_cert::{
    CertExtension, ClientCertError, ClientCertificate, DistinguishedName, SubjectAltNames,
};
pub use counters::{CountFuture, RateLimitCount, RateLimitHit, RateLimitStore};
pub use dns::is_dns_name;
pub use forward::{ForwardError, InternalEndpoints, InternalUrl, MAX_FORWARD_DEPTH};
pub use head::{RequestHead, ResponseHead};
pub use identity::{
    Authenticator, Identity, LoginConfig, LoginFuture, LoginOutcome, LoginRequest, Provider,
};
pub use intel::{AsInfo, EdgeFacts, Geo, IpIntel, IpSupplies, Location, Supplies, DEFAULT_REGION};
pub use keys::{parse_jwks, JwkSet, JwksError, KeyError, KeySource, KeysFuture};
pub use load::errors::{PolicyError, PolicyErrors, Pos};
pub use load::parse::Policy;
pub use load::shorthand::Shorthand;
pub use outbound::{Answer, Call, CallError, CallFuture, HttpCaller, MAX_RESPONSE_BODY};
pub use phase::Phase;
pub use run::body::BodyTransform;
pub use run::dry_run;
pub use run::engine::{ConnectVerdict, Engine, RequestVerdict, ResponseVerdict};
pub use run::facts::{Clock, ConnInfo, EndpointInfo, TlsInfo};
pub use run::handshake::{Handshake, HandshakeFuture};
pub use run::outcome::{ActionOutcome, Decision, TraceEntry};
pub use run::state::{ConnectionPhase, RequestState};
pub use secrets::{
    LoadEnv, LoginApp, LoginApps, Secret, SecretError, SecretMap, SecretSource, REDACTED,
};
pub use tls::{MtlsStrategy, MutualTls, ServerIdentity, TerminateTls, TlsVersion};
pub use user_agent::{UserAgentDataError, UserAgentParser};
