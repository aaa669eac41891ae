//! basic-auth: a 401 challenge until the client presents one of the configured credentials.

use super::action::{is_cors_preflight, Action, Exec, Flow};
use super::config::{template, Cfg};
use crate::cel::template::Template;
use crate::codes;
use crate::load::check::{string_list, Cx};
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use base64::Engine as _;
use cel::Value;
use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::StatusCode;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// One `user:pass` entry: split now when literal, after interpolation otherwise.
#[derive(Debug)]
enum Credential {
    Fixed { user: String, pass: String },
    Dynamic(Template),
}

/// `basic-auth`.
#[derive(Debug)]
pub(crate) struct BasicAuth {
    credentials: Vec<Credential>,
    realm: String,
    challenge: HeaderValue,
    enforce: bool,
    allow_cors_preflight: bool,
}

/// Why a `user:pass` entry is not a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
enum CredentialError {
    #[error("expected `username:password`")]
    NoColon,
    #[error("the username is empty")]
    EmptyUser,
    #[error("the password must be 8 to 128 characters long")]
    PasswordLength,
}

/// Splits `user:pass` at the first colon and checks ngrok's password length rule.
fn split(entry: &str) -> Result<(String, String), CredentialError> {
    let (user, pass) = entry.split_once(':').ok_or(CredentialError::NoColon)?;
    if user.is_empty() {
        return Err(CredentialError::EmptyUser);
    }
    if !(8..=128).contains(&pass.chars().count()) {
        return Err(CredentialError::PasswordLength);
    }
    Ok((user.to_string(), pass.to_string()))
}

impl BasicAuth {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(
            cx,
            &["credentials", "realm", "enforce", "allow_cors_preflight"],
        )?;
        let before = cx.errors.len();
        let mut credentials = Vec::new();
        if let Some((node, path)) = obj.require(cx, "credentials") {
            let entries = string_list(cx, node, &path, Some(10));
            if entries.is_empty() {
                cx.err(&path, node.pos, "expected 1 to 10 credentials");
            }
            for (entry, p, pos) in entries {
                let Some(t) = template(cx, &entry, &p, pos, c.names) else {
                    continue;
                };
                match t.literal() {
                    Some(lit) => match split(lit) {
                        Ok((user, pass)) => credentials.push(Credential::Fixed { user, pass }),
                        Err(e) => cx.err(&p, pos, e.to_string()),
                    },
                    None => credentials.push(Credential::Dynamic(t)),
                }
            }
        }
        let realm = match obj.string(cx, "realm") {
            Some((r, p, pos)) => {
                if r.len() > 128
                    || !r.chars().all(|ch| ch.is_ascii_graphic() || ch == ' ')
                    || r.contains('"')
                {
                    cx.err(
                        &p,
                        pos,
                        "the realm must be at most 128 printable ASCII characters without `\"`",
                    );
                }
                r
            }
            None => "sluice".to_string(),
        };
        let enforce = obj.bool(cx, "enforce", true);
        let allow_cors_preflight = obj.bool(cx, "allow_cors_preflight", false);
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\"")).ok();
        if cx.errors.len() != before {
            return None;
        }
        Some(Self {
            credentials,
            realm,
            challenge: challenge?,
            enforce,
            allow_cors_preflight,
        })
    }
}

impl Action for BasicAuth {
    fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "basic-auth";
        let req = ex.req();
        let headers = req.headers();
        if self.allow_cors_preflight && is_cors_preflight(req.method(), headers) {
            ex.set_result("basic_auth", || result(false, "", false));
            ex.record(ACTION, Decision::Preflight, self.enforce);
            return Flow::Next;
        }
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(decode);
        let mut authorized = false;
        if let Some((user, pass)) = &presented {
            for cred in &self.credentials {
                let ok = match cred {
                    Credential::Fixed { user: u, pass: p } => eq(u, user) & eq(p, pass),
                    Credential::Dynamic(t) => {
                        let rendered = match ex.render(ACTION, t) {
                            Ok(r) => r,
                            Err(flow) => return flow,
                        };
                        split(&rendered).is_ok_and(|(u, p)| eq(&u, user) & eq(&p, pass))
                    }
                };
                authorized |= ok;
            }
        }
        let user = presented.as_ref().map_or("", |(u, _)| u.as_str());
        ex.set_result("basic_auth", || {
            result(presented.is_some(), user, authorized)
        });
        ex.st
            .scratch
            .put(PresentedUser(presented.as_ref().map(|(u, _)| u.clone())));
        if authorized {
            ex.record(ACTION, Decision::Allow, self.enforce);
            return Flow::Next;
        }
        let challenge = self.challenge.clone();
        let realm = &self.realm;
        ex.refuse(ACTION, Decision::Challenge, self.enforce, || {
            let mut res = codes::error_response(
                StatusCode::UNAUTHORIZED,
                codes::BASIC_AUTH_REQUIRED,
                &format!("Authentication required for realm \"{realm}\"."),
            );
            res.headers_mut().insert(WWW_AUTHENTICATE, challenge);
            res
        })
    }
}

/// Constant-time string equality (the length may leak, the content doesn't).
fn eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `(user, pass)` of an `Authorization: Basic ...` value.
fn decode(header: &str) -> Option<(String, String)> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn result(presented: bool, username: &str, authorized: bool) -> Value {
    let creds: HashMap<String, Value> = HashMap::from([
        ("presented".to_string(), Value::Bool(presented)),
        ("username".to_string(), Value::from(username)),
        ("authorized".to_string(), Value::Bool(authorized)),
    ]);
    HashMap::from([("credentials".to_string(), Value::from(creds))]).into()
}

/// The user name the last basic-auth found in `Authorization`, in the request state's scratch.
struct PresentedUser(Option<String>);

impl RequestState {
    /// The basic-auth user name presented and its decision (`Allow`, `Challenge`, `Preflight`).
    pub fn basic_auth(&self) -> Option<(Option<&str>, Decision)> {
        let user = self
            .scratch
            .get::<PresentedUser>()
            .and_then(|u| u.0.as_deref());
        self.last_outcome("basic-auth").map(|d| (user, d))
    }
}
