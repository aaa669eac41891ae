//! forward-internal: hands the request to an internal endpoint of the same namespace, whose own
//! policy then runs; on failure it halts with an error response or lets the next rule run.

use super::action::{Action, Exec, Flow};
use super::config::{halts_on_error, url_template, Cfg};
use crate::cel::template::Template;
use crate::codes;
use crate::forward::{ForwardError, InternalUrl, MAX_FORWARD_DEPTH};
use crate::load::check::Cx;
use crate::phase::Phase;
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use cel::Value;
use std::collections::HashMap;

const ACTION: &str = "forward-internal";

/// `forward-internal`.
#[derive(Debug)]
pub(crate) struct ForwardInternal {
    /// The target, interpolated per request.
    url: Template,
    /// `on_error: continue`: a failed forward lets the next rule run instead of answering.
    continue_on_error: bool,
}

/// The endpoints a forwarded request passed before this one, oldest first: set by the edge
/// when it runs a target's policy, read to stop forwarding loops.
struct ForwardedFrom(Vec<String>);

impl RequestState {
    /// Tells the engine the URLs of the endpoints this request was forwarded through, the
    /// public endpoint first; call it before `on_http_request` of a forward's target.
    pub fn set_forwarded_from(&mut self, chain: Vec<String>) {
        self.scratch.put(ForwardedFrom(chain));
    }

    fn forwarded_from(&self) -> &[String] {
        self.scratch
            .get::<ForwardedFrom>()
            .map_or(&[], |f| f.0.as_slice())
    }
}

impl ForwardInternal {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["url", "on_error"])?;
        let before = cx.errors.len();
        let url = url_template(cx, &obj, "url", c.names, |u| {
            InternalUrl::parse(u).map(|_| ())
        });
        let continue_on_error = !halts_on_error(cx, &obj, true);
        (cx.errors.len() == before).then_some(Self {
            url: url?,
            continue_on_error,
        })
    }

    /// The target, checked: a valid URL, not one endpoint too many, online in the namespace.
    fn target(&self, ex: &mut Exec, rendered: &str) -> Result<InternalUrl, ForwardError> {
        let url = InternalUrl::parse(rendered).map_err(ForwardError::InvalidUrl)?;
        let passed = ex.st.forwarded_from();
        if passed.len() + 1 >= MAX_FORWARD_DEPTH {
            let mut chain: Vec<&str> = passed.iter().map(String::as_str).collect();
            chain.push(&ex.st.endpoint.url);
            let target = url.to_string();
            chain.push(&target);
            return Err(ForwardError::TooDeep {
                chain: chain.join(" → "),
            });
        }
        if let Some(reason) = scheme_mismatch(ex.phase, &ex.st.endpoint.protocol, &url) {
            return Err(ForwardError::SchemeMismatch {
                url: url.to_string(),
                reason: reason.into(),
            });
        }
        match &ex.services.internal {
            Some(internal) => internal.check(&url).map(|()| url),
            None => Ok(url),
        }
    }
}

/// Why `url` cannot take what the phase forwards, if it cannot: an HTTP request goes to an
/// http:// or https:// endpoint, a connection (on_tcp_connect) to a tcp:// or tls:// one, and
/// from a TCP or TLS endpoint to one of its own protocol.
fn scheme_mismatch(phase: Phase, protocol: &str, url: &InternalUrl) -> Option<&'static str> {
    if phase != Phase::TcpConnect {
        return (!url.is_http())
            .then_some("an HTTP request can only go to an http:// or https:// endpoint");
    }
    match (protocol, url.scheme()) {
        ("tcp", "tcp") | ("tls", "tls") => None,
        ("tcp", _) => Some("a TCP connection can only go to a tcp:// endpoint"),
        ("tls", _) => Some("a TLS connection can only go to a tls:// endpoint"),
        (_, "tcp" | "tls") => None,
        _ => Some("on_tcp_connect forwards the connection, so the target must be a tcp:// or tls:// endpoint"),
    }
}

impl Action for ForwardInternal {
    fn run(&self, ex: &mut Exec) -> Flow {
        let rendered = match ex.render(ACTION, &self.url) {
            Ok(u) => u,
            Err(flow) => return flow,
        };
        match self.target(ex, &rendered) {
            Ok(url) => {
                ex.set_result("forward_internal", || {
                    HashMap::from([("url".to_string(), Value::from(url.to_string()))]).into()
                });
                ex.record(ACTION, Decision::Forward, true);
                Flow::Forward(url)
            }
            Err(e) => {
                let message = e.to_string();
                ex.set_result("forward_internal", || {
                    let error = HashMap::from([
                        (
                            "code".to_string(),
                            Value::from(format!("ERR_SLUICE_{}", e.code())),
                        ),
                        ("message".to_string(), Value::from(message.clone())),
                    ]);
                    HashMap::from([
                        ("url".to_string(), Value::from(rendered.clone())),
                        ("error".to_string(), error.into()),
                    ])
                    .into()
                });
                ex.record(ACTION, Decision::Error, !self.continue_on_error);
                if self.continue_on_error {
                    Flow::Next
                } else {
                    Flow::respond(codes::error_response(e.status(), e.code(), &message))
                }
            }
        }
    }

    fn can_answer(&self) -> bool {
        true
    }
}
