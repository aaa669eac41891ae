//! [`FrameReader`] and [`FrameWriter`]: [`Frame`]s over the two halves of a link stream (QUIC
//! or HTTP/2, [`crate::link`]), and the raw bytes that follow a protocol upgrade.
//!
//! A writer resets its half when dropped unless it was [finished](FrameWriter::finish), so a
//! cut transfer always surfaces as an error on the other side, never as a short message. A
//! stream kept for the next exchange keeps its writer.

use crate::frame::{data_header, Frame, RequestHeadRef, MAX_DATA_CHUNK};
pub use crate::link::StreamError;
use crate::link::{RecvHalf, SendHalf};
use bytes::{Bytes, BytesMut};

/// Reads frames from a stream's receiving half.
#[derive(Debug)]
pub struct FrameReader {
    recv: RecvHalf,
    buf: BytesMut,
}

impl FrameReader {
    /// A reader over `recv`.
    pub fn new(recv: RecvHalf) -> Self {
        Self {
            recv,
            buf: BytesMut::new(),
        }
    }

    /// The next frame; `None` when the peer finished the stream between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, StreamError> {
        loop {
            if let Some(frame) = Frame::decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            match self.recv.read_chunk(usize::MAX).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None if self.buf.is_empty() => return Ok(None),
                None => return Err(StreamError::Truncated),
            }
        }
    }

    /// Raw bytes after an upgrade: first what was read past the last frame, then the stream;
    /// `None` at its end.
    pub async fn next_raw(&mut self) -> Result<Option<Bytes>, StreamError> {
        if !self.buf.is_empty() {
            return Ok(Some(self.buf.split().freeze()));
        }
        self.recv.read_chunk(MAX_DATA_CHUNK).await
    }

    /// Raw bytes as [`FrameReader::next_raw`] gives them, but every chunk that is already
    /// here (waiting only for the first) at once, into `chunks` (at most its length): QUIC
    /// hands over about a packet's payload per chunk, and one write per packet to a socket
    /// costs more than gathering them. The number filled; `None` at the stream's end.
    pub async fn next_raw_chunks(
        &mut self,
        chunks: &mut [Bytes],
    ) -> Result<Option<usize>, StreamError> {
        if !self.buf.is_empty() && !chunks.is_empty() {
            chunks[0] = self.buf.split().freeze();
            return Ok(Some(1));
        }
        self.recv.read_chunks(chunks).await
    }

    /// Waits until the peer resets its half (it gave up on the exchange); never returns if the
    /// peer finishes it instead. Reads nothing, so it can watch a stream whose next bytes
    /// belong to someone else.
    pub async fn reset(&mut self) -> u64 {
        match self.recv.received_reset().await {
            Some(code) => code,
            None => std::future::pending().await,
        }
    }

    /// Tells the peer to stop sending (the rest of its message is not wanted).
    pub fn stop(&mut self) {
        self.recv.stop();
    }

    /// The stream id, for logs.
    pub fn id(&self) -> u64 {
        self.recv.id()
    }
}

/// Writes frames to a stream's sending half.
#[derive(Debug)]
pub struct FrameWriter {
    send: Option<SendHalf>,
    head: BytesMut,
}

impl FrameWriter {
    /// A writer over `send`.
    pub fn new(send: SendHalf) -> Self {
        Self {
            send: Some(send),
            head: BytesMut::new(),
        }
    }

    fn stream(&mut self) -> Result<&mut SendHalf, StreamError> {
        self.send.as_mut().ok_or(StreamError::Closed)
    }

    /// Writes a head, trailers, end or error frame.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), StreamError> {
        if let Frame::Data(data) = frame {
            return self.send_data(data.clone()).await;
        }
        frame.encode(&mut self.head);
        let bytes = self.head.split().freeze();
        self.stream()?.write_chunk(bytes).await?;
        Ok(())
    }

    /// Writes a request head straight from the sender's fields.
    pub async fn send_request_head(
        &mut self,
        head: &RequestHeadRef<'_>,
    ) -> Result<(), StreamError> {
        head.encode(&mut self.head);
        let bytes = self.head.split().freeze();
        self.stream()?.write_chunk(bytes).await?;
        Ok(())
    }

    /// Writes `data` as data frames without copying it.
    pub async fn send_data(&mut self, mut data: Bytes) -> Result<(), StreamError> {
        while !data.is_empty() {
            let part = data.split_to(data.len().min(MAX_DATA_CHUNK));
            let header = Bytes::copy_from_slice(&data_header(part.len()));
            self.stream()?.write_all_chunks(&mut [header, part]).await?;
        }
        Ok(())
    }

    /// Writes raw bytes (after an upgrade).
    pub async fn send_raw(&mut self, data: Bytes) -> Result<(), StreamError> {
        self.stream()?.write_chunk(data).await?;
        Ok(())
    }

    /// Moves the sending half into a new writer, leaving this one without a stream.
    pub fn take(&mut self) -> FrameWriter {
        FrameWriter {
            send: self.send.take(),
            head: BytesMut::new(),
        }
    }

    /// Ends the stream cleanly: the peer reads what was written, then the end.
    pub fn finish(&mut self) {
        if let Some(mut send) = self.send.take() {
            send.finish();
        }
    }

    /// Abandons the stream: the peer sees a reset, never a clean end.
    pub fn abort(&mut self) {
        if let Some(mut send) = self.send.take() {
            send.reset();
        }
    }

    /// The stream id, for logs.
    pub fn id(&self) -> Option<u64> {
        self.send.as_ref().map(SendHalf::id)
    }
}

impl Drop for FrameWriter {
    fn drop(&mut self) {
        self.abort();
    }
}
