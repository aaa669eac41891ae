//! The request and response heads the engine reads and mutates, as small traits.
//!
//! The edge implements them for pingora's header types; this crate implements them for
//! `http::request::Parts` and `http::response::Parts`.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};
use std::sync::LazyLock;

/// An empty `GET /`: the request head of on_tcp_connect, which has none. Its expressions cannot
/// name `req.*` (refused at load), so nothing reads it; it only spares every other phase an
/// `Option`.
pub(crate) fn empty_request() -> &'static http::request::Parts {
    static EMPTY: LazyLock<http::request::Parts> =
        LazyLock::new(|| http::Request::new(()).into_parts().0);
    &EMPTY
}

/// A request head: read access plus the few mutations policy actions need.
pub trait RequestHead: Send + Sync {
    /// The request method.
    fn method(&self) -> &Method;
    /// The request target (origin-form for HTTP/1.1, absolute for HTTP/2).
    fn uri(&self) -> &Uri;
    /// The HTTP version.
    fn version(&self) -> Version;
    /// The headers.
    fn headers(&self) -> &HeaderMap;
    /// Replaces the request target.
    fn set_uri(&mut self, uri: Uri);
    /// Sets a header, replacing every existing value.
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Adds a header value after any existing ones.
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Removes every value of a header.
    fn remove_header(&mut self, name: &HeaderName);
}

/// A response head: status and headers, mutated through methods.
pub trait ResponseHead: Send + Sync {
    /// The status code.
    fn status(&self) -> StatusCode;
    /// The headers.
    fn headers(&self) -> &HeaderMap;
    /// Sets a header, replacing every existing value.
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Adds a header value after any existing ones.
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Removes every value of a header.
    fn remove_header(&mut self, name: &HeaderName);
}

impl RequestHead for http::request::Parts {
    fn method(&self) -> &Method {
        &self.method
    }
    fn uri(&self) -> &Uri {
        &self.uri
    }
    fn version(&self) -> Version {
        self.version
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn set_uri(&mut self, uri: Uri) {
        self.uri = uri;
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
}

impl ResponseHead for http::response::Parts {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
}
