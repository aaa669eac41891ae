//! Sluice error codes: the `sluice-error-code` response header and handshake rejections.
//!
//! Numbers reuse ngrok's where ngrok has one for the same condition, so people searching for
//! an ngrok code find the same meaning. The table lives in `docs/errors.md`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Response header that marks a response produced by Sluice rather than the upstream app.
/// The edge strips it from every upstream response, so clients can trust it.
pub const ERROR_CODE_HEADER: &str = "sluice-error-code";

/// Header the agent uses to tell the edge that it, not the upstream, produced a response.
/// The agent strips it from upstream responses; the edge turns it into [`ERROR_CODE_HEADER`]
/// and never forwards it.
pub const AGENT_ERROR_HEADER: &str = "sluice-agent-error";

/// Every error Sluice itself reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Handshake: the authtoken is not accepted by this edge.
    AuthtokenInvalid,
    /// Handshake: the authtoken already has as many agent sessions as the edge allows.
    AgentLimitReached,
    /// Handshake: this address sent too many wrong authtokens recently.
    AuthRateLimited,
    /// Handshake: the agent speaks another protocol version.
    UnsupportedVersion,
    /// Handshake: the requested URL is malformed or outside the edge's domain.
    UrlNotAllowed,
    /// Handshake: another agent already holds this hostname.
    HostnameTaken,
    /// Handshake: a traffic policy failed to compile.
    PolicyInvalid,
    /// Handshake: the agent sent no control message in time or a malformed one.
    HandshakeFailed,
    /// Handshake: a `tcp://` endpoint on an edge without TCP ports (`tcp_ports`).
    TcpNotEnabled,
    /// Handshake: the credential's `bind:` rules do not allow this name or address.
    BindNotAllowed,
    /// Handshake: the name or address is reserved for another credential.
    NameReserved,
    /// Handshake: the credential already holds as many endpoints as its limit allows.
    EndpointLimitReached,
    /// Handshake: the edge cannot reach the cluster store, so it claims no new endpoint
    /// (fail closed); the agent retries.
    StoreUnavailable,
    /// Handshake: the asked-for TCP port is outside the edge's range or cannot be opened.
    TcpPortNotAllowed,
    /// Handshake: every port of the edge's TCP range is in use.
    TcpPortsExhausted,
    /// Request: no endpoint is online for this hostname.
    EndpointNotFound,
    /// Request: the agent's session is gone or refused the stream.
    AgentOffline,
    /// Request: the agent is at its concurrent-stream limit and none freed up in time.
    AgentBusy,
    /// Request: the agent could not connect to the upstream app.
    UpstreamUnreachable,
    /// Request: the upstream accepted the request but did not answer in time.
    UpstreamTimeout,
    /// Request: the upstream's response was not valid HTTP.
    InvalidUpstreamResponse,
    /// Request: the client's request could not be parsed or is not allowed.
    BadRequest,
    /// Request: the request head has too many header fields or too many header bytes.
    HeadersTooLarge,
    /// Request: an internal error at the edge.
    Internal,
}

impl ErrorCode {
    /// All codes, for documentation tests.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::AuthtokenInvalid,
        ErrorCode::AgentLimitReached,
        ErrorCode::AuthRateLimited,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UrlNotAllowed,
        ErrorCode::HostnameTaken,
        ErrorCode::PolicyInvalid,
        ErrorCode::HandshakeFailed,
        ErrorCode::TcpNotEnabled,
        ErrorCode::BindNotAllowed,
        ErrorCode::NameReserved,
        ErrorCode::EndpointLimitReached,
        ErrorCode::StoreUnavailable,
        ErrorCode::TcpPortNotAllowed,
        ErrorCode::TcpPortsExhausted,
        ErrorCode::EndpointNotFound,
        ErrorCode::AgentOffline,
        ErrorCode::AgentBusy,
        ErrorCode::UpstreamUnreachable,
        ErrorCode::UpstreamTimeout,
        ErrorCode::InvalidUpstreamResponse,
        ErrorCode::BadRequest,
        ErrorCode::HeadersTooLarge,
        ErrorCode::Internal,
    ];

    /// The number in `ERR_SLUICE_<n>`.
    pub fn number(self) -> u16 {
        match self {
            ErrorCode::AuthtokenInvalid => 105,
            ErrorCode::AgentLimitReached => 108,
            ErrorCode::AuthRateLimited => 109,
            ErrorCode::UnsupportedVersion => 120,
            ErrorCode::UrlNotAllowed => 319,
            ErrorCode::HostnameTaken => 334,
            ErrorCode::PolicyInvalid => 2201,
            ErrorCode::HandshakeFailed => 9001,
            ErrorCode::TcpNotEnabled => 3240,
            ErrorCode::BindNotAllowed => 340,
            ErrorCode::NameReserved => 341,
            ErrorCode::EndpointLimitReached => 342,
            ErrorCode::StoreUnavailable => 343,
            ErrorCode::TcpPortNotAllowed => 3241,
            ErrorCode::TcpPortsExhausted => 3242,
            ErrorCode::EndpointNotFound => 3200,
            ErrorCode::AgentOffline => 3210,
            ErrorCode::AgentBusy => 3008,
            ErrorCode::UpstreamUnreachable => 8012,
            ErrorCode::UpstreamTimeout => 3005,
            ErrorCode::InvalidUpstreamResponse => 3004,
            ErrorCode::BadRequest => 3206,
            ErrorCode::HeadersTooLarge => 3231,
            ErrorCode::Internal => 9000,
        }
    }

    /// The HTTP status the edge answers with for request errors.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::EndpointNotFound => 404,
            ErrorCode::AgentOffline
            | ErrorCode::UpstreamUnreachable
            | ErrorCode::InvalidUpstreamResponse => 502,
            ErrorCode::AgentBusy => 503,
            ErrorCode::UpstreamTimeout => 504,
            ErrorCode::BadRequest => 400,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::AuthtokenInvalid => 401,
            ErrorCode::AgentLimitReached
            | ErrorCode::AuthRateLimited
            | ErrorCode::EndpointLimitReached => 429,
            ErrorCode::HostnameTaken | ErrorCode::NameReserved => 409,
            ErrorCode::BindNotAllowed => 403,
            ErrorCode::UrlNotAllowed
            | ErrorCode::PolicyInvalid
            | ErrorCode::UnsupportedVersion
            | ErrorCode::TcpNotEnabled
            | ErrorCode::TcpPortNotAllowed => 400,
            ErrorCode::TcpPortsExhausted | ErrorCode::StoreUnavailable => 503,
            ErrorCode::HandshakeFailed | ErrorCode::Internal => 500,
        }
    }

    /// A short human sentence, used as the body of error responses.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::AuthtokenInvalid => "The authtoken is not valid for this edge.",
            ErrorCode::AgentLimitReached => {
                "This authtoken already has as many agent sessions as the edge allows."
            }
            ErrorCode::AuthRateLimited => "Too many failed authtoken attempts; try again later.",
            ErrorCode::UnsupportedVersion => "The agent's protocol version is not supported.",
            ErrorCode::UrlNotAllowed => "The requested URL is not allowed on this edge.",
            ErrorCode::HostnameTaken => "Another agent already holds this hostname.",
            ErrorCode::PolicyInvalid => "The traffic policy is invalid.",
            ErrorCode::HandshakeFailed => "The agent handshake failed.",
            ErrorCode::TcpNotEnabled => "This edge has no TCP ports for tcp:// endpoints.",
            ErrorCode::BindNotAllowed => "The authtoken's bind: rules do not allow this endpoint.",
            ErrorCode::NameReserved => "This name is reserved for another authtoken.",
            ErrorCode::EndpointLimitReached => {
                "This authtoken already holds as many endpoints as it may."
            }
            ErrorCode::StoreUnavailable => {
                "The edge cannot reach its cluster store; no new endpoint can be claimed now."
            }
            ErrorCode::TcpPortNotAllowed => "The requested TCP port is not available on this edge.",
            ErrorCode::TcpPortsExhausted => "Every TCP port of this edge is in use.",
            ErrorCode::EndpointNotFound => "No endpoint is online for this hostname.",
            ErrorCode::AgentOffline => "The agent serving this endpoint is offline.",
            ErrorCode::AgentBusy => {
                "The agent serving this endpoint is too busy to take the request."
            }
            ErrorCode::UpstreamUnreachable => {
                "The agent could not connect to the upstream application."
            }
            ErrorCode::UpstreamTimeout => "The upstream application did not respond in time.",
            ErrorCode::InvalidUpstreamResponse => {
                "The upstream application sent an invalid HTTP response."
            }
            ErrorCode::BadRequest => "The request is malformed.",
            ErrorCode::HeadersTooLarge => "The request's header fields are too large.",
            ErrorCode::Internal => "Internal error at the edge.",
        }
    }

    /// The plain-text body of an error response: the message, then the code.
    pub fn body(self) -> String {
        format!("{}\n\n{self}\n", self.message())
    }

    /// Parses `ERR_SLUICE_<n>`.
    pub fn from_header_value(s: &str) -> Option<ErrorCode> {
        Self::from_number(s.strip_prefix("ERR_SLUICE_")?.parse().ok()?)
    }

    /// The code numbered `n` ([`Self::number`]).
    pub fn from_number(n: u16) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.number() == n)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERR_SLUICE_{}", self.number())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.number()), "duplicate {code}");
            assert_eq!(ErrorCode::from_header_value(&code.to_string()), Some(code));
        }
        assert_eq!(ErrorCode::EndpointNotFound.to_string(), "ERR_SLUICE_3200");
        assert_eq!(ErrorCode::from_header_value("ERR_NGROK_3200"), None);
    }
}
