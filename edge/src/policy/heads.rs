//! pingora's request/response headers seen through the policy engine's head traits.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use sluice_policy::{RequestHead, ResponseHead};

/// A pingora request header as a [`RequestHead`]. Mutations go through pingora's own methods,
/// which keep its header-case map in step.
pub struct PolicyRequest<'a>(pub &'a mut RequestHeader);

/// A pingora response header as a [`ResponseHead`].
pub struct PolicyResponse<'a>(pub &'a mut ResponseHeader);

impl RequestHead for PolicyRequest<'_> {
    fn method(&self) -> &Method {
        &self.0.method
    }
    fn uri(&self) -> &Uri {
        &self.0.uri
    }
    fn version(&self) -> Version {
        self.0.version
    }
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }
    fn set_uri(&mut self, uri: Uri) {
        self.0.set_uri(uri);
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        // Only fails for invalid names/values, which typed arguments rule out.
        let _ = self.0.insert_header(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.append_header(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}

impl ResponseHead for PolicyResponse<'_> {
    fn status(&self) -> StatusCode {
        self.0.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.insert_header(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.append_header(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}

/// Replaces a response head's status and headers with `parts`, framed for `body_len` bytes.
pub(crate) fn overwrite_head(
    resp: &mut ResponseHeader,
    parts: &http::response::Parts,
    body_len: usize,
) -> pingora::Result<()> {
    resp.set_status(parts.status)?;
    let names: Vec<http::HeaderName> = resp.headers.keys().cloned().collect();
    for name in names {
        resp.remove_header(&name);
    }
    for (name, value) in &parts.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.set_content_length(body_len)
}
