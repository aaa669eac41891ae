//! The interface through which rate-limit counts in a store shared by several edges: the edge
//! runs the decision there (network I/O); this crate only asks and reads the answer. Without
//! one, each action counts in its own memory.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// One request to count in a rate-limit bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitHit {
    /// The action's `name`.
    pub name: String,
    /// Where the action sits in its policy document (e.g.
    /// `on_http_request[0].actions[1].config`): two actions of one endpoint count apart even
    /// with the same `name`.
    pub site: String,
    /// The bucket: the action's `bucket_key` values joined with U+001F (empty without one).
    pub bucket: String,
    /// Requests the bucket holds per window.
    pub capacity: u64,
    /// The window (`rate`).
    pub window: Duration,
}

/// What the store decided for a [`RateLimitHit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitCount {
    /// Counted: the request goes on.
    Allowed,
    /// The bucket is full: 429 with this `retry-after` (whole seconds, at least 1).
    Limited {
        /// Seconds until one more request fits.
        retry_after_secs: u64,
    },
    /// The store could not decide (unreachable): the action counts in its own memory, as on
    /// an edge without a store.
    Local,
}

/// What [`RateLimitStore::hit`] returns.
pub type CountFuture<'a> = Pin<Box<dyn Future<Output = RateLimitCount> + Send + 'a>>;

/// Rate-limit buckets in a store, given to the engine with
/// [`Engine::with_rate_limit_store`](crate::Engine::with_rate_limit_store). Only the `_async`
/// phases use it; each decision is one wait on it.
pub trait RateLimitStore: Send + Sync {
    /// Counts `hit` in its bucket when it fits, and says whether it did.
    fn hit(&self, hit: RateLimitHit) -> CountFuture<'_>;
}
