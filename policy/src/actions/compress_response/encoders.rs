//! Streaming response compression (gzip, deflate, br) for the compress-response action.

use crate::run::body::BodyTransform;
use bytes::Bytes;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use std::io::Write;

/// A content coding this crate can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// `gzip`
    Gzip,
    /// `deflate`: HTTP's deflate is zlib-wrapped (RFC 1950), which is what this produces.
    Deflate,
    /// `br`
    Brotli,
}

impl Algorithm {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Gzip => "gzip",
            Algorithm::Deflate => "deflate",
            Algorithm::Brotli => "br",
        }
    }

    /// A fresh streaming encoder.
    pub fn encoder(self) -> Box<dyn BodyTransform + Send + Sync> {
        match self {
            Algorithm::Gzip => Box::new(Flate(Some(GzEncoder::new(
                Vec::new(),
                Compression::default(),
            )))),
            Algorithm::Deflate => Box::new(Flate(Some(ZlibEncoder::new(
                Vec::new(),
                Compression::default(),
            )))),
            Algorithm::Brotli => Box::new(Flate(Some(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                5,
                22,
            )))),
        }
    }
}

/// What a streaming encoder offers: write, flush, and finish into its output.
trait FlateWriter: Write {
    fn output(&mut self) -> &mut Vec<u8>;
    fn finish_into(self) -> std::io::Result<Vec<u8>>;
}

impl FlateWriter for GzEncoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish_into(self) -> std::io::Result<Vec<u8>> {
        self.finish()
    }
}

impl FlateWriter for ZlibEncoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish_into(self) -> std::io::Result<Vec<u8>> {
        self.finish()
    }
}

/// A streaming encoder as a [`BodyTransform`]; `None` once finished.
struct Flate<W>(Option<W>);

impl<W: FlateWriter> BodyTransform for Flate<W> {
    fn transform(&mut self, chunk: &[u8], end_of_stream: bool) -> Bytes {
        let Some(w) = self.0.as_mut() else {
            return Bytes::new();
        };
        // Writing into a Vec cannot fail; a sync flush after every chunk keeps streams
        // (server-sent events, long polls) flowing.
        let _ = w.write_all(chunk);
        if end_of_stream {
            return self
                .0
                .take()
                .and_then(|w| w.finish_into().ok())
                .map_or_else(Bytes::new, Bytes::from);
        }
        let _ = w.flush();
        Bytes::from(std::mem::take(w.output()))
    }
}

impl FlateWriter for brotli::CompressorWriter<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish_into(self) -> std::io::Result<Vec<u8>> {
        Ok(self.into_inner())
    }
}

/// Picks the algorithm for an `Accept-Encoding` value among `offered` (in preference order):
/// the highest q-value wins, ties go to the earlier offered one, `q=0` refuses, `*` matches any.
pub(crate) fn negotiate(accept_encoding: &str, offered: &[Algorithm]) -> Option<Algorithm> {
    let mut best: Option<(f32, usize, Algorithm)> = None;
    for (rank, alg) in offered.iter().enumerate() {
        let mut q: Option<f32> = None;
        let mut star: Option<f32> = None;
        for item in accept_encoding.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            let weight = parts
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|x| x.trim().parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            if token.eq_ignore_ascii_case(alg.token()) {
                q = Some(weight);
            } else if token == "*" {
                star = Some(weight);
            }
        }
        let Some(q) = q.or(star) else { continue };
        if q <= 0.0 {
            continue;
        }
        if best.is_none_or(|(bq, br, _)| q > bq || (q == bq && rank < br)) {
            best = Some((q, rank, *alg));
        }
    }
    best.map(|(_, _, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const ALL: &[Algorithm] = &[Algorithm::Gzip, Algorithm::Deflate, Algorithm::Brotli];

    #[test]
    fn negotiation_follows_q_values() {
        assert_eq!(negotiate("gzip, br", ALL), Some(Algorithm::Gzip));
        assert_eq!(
            negotiate("gzip;q=0.5, br;q=0.9", ALL),
            Some(Algorithm::Brotli)
        );
        assert_eq!(negotiate("gzip;q=0, identity", ALL), None);
        assert_eq!(
            negotiate("*", &[Algorithm::Brotli]),
            Some(Algorithm::Brotli)
        );
        assert_eq!(negotiate("", ALL), None);
        assert_eq!(negotiate("deflate", &[Algorithm::Gzip]), None);
    }

    fn run(alg: Algorithm, chunks: &[&[u8]]) -> Vec<u8> {
        let mut enc = alg.encoder();
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(&enc.transform(c, false));
        }
        out.extend_from_slice(&enc.transform(b"", true));
        out
    }

    #[test]
    fn streams_round_trip() {
        let chunks: Vec<&[u8]> = vec![b"hello ", b"streaming ", b"world"];
        let gz = run(Algorithm::Gzip, &chunks);
        let mut s = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello streaming world");

        let z = run(Algorithm::Deflate, &chunks);
        let mut s = String::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello streaming world");

        let br = run(Algorithm::Brotli, &chunks);
        let mut s = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello streaming world");
    }

    #[test]
    fn every_chunk_produces_output_before_the_end() {
        let mut enc = Algorithm::Gzip.encoder();
        assert!(!enc.transform(b"first event\n", false).is_empty());
    }
}
