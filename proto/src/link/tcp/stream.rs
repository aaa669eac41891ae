//! [`H2Send`] and [`H2Recv`]: an HTTP/2 stream's halves as a link stream: writes wait for
//! the peer's flow-control window (h2 would otherwise buffer without bound), reads give the
//! window back as the bytes are taken, and errors are told apart as QUIC's are (the peer
//! reset the stream, or the link is gone).

use super::state::Shared;
use crate::link::error::StreamError;
use bytes::{Bytes, BytesMut};
use h2::Reason;
use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::ReadBuf;

/// Chunks smaller than this together are sent as one DATA frame (a frame head and its data
/// would otherwise cost two).
const GATHER_BELOW: usize = 16 * 1024;

/// The sending half of an HTTP/2 stream.
#[derive(Debug)]
pub struct H2Send {
    stream: h2::SendStream<Bytes>,
    link: Arc<Shared>,
    finished: bool,
}

impl H2Send {
    pub(crate) fn new(stream: h2::SendStream<Bytes>, link: Arc<Shared>) -> Self {
        Self {
            stream,
            link,
            finished: false,
        }
    }

    /// Waits until the window lets at least one byte (of `want`) go; how many may go.
    fn poll_capacity(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
    ) -> Poll<Result<usize, StreamError>> {
        if self.finished {
            return Poll::Ready(Err(StreamError::Closed));
        }
        if self.stream.capacity() == 0 {
            self.stream.reserve_capacity(want);
            loop {
                match ready!(self.stream.poll_capacity(cx)) {
                    Some(Ok(0)) => {}
                    Some(Ok(_)) => break,
                    Some(Err(e)) => return Poll::Ready(Err(self.error(e, true))),
                    // The stream can send no more: the peer reset it, or the link is gone.
                    None => return Poll::Ready(Err(self.refused(cx))),
                }
            }
        }
        Poll::Ready(Ok(self.stream.capacity().min(want)))
    }

    /// Why sending is no longer possible.
    fn refused(&mut self, cx: &mut Context<'_>) -> StreamError {
        match self.stream.poll_reset(cx) {
            Poll::Ready(Ok(reason)) => StreamError::Stopped(u32::from(reason).into()),
            _ => self.link.stream_error("the stream cannot send"),
        }
    }

    fn error(&self, e: h2::Error, sending: bool) -> StreamError {
        error(&self.link, e, sending)
    }

    /// Writes `data` whole.
    pub(crate) async fn write(&mut self, mut data: Bytes) -> Result<(), StreamError> {
        while !data.is_empty() {
            let n = poll_fn(|cx| self.poll_capacity(cx, data.len())).await?;
            let part = data.split_to(n);
            self.stream
                .send_data(part, false)
                .map_err(|e| self.error(e, true))?;
        }
        Ok(())
    }

    /// Writes `chunks` in order, small ones gathered into one frame.
    pub(crate) async fn write_all(&mut self, chunks: &mut [Bytes]) -> Result<(), StreamError> {
        let total: usize = chunks.iter().map(Bytes::len).sum();
        if chunks.len() > 1 && total < GATHER_BELOW {
            let mut gathered = BytesMut::with_capacity(total);
            for chunk in chunks.iter_mut() {
                gathered.extend_from_slice(&std::mem::take(chunk));
            }
            return self.write(gathered.freeze()).await;
        }
        for chunk in chunks.iter_mut() {
            self.write(std::mem::take(chunk)).await?;
        }
        Ok(())
    }

    /// Ends the half cleanly.
    pub(crate) fn finish(&mut self) {
        if !std::mem::replace(&mut self.finished, true) {
            let _ = self.stream.send_data(Bytes::new(), true);
        }
    }

    /// Resets the stream (both halves: HTTP/2 has no half-reset).
    pub(crate) fn reset(&mut self) {
        self.finished = true;
        self.stream.send_reset(Reason::CANCEL);
    }

    /// The HTTP/2 stream id.
    pub(crate) fn id(&self) -> u64 {
        u32::from(self.stream.stream_id()).into()
    }

    /// `AsyncWrite::poll_write`: copies what the window lets go now.
    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = ready!(self.poll_capacity(cx, buf.len())).map_err(io::Error::other)?;
        self.stream
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(|e| io::Error::other(self.error(e, true)))?;
        Poll::Ready(Ok(n))
    }
}

/// The receiving half of an HTTP/2 stream.
#[derive(Debug)]
pub struct H2Recv {
    stream: h2::RecvStream,
    /// Bytes that arrived while only a reset was watched for, or past a short read.
    held: BytesMut,
    link: Arc<Shared>,
    id: u64,
}

impl H2Recv {
    /// The receiving half of an open stream.
    pub(crate) fn open(stream: h2::RecvStream, link: Arc<Shared>) -> Self {
        let id = u32::from(stream.stream_id()).into();
        Self {
            stream,
            held: BytesMut::new(),
            link,
            id,
        }
    }

    /// The next data from the connection (window given back), `None` at the end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        let (stream, link) = (&mut self.stream, &self.link);
        loop {
            return Poll::Ready(match ready!(stream.poll_data(cx)) {
                Some(Ok(data)) if data.is_empty() => continue,
                Some(Ok(data)) => {
                    let _ = stream.flow_control().release_capacity(data.len());
                    Ok(Some(data))
                }
                Some(Err(e)) => Err(error(link, e, false)),
                None => Ok(None),
            });
        }
    }

    /// At most `max` bytes: held ones first, then the connection's.
    fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<Result<Option<Bytes>, StreamError>> {
        if !self.held.is_empty() {
            let n = self.held.len().min(max);
            return Poll::Ready(Ok(Some(self.held.split_to(n).freeze())));
        }
        let data = ready!(self.poll_data(cx))?;
        Poll::Ready(Ok(data.map(|mut data| {
            if data.len() > max {
                self.held.extend_from_slice(&data.split_off(max));
            }
            data
        })))
    }

    pub(crate) async fn read(&mut self, max: usize) -> Result<Option<Bytes>, StreamError> {
        poll_fn(|cx| self.poll_chunk(cx, max)).await
    }

    pub(crate) async fn read_many(
        &mut self,
        chunks: &mut [Bytes],
    ) -> Result<Option<usize>, StreamError> {
        poll_fn(|cx| {
            let mut n = 0;
            while n < chunks.len() {
                match self.poll_chunk(cx, usize::MAX) {
                    Poll::Ready(Ok(Some(data))) => {
                        chunks[n] = data;
                        n += 1;
                    }
                    // An end or an error after some chunks comes again on the next read.
                    Poll::Ready(Ok(None)) if n == 0 => return Poll::Ready(Ok(None)),
                    Poll::Ready(Err(e)) if n == 0 => return Poll::Ready(Err(e)),
                    Poll::Pending if n == 0 => return Poll::Pending,
                    _ => break,
                }
            }
            Poll::Ready(Ok(Some(n)))
        })
        .await
    }

    pub(crate) async fn received_reset(&mut self) -> Option<u64> {
        poll_fn(|cx| loop {
            match ready!(self.poll_data(cx)) {
                Ok(Some(data)) => self.held.extend_from_slice(&data),
                Err(StreamError::Reset(code)) => return Poll::Ready(Some(code)),
                Ok(None) | Err(_) => return Poll::Ready(None),
            }
        })
        .await
    }

    /// The HTTP/2 stream id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// `AsyncRead::poll_read`.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match ready!(self.poll_chunk(cx, buf.remaining())) {
            Ok(Some(data)) => buf.put_slice(&data),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(io::Error::other(e))),
        }
        Poll::Ready(Ok(()))
    }
}

/// An h2 error as a stream error: a reset of this stream by the peer (seen as `Stopped` by a
/// sender, `Reset` by a reader, as QUIC reports them), or the link's end.
fn error(link: &Shared, e: h2::Error, sending: bool) -> StreamError {
    match e.reason() {
        Some(reason) if e.is_reset() && e.is_remote() => {
            let code = u32::from(reason).into();
            if sending {
                StreamError::Stopped(code)
            } else {
                StreamError::Reset(code)
            }
        }
        _ if e.is_reset() => StreamError::Closed,
        _ => link.stream_error(&e.to_string()),
    }
}
