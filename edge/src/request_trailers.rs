//! [`RequestTrailers`]: the slot through which a request's trailers, known only once its body
//! ended, travel from the public side to the agent side. A leaf both sides read.
//!
//! pingora hands the upstream side a request head and body chunks but has no way to pass
//! request trailers between sessions. The HTTP/1.x server (`http/h1/`) puts a slot in the
//! request header's extensions (pingora clones them into the upstream request), fills it when
//! the client's chunked body ends with trailer fields, and the agent exchange
//! (`tunnel/exchange.rs`) reads it when the body ends, sending the fields as a trailers frame.

use http::HeaderMap;
use parking_lot::Mutex;
use std::sync::Arc;

/// A request's trailer fields, filled by the public side when the body ends with them and
/// taken by the agent side as it ends the body. Clones share the slot.
#[derive(Clone, Default, Debug)]
pub struct RequestTrailers(Arc<Mutex<Option<HeaderMap>>>);

impl RequestTrailers {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the trailer fields the client sent (appending to any already recorded).
    pub fn put(&self, trailers: HeaderMap) {
        let mut slot = self.0.lock();
        match slot.as_mut() {
            Some(existing) => existing.extend(trailers),
            None => *slot = Some(trailers),
        }
    }

    /// The recorded trailer fields, if the body ended with any; the slot is empty afterwards.
    pub fn take(&self) -> Option<HeaderMap> {
        self.0.lock().take().filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn clones_share_the_slot_and_take_empties_it() {
        let slot = RequestTrailers::new();
        let reader = slot.clone();
        assert!(reader.take().is_none());
        let mut t = HeaderMap::new();
        t.insert("x-sum", HeaderValue::from_static("1"));
        slot.put(t);
        let mut more = HeaderMap::new();
        more.insert("x-note", HeaderValue::from_static("2"));
        slot.put(more);
        let got = reader.take().expect("trailers");
        assert_eq!(got.len(), 2);
        assert!(slot.take().is_none());
    }

    #[test]
    fn empty_trailers_are_no_trailers() {
        let slot = RequestTrailers::new();
        slot.put(HeaderMap::new());
        assert!(slot.take().is_none());
    }
}
