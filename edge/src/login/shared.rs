//! [`SharedSignIn`]: the sign-in state several edges share (a cluster's store, implemented in
//! `crate::cluster::sign_in`): logouts, and the auth host's one-time codes. A single edge has
//! none and keeps both in its own memory.

use std::future::Future;
use std::pin::Pin;

/// What the [`SharedSignIn`] calls return.
pub type SharedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The store behind the sign-in state of a cluster. Every call is bounded in time; a store
/// that does not answer is reported as documented on each call, never as an error the browser
/// sees.
pub trait SharedSignIn: Send + Sync {
    /// Tells every edge that `session_id` ended, until `until` (Unix seconds). This edge
    /// refuses it already; when the store does not answer, it is told again later.
    fn revoke<'a>(&'a self, session_id: &'a str, until: u64) -> SharedFuture<'a, ()>;

    /// Keeps `sealed` under the code id `id` until the code expires, for one
    /// [`SharedSignIn::take_code`] with the secret whose digest is `secret_digest`. False when
    /// the store did not take it.
    fn keep_code<'a>(
        &'a self,
        id: &'a str,
        secret_digest: &'a str,
        sealed: String,
    ) -> SharedFuture<'a, bool>;

    /// The value kept under `id`, removed at once so no edge can have it again, when
    /// `secret_digest` is the one it was kept with; `None` when it is unknown, taken, expired
    /// or the secret is wrong (then it stays for its owner), or when the store did not answer.
    fn take_code<'a>(
        &'a self,
        id: &'a str,
        secret_digest: &'a str,
    ) -> SharedFuture<'a, Option<String>>;
}
