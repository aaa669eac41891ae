//! What the engine reports about a request: each action's decision, and the optional trace.

use crate::phase::Phase;

/// What an action decided, for the log event and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A check passed (auth ok, ip allowed, under the limit).
    Allow,
    /// A check failed: the request was (or, with `enforce: false`, would have been) refused.
    Deny,
    /// basic-auth asked for credentials (no or bad `Authorization`).
    Challenge,
    /// rate-limit found the bucket full.
    RateLimited,
    /// A CORS preflight was let through basic-auth unauthenticated.
    Preflight,
    /// The action answered the request itself (custom-response, redirect).
    Respond,
    /// The action handed the request to an internal endpoint (forward-internal).
    Forward,
    /// The action closed the client's connection (close-connection).
    Close,
    /// The action changed the request or response (headers, url, vars, compression).
    Modify,
    /// Nothing to do (e.g. redirect to the same URL, no acceptable encoding).
    Skip,
    /// The action failed at runtime (interpolation error) and answered with an error.
    Error,
}

/// One action run on this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The phase it ran in.
    pub phase: Phase,
    /// Its type, e.g. `basic-auth`.
    pub action: &'static str,
    /// What it decided.
    pub decision: Decision,
    /// False when `enforce: false` made a failed check record-only.
    pub enforced: bool,
}

/// One line of the optional trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// The phase.
    pub phase: Phase,
    /// The rule: its name, else its place (`traffic-policy.yml: on_http_request[1]`).
    pub rule: String,
    /// What happened: `matched`, `skipped: ...`, or an action and its decision.
    pub event: String,
}
