//! [`SendHalf`] and [`RecvHalf`]: the two halves of one link stream, whichever the transport.

use super::error::StreamError;
use super::tcp::stream::{H2Recv, H2Send};
use crate::reset_code;
use bytes::Bytes;
use quinn::VarInt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The sending half of a link stream.
#[derive(Debug)]
pub enum SendHalf {
    /// A QUIC stream's sending half.
    Quic(quinn::SendStream),
    /// An HTTP/2 stream's sending half.
    H2(H2Send),
}

/// The receiving half of a link stream.
#[derive(Debug)]
pub enum RecvHalf {
    /// A QUIC stream's receiving half.
    Quic(quinn::RecvStream),
    /// An HTTP/2 stream's receiving half.
    H2(H2Recv),
}

impl SendHalf {
    /// Writes `data` whole, waiting for flow control.
    pub async fn write_chunk(&mut self, data: Bytes) -> Result<(), StreamError> {
        match self {
            SendHalf::Quic(s) => Ok(s.write_chunk(data).await?),
            SendHalf::H2(s) => s.write(data).await,
        }
    }

    /// Writes every chunk in `chunks` whole, in order.
    pub async fn write_all_chunks(&mut self, chunks: &mut [Bytes]) -> Result<(), StreamError> {
        match self {
            SendHalf::Quic(s) => Ok(s.write_all_chunks(chunks).await?),
            SendHalf::H2(s) => s.write_all(chunks).await,
        }
    }

    /// Ends this half cleanly: the peer reads what was written, then the end.
    pub fn finish(&mut self) {
        match self {
            SendHalf::Quic(s) => {
                let _ = s.finish();
            }
            SendHalf::H2(s) => s.finish(),
        }
    }

    /// Abandons this half: the peer sees a reset, never a clean end. Over HTTP/2 a reset
    /// ends both halves (HTTP/2 has no half-reset); nobody reads on after abandoning.
    pub fn reset(&mut self) {
        match self {
            SendHalf::Quic(s) => {
                let _ = s.reset(VarInt::from_u32(reset_code::ABORTED));
            }
            SendHalf::H2(s) => s.reset(),
        }
    }

    /// The stream's id, for logs.
    pub fn id(&self) -> u64 {
        match self {
            SendHalf::Quic(s) => s.id().index(),
            SendHalf::H2(s) => s.id(),
        }
    }
}

impl RecvHalf {
    /// The next bytes (at most `max`); `None` at the stream's clean end.
    pub async fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        match self {
            RecvHalf::Quic(r) => Ok(r.read_chunk(max, true).await?.map(|c| c.bytes)),
            RecvHalf::H2(r) => r.read(max).await,
        }
    }

    /// Every chunk already here (waiting only for the first), into `chunks`; how many, or
    /// `None` at the stream's end.
    pub async fn read_chunks(
        &mut self,
        chunks: &mut [Bytes],
    ) -> Result<Option<usize>, StreamError> {
        match self {
            RecvHalf::Quic(r) => Ok(r.read_chunks(chunks).await?),
            RecvHalf::H2(r) => r.read_many(chunks).await,
        }
    }

    /// Waits until the peer resets the stream and gives its code; `None` when no reset can
    /// come any more (the stream ended or the link is gone). Consumes no bytes: what arrives
    /// meanwhile stays for the next read.
    pub async fn received_reset(&mut self) -> Option<u64> {
        match self {
            RecvHalf::Quic(r) => r
                .received_reset()
                .await
                .ok()
                .flatten()
                .map(VarInt::into_inner),
            RecvHalf::H2(r) => r.received_reset().await,
        }
    }

    /// Tells the peer to stop sending. Over HTTP/2 there is no such signal on its own: the
    /// stream is reset when both halves are dropped, after what was already written is sent.
    pub fn stop(&mut self) {
        match self {
            RecvHalf::Quic(r) => {
                let _ = r.stop(VarInt::from_u32(reset_code::ABORTED));
            }
            RecvHalf::H2(_) => {}
        }
    }

    /// The stream's id, for logs.
    pub fn id(&self) -> u64 {
        match self {
            RecvHalf::Quic(r) => r.id().index(),
            RecvHalf::H2(r) => r.id(),
        }
    }
}

impl AsyncWrite for SendHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SendHalf::Quic(s) => AsyncWrite::poll_write(Pin::new(s), cx, buf),
            SendHalf::H2(s) => s.poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendHalf::Quic(s) => AsyncWrite::poll_flush(Pin::new(s), cx),
            SendHalf::H2(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SendHalf::Quic(s) => AsyncWrite::poll_shutdown(Pin::new(s), cx),
            SendHalf::H2(s) => {
                s.finish();
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncRead for RecvHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            RecvHalf::Quic(r) => AsyncRead::poll_read(Pin::new(r), cx, buf),
            RecvHalf::H2(r) => r.poll_read(cx, buf),
        }
    }
}
