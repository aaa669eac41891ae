//! How links and their streams end: [`Closed`] for a link, [`StreamError`] for a stream.

use bytes::Bytes;
use std::fmt;

/// How a link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// This side closed it.
    Local,
    /// The peer closed it with a [`crate::close_code`] and a reason.
    Peer {
        /// The close code.
        code: u32,
        /// The peer's reason (at most a few hundred bytes, not necessarily UTF-8).
        reason: Bytes,
    },
    /// Nothing arrived for the idle timeout.
    TimedOut,
    /// The connection broke (reset, refused, a protocol error).
    Lost(String),
}

impl Closed {
    /// The peer's close code, when the peer closed the link.
    pub fn peer_code(&self) -> Option<u32> {
        match self {
            Closed::Peer { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Local => f.write_str("closed by this side"),
            Closed::Peer { code, reason } => write!(
                f,
                "closed by the peer (code {code}): {}",
                String::from_utf8_lossy(reason)
            ),
            Closed::TimedOut => f.write_str("timed out"),
            Closed::Lost(why) => write!(f, "connection lost: {why}"),
        }
    }
}

impl std::error::Error for Closed {}

/// Why a stream could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The peer reset its sending half (it abandoned the message).
    #[error("the peer reset the stream (code {0})")]
    Reset(u64),
    /// The peer stopped reading this side.
    #[error("the peer stopped reading the stream (code {0})")]
    Stopped(u64),
    /// The connection is gone.
    #[error("the connection is gone: {0}")]
    Connection(#[from] Closed),
    /// The stream ended in the middle of a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Frame(#[from] crate::frame::DecodeError),
    /// The stream was already closed on this side.
    #[error("the stream is already closed")]
    Closed,
}
