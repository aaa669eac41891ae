//! Length-prefixed JSON frames for the control stream: a 4-byte big-endian length, then that
//! many bytes of JSON.

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame either side accepts. Control frames carry traffic policies, so this is generous;
/// per-request stream headers are far smaller.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The declared length exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(usize),
    /// The stream ended before a whole frame arrived.
    #[error("stream ended inside a frame")]
    Incomplete,
    /// The payload is not the expected JSON message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[source] std::io::Error),
}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Incomplete
        } else {
            FrameError::Io(e)
        }
    }
}

/// Encodes `msg` as one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; 4];
    serde_json::to_writer(&mut out, msg)?;
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decodes one frame from the start of `buf` without I/O.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole frame, otherwise the message and the
/// number of bytes consumed.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, FrameError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    let Some(payload) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((serde_json::from_slice(payload)?, 4 + len)))
}

/// Reads exactly one frame from `r`, consuming no bytes past it (so raw data may follow).
pub async fn read_frame<T, R>(r: &mut R) -> Result<T, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(serde_json::from_slice(&payload)?)
}

/// Writes one frame to `w`.
pub async fn write_frame<T, W>(w: &mut W, msg: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let bytes = encode(msg)?;
    w.write_all(&bytes).await.map_err(FrameError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::ControlFrame;

    fn message() -> ControlFrame {
        ControlFrame::Ping(7)
    }

    #[test]
    fn round_trip_and_partial_input() {
        let bytes = encode(&message()).expect("encode");
        for cut in 0..bytes.len() {
            assert!(decode::<ControlFrame>(&bytes[..cut])
                .expect("partial")
                .is_none());
        }
        let (back, used) = decode::<ControlFrame>(&bytes)
            .expect("decode")
            .expect("whole");
        assert_eq!(back, message());
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn oversized_length_is_rejected_before_allocation() {
        let mut bytes = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        assert!(matches!(
            decode::<ControlFrame>(&bytes),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn async_read_leaves_trailing_bytes() {
        let mut bytes = encode(&message()).expect("encode");
        bytes.extend_from_slice(b"next");
        let mut r = &bytes[..];
        let back: ControlFrame = read_frame(&mut r).await.expect("read");
        assert_eq!(back, message());
        assert_eq!(r, b"next");
    }

    #[tokio::test]
    async fn truncated_stream_is_incomplete() {
        let bytes = encode(&message()).expect("encode");
        let mut r = &bytes[..bytes.len() - 1];
        assert!(matches!(
            read_frame::<ControlFrame, _>(&mut r).await,
            Err(FrameError::Incomplete)
        ));
    }
}
