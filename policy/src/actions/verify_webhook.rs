//! verify-webhook: a 403 unless the request carries its provider's valid signature.

pub(crate) mod signatures;

use super::action::{Action, Exec, Flow};
use super::config::{header_name, parse_duration, template, Cfg};
use crate::cel::template::Template;
use crate::cel::url::full_url;
use crate::codes;
use crate::load::check::Cx;
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use cel::Value;
use http::StatusCode;
use signatures::{Delivery, Failure, GenericHmac, Provider, PROVIDERS};
use std::collections::HashMap;
use std::time::Duration;

/// `verify-webhook`.
#[derive(Debug)]
pub(crate) struct VerifyWebhook {
    provider: Provider,
    secret: Template,
    enforce: bool,
    tolerance: Duration,
}

/// Config fields of the generic `hmac-sha256` provider (Sluice's own).
const GENERIC_FIELDS: &[&str] = &["header", "prefix", "encoding", "timestamp_header"];

impl VerifyWebhook {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(
            cx,
            &[
                "provider",
                "secret",
                "enforce",
                "timestamp_tolerance",
                "header",
                "prefix",
                "encoding",
                "timestamp_header",
            ],
        )?;
        let before = cx.errors.len();
        let provider = obj.require(cx, "provider").and_then(|_| {
            let (id, path, pos) = obj.string(cx, "provider")?;
            let id = id.to_ascii_lowercase();
            if id == "hmac-sha256" {
                return generic(cx, &obj);
            }
            for field in GENERIC_FIELDS {
                if let Some((n, p)) = obj.get(field) {
                    cx.err(
                        &p,
                        n.pos,
                        format!("`{field}` only applies to provider `hmac-sha256`"),
                    );
                }
            }
            let p = Provider::named(&id);
            if p.is_none() {
                cx.err(
                    &path,
                    pos,
                    format!(
                        "unknown webhook provider `{id}`, expected one of: {}",
                        PROVIDERS.join(", ")
                    ),
                );
            }
            p
        });
        let secret = obj.require(cx, "secret").and_then(|_| {
            let (s, path, pos) = obj.string(cx, "secret")?;
            if s.is_empty() {
                cx.err(&path, pos, "the secret is empty");
                return None;
            }
            template(cx, &s, &path, pos, c.names)
        });
        let enforce = obj.bool(cx, "enforce", true);
        let tolerance = match obj.string(cx, "timestamp_tolerance") {
            None => Duration::from_secs(300),
            Some((t, path, pos)) => match parse_duration(&t) {
                Some(secs @ 1..=86_400) => Duration::from_secs(secs),
                _ => {
                    cx.err(
                        &path,
                        pos,
                        format!("expected a duration from 1s to 24h, got `{t}`"),
                    );
                    Duration::ZERO
                }
            },
        };
        if cx.errors.len() != before {
            return None;
        }
        Some(Self {
            provider: provider?,
            secret: secret?,
            enforce,
            tolerance,
        })
    }
}

impl Action for VerifyWebhook {
    fn reads_request_body(&self) -> bool {
        true
    }

    fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "verify-webhook";
        let secret = match ex.render(ACTION, &self.secret) {
            Ok(s) => s,
            Err(flow) => return flow,
        };
        let url = full_url(ex.req(), ex.st);
        let body = ex.st.request_body.clone().unwrap_or_default();
        let delivery = Delivery {
            headers: ex.req().headers(),
            body: &body,
            url: &url,
            now: ex.st.now,
        };
        let verdict = self
            .provider
            .verify(secret.as_bytes(), &delivery, self.tolerance);
        let verified = verdict.is_ok();
        ex.set_result("verify_webhook", || {
            HashMap::from([("verified".to_string(), Value::Bool(verified))]).into()
        });
        let failure = match verdict {
            Ok(()) => {
                ex.record(ACTION, Decision::Allow, self.enforce);
                return Flow::Next;
            }
            Err(f) => f,
        };
        ex.st.push_error(format!("{ACTION}: {failure}"));
        ex.refuse(ACTION, Decision::Deny, self.enforce, || {
            codes::error_response(
                StatusCode::FORBIDDEN,
                codes::WEBHOOK_VERIFICATION_FAILED,
                &message(&failure),
            )
        })
    }
}

/// The client-facing reason (names the missing header; never the expected signature).
fn message(f: &Failure) -> String {
    format!("Webhook verification failed: {f}.")
}

/// The generic provider's fields: `header` required, `prefix`, `encoding` (hex|base64),
/// `timestamp_header`.
fn generic(cx: &mut Cx, obj: &crate::load::check::Obj) -> Option<Provider> {
    let header = obj.require(cx, "header").and_then(|_| {
        let (h, path, pos) = obj.string(cx, "header")?;
        header_name(cx, &h, &path, pos).map(|n| n.as_str().to_string())
    });
    let prefix = obj
        .string(cx, "prefix")
        .map(|(p, _, _)| p)
        .unwrap_or_default();
    let base64 = match obj.string(cx, "encoding") {
        None => false,
        Some((e, _, _)) if e == "hex" => false,
        Some((e, _, _)) if e == "base64" => true,
        Some((e, path, pos)) => {
            cx.err(&path, pos, format!("expected `hex` or `base64`, got `{e}`"));
            false
        }
    };
    let timestamp_header = obj
        .string(cx, "timestamp_header")
        .and_then(|(h, path, pos)| header_name(cx, &h, &path, pos).map(|n| n.as_str().to_string()));
    Some(Provider::Generic(GenericHmac {
        header: header?,
        prefix,
        base64,
        timestamp_header,
    }))
}

impl RequestState {
    /// The verify-webhook decision (`Allow` or `Deny`), if one ran.
    pub fn webhook_verification(&self) -> Option<Decision> {
        self.last_outcome("verify-webhook")
    }
}
