//! The body transformers an action may hand the edge (compress-response's encoder, the
//! find-and-replace actions' replacers) and the checks on whether a body can be transformed.

use crate::head::ResponseHead;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, TRAILER};
use http::Method;

/// Transforms a body chunk by chunk; the edge feeds every chunk in order and
/// `end_of_stream = true` with the last one (which may be empty).
pub trait BodyTransform {
    /// The bytes to send for `chunk`: possibly empty, never buffered past this call's data
    /// except what the encoder needs; with `end_of_stream` the encoder is finished.
    fn transform(&mut self, chunk: &[u8], end_of_stream: bool) -> Bytes;
}

/// Body transforms applied one after the other (find-and-replace rules, then compression).
pub(crate) struct Chain(pub Vec<Box<dyn BodyTransform + Send + Sync>>);

impl BodyTransform for Chain {
    fn transform(&mut self, chunk: &[u8], end_of_stream: bool) -> Bytes {
        let mut data = Bytes::copy_from_slice(chunk);
        for t in &mut self.0 {
            data = t.transform(&data, end_of_stream);
        }
        data
    }
}

/// Why a response's body cannot be streamed through a transform, if it cannot: no body (1xx,
/// 204, 304, or the answer to HEAD), or a body followed by trailers (an announced `Trailer`,
/// gRPC's status), which the proxy learns of only when they arrive, after the transformed
/// stream would have to end.
pub(crate) fn untransformable(method: &Method, res: &dyn ResponseHead) -> Option<&'static str> {
    if method == Method::HEAD || matches!(res.status().as_u16(), 100..=199 | 204 | 304) {
        return Some("the response has no body");
    }
    let grpc = res
        .headers()
        .get_all(CONTENT_TYPE)
        .iter()
        .any(|v| v.as_bytes().starts_with(b"application/grpc"));
    (res.headers().contains_key(TRAILER) || grpc).then_some("the body is followed by trailers")
}

/// Whether a head's body is content-encoded (anything but `identity`).
pub(crate) fn encoded(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity")
}
