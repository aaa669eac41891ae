//! Built-in ACME (RFC 8555) client: HTTP-01 challenges served by the edge itself.

pub mod challenges;
