//! The public listeners' HTTP/1.x server: hyper reads and writes HTTP/1 (request trailers kept,
//! response trailers written), and pingora's proxy runs every phase of `EdgeProxy` on each
//! request as a custom downstream session, as it does on its own sessions.
//!
//! In a connection's order: [`dispatch`] (h2 and h2c to pingora's HTTP/2 server, the rest
//! here), [`h2c`] (a preface-opened connection dressed as ALPN h2), [`connection`] (hyper's
//! connection and the proxy futures, one task), [`head`] (heads between hyper and pingora),
//! [`session`] (the custom session pingora's proxy uses), [`pipe`] (the response on its way
//! from the session to hyper).

pub(crate) mod connection;
pub(crate) mod dispatch;
pub(crate) mod h2c;
pub(crate) mod head;
pub(crate) mod pipe;
pub(crate) mod session;
