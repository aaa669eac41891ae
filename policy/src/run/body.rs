//! The response-body transformer an action may hand the edge (compress-response's encoder).

use bytes::Bytes;

/// Transforms a response body chunk by chunk; the edge feeds every chunk in order and
/// `end_of_stream = true` with the last one (which may be empty).
pub trait BodyTransform {
    /// The bytes to send for `chunk`: possibly empty, never buffered past this call's data
    /// except what the encoder needs; with `end_of_stream` the encoder is finished.
    fn transform(&mut self, chunk: &[u8], end_of_stream: bool) -> Bytes;
}
