//! http-request's calls to internal endpoints (`https://NAME.internal`, ngrok's usual target):
//! they go to the edge's own HTTP listener with a one-time ticket naming the caller's
//! namespace and the target, and the proxy routes a request carrying a live ticket to that
//! internal endpoint instead of looking its Host up. So the target's own policy runs, as for
//! forward-internal, and a client can never name an internal endpoint: a ticket is 128 random
//! bits, known only inside the edge, and used once.

use crate::tunnel::authtoken::TokenId;
use parking_lot::Mutex;
use pingora::http::RequestHeader;
use rand::RngCore;
use sluice_policy::InternalUrl;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// The header a call carries its ticket in; removed from every request the edge receives.
pub const TICKET_HEADER: &str = "sluice-internal-call";

/// The calls in flight to internal endpoints, shared by the caller and the proxy.
pub struct InternalCalls {
    own: SocketAddr,
    pending: Mutex<HashMap<String, (TokenId, InternalUrl)>>,
}

/// A call's ticket: the header value, valid until the proxy takes it or the call ends.
pub struct Ticket {
    calls: Arc<InternalCalls>,
    /// The header value.
    pub id: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.calls.pending.lock().remove(&self.id);
    }
}

impl InternalCalls {
    /// Calls reach the edge at `http_addr` (its plain-HTTP listener; a wildcard address is
    /// reached on loopback).
    pub fn new(http_addr: SocketAddr) -> Self {
        let ip = match http_addr.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Self {
            own: SocketAddr::new(ip, http_addr.port()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Where calls to internal endpoints are sent.
    pub fn own_addr(&self) -> SocketAddr {
        self.own
    }

    /// A ticket for one request from `owner`'s policy to `target`.
    pub fn issue(self: &Arc<Self>, owner: TokenId, target: InternalUrl) -> Ticket {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        self.pending.lock().insert(id.clone(), (owner, target));
        Ticket {
            calls: self.clone(),
            id,
        }
    }

    /// Removes the ticket header from `req` (always: a client's is never passed on) and
    /// returns the call it names when it is a live ticket, which is then spent.
    pub fn take(&self, req: &mut RequestHeader) -> Option<(TokenId, InternalUrl)> {
        let presented = req.remove_header(TICKET_HEADER)?;
        let id = presented.to_str().ok()?;
        self.pending.lock().remove(id)
    }
}
