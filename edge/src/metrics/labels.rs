//! Label values with a bounded set of values: whatever a client, agent or policy sends, the
//! number of series stays fixed (see docs/metrics.md, "Cardinality").

use sluice_policy::Decision;
use sluice_proto::error_code::ErrorCode;
use std::sync::LazyLock;

/// The `endpoint` label of requests whose host no `edge.yaml` endpoint names.
pub const OTHER_ENDPOINT: &str = "other";

/// `2xx`, `4xx`, …; `none` when no response was written (client gone before an answer).
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "none",
    }
}

/// The `error_code` label: one of Sluice's own codes, else `other` (a policy may write any
/// value into `sluice-error-code`; it must not create series).
pub fn error_code(written: &str) -> &'static str {
    static CODES: LazyLock<Vec<String>> =
        LazyLock::new(|| ErrorCode::ALL.iter().map(ToString::to_string).collect());
    CODES
        .iter()
        .find(|c| *c == written)
        .map_or("other", String::as_str)
}

/// The `decision` label of a policy action outcome.
pub fn decision(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "allowed",
        Decision::Deny => "denied",
        Decision::Challenge => "challenged",
        Decision::RateLimited => "rate_limited",
        Decision::Preflight => "preflight",
        Decision::Respond => "responded",
        Decision::Forward => "forwarded",
        Decision::Close => "closed",
        Decision::Modify => "modified",
        Decision::Skip => "skipped",
        Decision::Error => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_map_to_their_text_or_other() {
        assert_eq!(error_code("ERR_SLUICE_3200"), "ERR_SLUICE_3200");
        assert_eq!(error_code("ERR_MADE_UP_BY_A_POLICY"), "other");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "none");
    }
}
