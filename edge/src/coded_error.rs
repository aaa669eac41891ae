//! pingora errors that carry a Sluice [`ErrorCode`], both ways: the edge raises them where a
//! request fails, and `fail_to_proxy` turns any pingora error back into the code to answer with.

use pingora::{Error, ErrorSource, ErrorType};
use sluice_proto::error_code::ErrorCode;

/// pingora carries our codes as `ErrorType::Custom(tag)`; tags must be `'static`.
fn tag(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::EndpointNotFound => "sluice/EndpointNotFound",
        ErrorCode::AgentOffline => "sluice/AgentOffline",
        ErrorCode::AgentBusy => "sluice/AgentBusy",
        ErrorCode::UpstreamUnreachable => "sluice/UpstreamUnreachable",
        ErrorCode::UpstreamTimeout => "sluice/UpstreamTimeout",
        ErrorCode::InvalidUpstreamResponse => "sluice/InvalidUpstreamResponse",
        ErrorCode::BadRequest => "sluice/BadRequest",
        ErrorCode::HeadersTooLarge => "sluice/HeadersTooLarge",
        _ => "sluice/Internal",
    }
}

/// A pingora error that carries `code` (source: upstream, not retried).
pub fn edge_error(code: ErrorCode, context: impl Into<String>) -> Box<Error> {
    let mut e = Error::explain(ErrorType::Custom(tag(code)), context.into());
    e.esource = ErrorSource::Upstream;
    e.set_retry(false);
    e
}

/// The error that ends a request by closing the client's connection with no response
/// (close-connection): a downstream error, for which [`code_for`] gives no code.
pub fn connection_closed_by_policy() -> Box<Error> {
    let mut e = Error::explain(ErrorType::ConnectionClosed, "closed by the traffic policy");
    e.esource = ErrorSource::Downstream;
    e.set_retry(false);
    e
}

/// The code to report for a proxying failure, or `None` when the client side failed and no
/// response can or should be sent.
pub fn code_for(e: &Error) -> Option<ErrorCode> {
    if let ErrorType::Custom(t) = e.etype() {
        return Some(
            ErrorCode::ALL
                .into_iter()
                .find(|c| tag(*c) == *t)
                .unwrap_or(ErrorCode::Internal),
        );
    }
    match (e.esource(), e.etype()) {
        (ErrorSource::Downstream, ErrorType::InvalidHTTPHeader | ErrorType::H1Error) => {
            Some(ErrorCode::BadRequest)
        }
        (ErrorSource::Downstream, _) => None,
        (_, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => Some(ErrorCode::UpstreamTimeout),
        (
            ErrorSource::Upstream,
            ErrorType::InvalidHTTPHeader
            | ErrorType::H1Error
            | ErrorType::H2Error
            | ErrorType::InvalidH2,
        ) => Some(ErrorCode::InvalidUpstreamResponse),
        (
            ErrorSource::Upstream,
            ErrorType::ConnectionClosed
            | ErrorType::ReadError
            | ErrorType::WriteError
            | ErrorType::ConnectError
            | ErrorType::ConnectRefused,
        ) => Some(ErrorCode::AgentOffline),
        (_, ErrorType::HTTPStatus(_)) => Some(ErrorCode::BadRequest),
        _ => Some(ErrorCode::Internal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_close_has_no_code() {
        assert_eq!(code_for(&connection_closed_by_policy()), None);
    }

    #[test]
    fn custom_errors_round_trip() {
        for code in [
            ErrorCode::AgentOffline,
            ErrorCode::AgentBusy,
            ErrorCode::UpstreamTimeout,
            ErrorCode::EndpointNotFound,
        ] {
            assert_eq!(code_for(&edge_error(code, "x")), Some(code));
        }
    }

    #[test]
    fn upstream_failures_map_to_codes() {
        let mut e = Error::explain(ErrorType::InvalidHTTPHeader, "bad");
        e.esource = ErrorSource::Upstream;
        assert_eq!(code_for(&e), Some(ErrorCode::InvalidUpstreamResponse));
        let mut e = Error::explain(ErrorType::ReadError, "gone");
        e.esource = ErrorSource::Downstream;
        assert_eq!(code_for(&e), None);
    }
}
