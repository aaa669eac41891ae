//! basic-auth: a 401 challenge until the client presents one of the configured credentials.

use super::{template, Cfg, Exec, Flow};
use crate::cel::expr::Template;
use crate::codes;
use crate::load::check::{string_list, Cx};
use crate::run::state::Decision;
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

/// Splits `user:pass` at the first colon and checks ngrok's password length rule.
fn split(entry: &str) -> Result<(String, String), String> {
    let (user, pass) = entry
        .split_once(':')
        .ok_or_else(|| "expected `username:password`".to_string())?;
    if user.is_empty() {
        return Err("the username is empty".into());
    }
    if !(8..=128).contains(&pass.chars().count()) {
        return Err("the password must be 8 to 128 characters long".into());
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
                let Some(t) = template(cx, &entry, &p, pos, c.phase) else {
                    continue;
                };
                match t.literal() {
                    Some(lit) => match split(lit) {
                        Ok((user, pass)) => credentials.push(Credential::Fixed { user, pass }),
                        Err(e) => cx.err(&p, pos, e),
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

    pub fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "basic-auth";
        let req = ex.req();
        let headers = req.headers();
        if self.allow_cors_preflight && super::login::is_cors_preflight(req.method(), headers) {
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
        ex.st.basic_auth_user = presented.as_ref().map(|(u, _)| u.clone());
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

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::Decision;

    const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: basic-auth
        config:
          realm: staging
          credentials: ["alice:correct-horse", "bob:${'battery-staple'}"]
          allow_cors_preflight: true
  - expressions: ["actions.ngrok.basic_auth.credentials.authorized"]
    actions:
      - type: add-headers
        config: {headers: {x-user: "${actions.ngrok.basic_auth.credentials.username}"}}
"#;

    #[test]
    fn challenge_then_pass() {
        let e = engine(POLICY);
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert_eq!(o.res.status(), 401);
        assert_eq!(
            header(&o.res, "www-authenticate"),
            Some("Basic realm=\"staging\"")
        );
        assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3221"));
        assert_eq!(o.st.basic_auth(), Some((None, Decision::Challenge)));

        let o = run(
            &e,
            req("GET /", &[("authorization", &basic("alice", "wrong-pass"))]),
            "1.1.1.1",
        );
        assert_eq!(o.res.status(), 401);
        assert_eq!(
            o.st.basic_auth(),
            Some((Some("alice"), Decision::Challenge))
        );

        for (u, p) in [("alice", "correct-horse"), ("bob", "battery-staple")] {
            let o = run(
                &e,
                req("GET /", &[("authorization", &basic(u, p))]),
                "1.1.1.1",
            );
            assert!(o.forwarded, "{u}");
            assert_eq!(o.req.headers["x-user"], u);
            assert_eq!(o.st.basic_auth(), Some((Some(u), Decision::Allow)));
        }
    }

    #[test]
    fn cors_preflight_passes_only_when_allowed() {
        let e = engine(POLICY);
        let pre = [
            ("origin", "https://ui.example.com"),
            ("access-control-request-method", "POST"),
        ];
        let o = run(&e, req("OPTIONS /api", &pre), "1.1.1.1");
        assert!(o.forwarded);
        assert_eq!(o.st.basic_auth(), Some((None, Decision::Preflight)));
        assert_eq!(
            run(&e, req("OPTIONS /api", &pre[..1]), "1.1.1.1")
                .res
                .status(),
            401
        );
        let strict = engine("on_http_request: [{actions: [{type: basic-auth, config: {credentials: ['a:12345678']}}]}]");
        let o = run(&strict, req("OPTIONS /api", &pre), "1.1.1.1");
        assert_eq!(o.res.status(), 401);
        assert_eq!(
            header(&o.res, "www-authenticate"),
            Some("Basic realm=\"sluice\"")
        );
    }

    #[test]
    fn enforce_false_records_only() {
        let e = engine(
            "on_http_request: [{actions: [{type: basic-auth, config: {credentials: ['a:12345678'], enforce: false}}]},\
             {expressions: ['!actions.ngrok.basic_auth.credentials.presented'], actions: [{type: add-headers, config: {headers: {x-anon: '1'}}}]}]",
        );
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert!(o.forwarded);
        assert_eq!(o.req.headers["x-anon"], "1");
        assert!(!o.st.outcomes()[0].enforced);
    }

    #[test]
    fn credentials_are_validated() {
        let errs = errors("on_http_request: [{actions: [{type: basic-auth, config: {credentials: ['nocolon', 'a:short']}}]}]");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("credentials[0]: expected `username:password`"));
        assert!(errs[1].contains("credentials[1]: the password must be 8 to 128 characters long"));
    }
}
