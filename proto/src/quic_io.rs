//! [`QuicIo`]: one QUIC bidirectional stream as a tokio byte stream that never ends "cleanly" by
//! accident.
//!
//! quinn finishes a `SendStream` when it is dropped, which makes an abandoned half-written
//! request or response look complete to the peer. `QuicIo` resets the send half on drop unless
//! `poll_shutdown` ran first, so a cut transfer always surfaces as an error on the other side.

use crate::reset_code;
use quinn::{RecvStream, SendStream, VarInt};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A QUIC bidirectional stream usable wherever tokio's `AsyncRead + AsyncWrite` is expected.
#[derive(Debug)]
pub struct QuicIo {
    send: SendStream,
    recv: RecvStream,
    finished: bool,
}

impl QuicIo {
    /// Wraps the two halves of a bidirectional stream.
    pub fn new(send: SendStream, recv: RecvStream) -> Self {
        Self {
            send,
            recv,
            finished: false,
        }
    }

    /// The QUIC stream id, for logs.
    pub fn id(&self) -> u64 {
        self.send.id().index()
    }

    /// Resets the send half now: the peer sees an error instead of end-of-stream.
    pub fn abort(&mut self) {
        if !self.finished {
            self.finished = true;
            let _ = self.send.reset(VarInt::from_u32(reset_code::ABORTED));
        }
    }

    /// Mutable access to the halves, for framed reads and writes before the raw bytes.
    pub fn halves(&mut self) -> (&mut SendStream, &mut RecvStream) {
        (&mut self.send, &mut self.recv)
    }
}

impl Drop for QuicIo {
    fn drop(&mut self) {
        self.abort();
    }
}

impl AsyncRead for QuicIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        AsyncRead::poll_read(Pin::new(&mut self.get_mut().recv), cx, buf)
    }
}

impl AsyncWrite for QuicIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.get_mut().send), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().send), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(Ok(()));
        }
        this.finished = true;
        Poll::Ready(this.send.finish().map_err(io::Error::other))
    }
}
