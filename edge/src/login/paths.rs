//! The reserved paths of the sign-in flow, on every endpoint and on the auth host.

/// Where the provider sends the browser back (register `<endpoint URL>` + this).
pub const CALLBACK_PATH: &str = "/_sluice/oauth/callback";
/// Ends the session.
pub const LOGOUT_PATH: &str = "/_sluice/oauth/logout";
/// On the auth host: where an endpoint sends the browser with its sealed sign-in request.
pub const START_PATH: &str = "/_sluice/oauth/start";
/// On an endpoint: where the auth host sends the browser with a one-time code.
pub const SESSION_PATH: &str = "/_sluice/oauth/session";
