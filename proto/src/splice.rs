//! [`splice`]: a connection's raw bytes both ways between a QUIC stream and a byte stream (a
//! client's TCP connection at the edge, the upstream's at the agent), after an HTTP upgrade or
//! a TCP endpoint's [`crate::frame::Frame::Connect`].
//!
//! Half-close crosses the hop: a side that ends its writing finishes its half of the stream,
//! and the other end shuts down its write side but keeps reading, so a client that shuts down
//! its write side still gets the server's reply. A failure on either side (a reset, a broken
//! connection) ends both directions at once and resets the stream, so nothing waits on a
//! half that will never finish and the peer never mistakes a cut for a clean end.

use crate::framed::{FrameReader, FrameWriter, StreamError};
use bytes::{Bytes, BytesMut};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Most read from the byte stream at a time: a socket read returns what is there, so a large
/// buffer batches a fast sender's bytes into few QUIC writes.
const READ_CHUNK: usize = 256 * 1024;

/// Most QUIC chunks gathered into one write (each about one packet's payload).
const RAW_CHUNKS: usize = 64;

/// What a splice moved, and how it ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Spliced {
    /// Bytes read from the stream and written to the byte stream.
    pub from_stream: u64,
    /// Bytes read from the byte stream and sent on the stream.
    pub to_stream: u64,
    /// Why it ended early, if it did; `None` when both directions ended cleanly.
    pub failure: Option<SpliceFailure>,
}

/// A splice's byte counts as it runs, for watchers of a live connection (the agent's status
/// screen and inspector); shared, so they read it while the bytes flow.
#[derive(Debug, Default)]
pub struct ByteCounts {
    from_stream: AtomicU64,
    to_stream: AtomicU64,
}

impl ByteCounts {
    /// Bytes read from the stream and written to the byte stream so far.
    pub fn from_stream(&self) -> u64 {
        self.from_stream.load(Ordering::Relaxed)
    }

    /// Bytes read from the byte stream and sent on the stream so far.
    pub fn to_stream(&self) -> u64 {
        self.to_stream.load(Ordering::Relaxed)
    }
}

/// Which side broke a splice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpliceFailure {
    /// The QUIC stream failed (the peer reset it, or the connection is gone).
    #[error("tunnel stream: {0}")]
    Stream(String),
    /// Reading or writing the byte stream failed.
    #[error("connection: {0}")]
    Io(String),
}

/// Copies bytes both ways until both directions ended: the stream's raw bytes (what `reader`
/// still holds past the last frame first) to `io`, and `io`'s bytes to the stream. On a
/// failure `writer` is reset and `reader` stopped; the caller decides what `io` sees (the
/// edge resets a client's TCP connection).
pub async fn splice<T>(reader: &mut FrameReader, writer: &mut FrameWriter, io: T) -> Spliced
where
    T: AsyncRead + AsyncWrite,
{
    let (io_read, io_write) = tokio::io::split(io);
    splice_halves(reader, writer, io_read, io_write).await
}

/// [`splice`] over a byte stream already split in halves (a TCP stream's own halves need no
/// lock between them, unlike [`tokio::io::split`]).
pub async fn splice_halves<R, W>(
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    io_read: R,
    io_write: W,
) -> Spliced
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    splice_counted(reader, writer, io_read, io_write, &ByteCounts::default()).await
}

/// [`splice_halves`], keeping its counts in `counts` as the bytes flow.
pub async fn splice_counted<R, W>(
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    mut io_read: R,
    mut io_write: W,
    counts: &ByteCounts,
) -> Spliced
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let failure = {
        let inbound = stream_to_io(reader, &mut io_write, &counts.from_stream);
        let outbound = io_to_stream(&mut io_read, writer, &counts.to_stream);
        tokio::pin!(inbound, outbound);
        let (mut inbound_done, mut outbound_done) = (false, false);
        loop {
            if inbound_done && outbound_done {
                break None;
            }
            let ended = tokio::select! {
                r = &mut inbound, if !inbound_done => { inbound_done = true; r }
                r = &mut outbound, if !outbound_done => { outbound_done = true; r }
            };
            if let Err(failure) = ended {
                break Some(failure);
            }
        }
    };
    if failure.is_some() {
        writer.abort();
        reader.stop();
    }
    Spliced {
        from_stream: counts.from_stream(),
        to_stream: counts.to_stream(),
        failure,
    }
}

/// The stream's bytes into `io`; at the stream's clean end, `io`'s write side is shut down.
async fn stream_to_io<W: AsyncWrite + Unpin>(
    reader: &mut FrameReader,
    io: &mut W,
    count: &AtomicU64,
) -> Result<(), SpliceFailure> {
    let mut chunks = vec![Bytes::new(); RAW_CHUNKS];
    let mut gathered = BytesMut::new();
    loop {
        match reader.next_raw_chunks(&mut chunks).await {
            Ok(Some(n)) => {
                let bytes = gather(&mut chunks[..n], &mut gathered);
                io.write_all(&bytes).await.map_err(io_failure)?;
                // A buffered writer (pingora's client stream) holds bytes until flushed, and a
                // protocol waiting on them would wait forever; a socket's flush is free.
                io.flush().await.map_err(io_failure)?;
                count.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Ok(None) => {
                // The peer finished its half: pass the half-close on. A peer that is already
                // gone makes the shutdown fail, which is no reason to cut the other direction.
                let _ = io.shutdown().await;
                return Ok(());
            }
            Err(e) => return Err(stream_failure(e)),
        }
    }
}

/// The chunks as one buffer: a single one as it is, several copied into `gathered` (which
/// keeps its allocation). The chunks are emptied, so none holds its bytes after.
fn gather(chunks: &mut [Bytes], gathered: &mut BytesMut) -> Bytes {
    if let [one] = chunks {
        return std::mem::take(one);
    }
    for chunk in chunks {
        gathered.extend_from_slice(&std::mem::take(chunk));
    }
    gathered.split().freeze()
}

/// `io`'s bytes onto the stream; at `io`'s end, the stream's half is finished.
async fn io_to_stream<R: AsyncRead + Unpin>(
    io: &mut R,
    writer: &mut FrameWriter,
    count: &AtomicU64,
) -> Result<(), SpliceFailure> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        let n = io.read_buf(&mut buf).await.map_err(io_failure)?;
        if n == 0 {
            writer.finish();
            return Ok(());
        }
        writer
            .send_raw(buf.split().freeze())
            .await
            .map_err(stream_failure)?;
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn io_failure(e: std::io::Error) -> SpliceFailure {
    SpliceFailure::Io(e.to_string())
}

fn stream_failure(e: StreamError) -> SpliceFailure {
    SpliceFailure::Stream(e.to_string())
}
