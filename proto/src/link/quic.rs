//! quinn's errors in the link's terms.

use super::error::{Closed, StreamError};
use quinn::{ConnectionError, ReadError, WriteError};

/// How a QUIC connection ended, as a [`Closed`].
pub(super) fn closed(e: ConnectionError) -> Closed {
    match e {
        ConnectionError::ApplicationClosed(c) => Closed::Peer {
            code: u32::try_from(c.error_code.into_inner()).unwrap_or(u32::MAX),
            reason: c.reason,
        },
        ConnectionError::LocallyClosed => Closed::Local,
        ConnectionError::TimedOut => Closed::TimedOut,
        other => Closed::Lost(other.to_string()),
    }
}

impl From<ReadError> for StreamError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Reset(code) => StreamError::Reset(code.into_inner()),
            ReadError::ConnectionLost(e) => StreamError::Connection(closed(e)),
            _ => StreamError::Closed,
        }
    }
}

impl From<WriteError> for StreamError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Stopped(code) => StreamError::Stopped(code.into_inner()),
            WriteError::ConnectionLost(e) => StreamError::Connection(closed(e)),
            _ => StreamError::Closed,
        }
    }
}

impl From<quinn::ClosedStream> for StreamError {
    fn from(_: quinn::ClosedStream) -> Self {
        StreamError::Closed
    }
}
