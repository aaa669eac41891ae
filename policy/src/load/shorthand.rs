//! The agent's shorthand flags (`--basic-auth`, `--cidr-allow`, ...) as a policy of the same engine.

use crate::actions::result_keys;
use crate::cel::wanted::Wanted;
use crate::load::check::Cx;
use crate::load::errors::PolicyErrors;
use crate::load::node::{Kind, Node};
use crate::load::parse::Policy;
use crate::secrets::{LoadEnv, Resolver};

/// The agent's deprecated-in-ngrok but convenient flags, each a list of its repeated values.
///
/// [`Shorthand::compile`] turns them into the rules ngrok users expect, in this order:
/// on_http_request: restrict-ips (`--cidr-allow`/`--cidr-deny`; deny-only allows everything else),
/// basic-auth (`--basic-auth user:pass`, 401 challenge), remove-headers then add-headers
/// (`--request-header-remove`, `--request-header-add 'k: v'`); on_http_response: remove-headers
/// then add-headers (`--response-header-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Shorthand {
    /// `--basic-auth user:pass` (password 8 to 128 characters).
    pub basic_auth: Vec<String>,
    /// `--request-header-add 'name: value'`.
    pub request_header_add: Vec<String>,
    /// `--request-header-remove name`.
    pub request_header_remove: Vec<String>,
    /// `--response-header-add 'name: value'`.
    pub response_header_add: Vec<String>,
    /// `--response-header-remove name`.
    pub response_header_remove: Vec<String>,
    /// `--cidr-allow 10.0.0.0/8`.
    pub cidr_allow: Vec<String>,
    /// `--cidr-deny 1.2.3.4/32`.
    pub cidr_deny: Vec<String>,
    /// `--oauth PROVIDER` (google, github, gitlab, microsoft).
    pub oauth: Option<String>,
    /// `--oauth-client-id`.
    pub oauth_client_id: Option<String>,
    /// `--oauth-client-secret`.
    pub oauth_client_secret: Option<String>,
    /// `--oauth-scope` (repeatable).
    pub oauth_scope: Vec<String>,
    /// `--oauth-allow-email` (repeatable): only these users may in (with `--oauth` or `--oidc`).
    pub oauth_allow_email: Vec<String>,
    /// `--oauth-allow-domain` (repeatable): only users whose email is at these domains.
    pub oauth_allow_domain: Vec<String>,
    /// `--oidc ISSUER_URL`.
    pub oidc: Option<String>,
    /// `--oidc-client-id`.
    pub oidc_client_id: Option<String>,
    /// `--oidc-client-secret`.
    pub oidc_client_secret: Option<String>,
    /// `--oidc-scope` (repeatable).
    pub oidc_scope: Vec<String>,
}

fn s(text: &str) -> Node {
    Node::synthetic(Kind::Str(text.to_string()))
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::synthetic(Kind::Map(
        entries.into_iter().map(|(k, v)| (s(k), v)).collect(),
    ))
}

fn strings(items: &[String]) -> Node {
    Node::synthetic(Kind::Seq(items.iter().map(|i| s(i)).collect()))
}

fn rule(action: &str, config: Node) -> Node {
    let action = map(vec![("type", s(action)), ("config", config)]);
    map(vec![("actions", Node::synthetic(Kind::Seq(vec![action])))])
}

/// A rule that runs `action` only when `expression` holds.
fn rule_when(expression: &str, action: &str, config: Node) -> Node {
    let action = map(vec![("type", s(action)), ("config", config)]);
    map(vec![
        ("expressions", strings(&[expression.to_string()])),
        ("actions", Node::synthetic(Kind::Seq(vec![action]))),
    ])
}

/// The config of a sign-in flag: the provider field, client id and secret, scopes.
fn login_config(
    provider: (&str, &str),
    id: &Option<String>,
    secret: &Option<String>,
    scopes: &[String],
) -> Node {
    // Absent credentials stay absent: the action then uses the operator's default app.
    let mut entries = vec![(provider.0, s(provider.1))];
    for (key, value) in [("client_id", id), ("client_secret", secret)] {
        if let Some(v) = value {
            entries.push((key, s(v)));
        }
    }
    if !scopes.is_empty() {
        entries.push(("scopes", strings(scopes)));
    }
    map(entries)
}

/// Whether `value` is safe to quote in a CEL string and looks like an email or a domain.
fn plain_address(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-_+".contains(c))
}

/// `k: v` header flags as a headers map; a value without a colon is reported.
fn header_map(flag: &str, values: &[String], errors: &mut Vec<String>) -> Node {
    let mut entries = Vec::new();
    for v in values {
        match v.split_once(':') {
            Some((k, x)) => entries.push((s(k.trim()), s(x.trim()))),
            None => errors.push(format!("{flag} `{v}`: expected `name: value`")),
        }
    }
    Node::synthetic(Kind::Map(entries))
}

impl Shorthand {
    /// `--oauth` / `--oidc` and the allow lists, which compile to a later rule denying (403)
    /// every other identity.
    /// `expressions` receives every expression these rules evaluate.
    fn login_rules(
        &self,
        request: &mut Vec<(&'static str, Node)>,
        expressions: &mut Vec<String>,
        errors: &mut Vec<String>,
    ) {
        let mut key = None;
        if let Some(provider) = &self.oauth {
            let config = login_config(
                ("provider", provider),
                &self.oauth_client_id,
                &self.oauth_client_secret,
                &self.oauth_scope,
            );
            request.push(("--oauth", rule("oauth", config)));
            key = Some("oauth");
        }
        if let Some(issuer) = &self.oidc {
            if key.is_some() {
                errors.push("--oauth and --oidc: use one of them".into());
            }
            let config = login_config(
                ("issuer_url", issuer),
                &self.oidc_client_id,
                &self.oidc_client_secret,
                &self.oidc_scope,
            );
            request.push(("--oidc", rule("openid-connect", config)));
            key = Some("oidc");
        }
        if self.oauth_allow_email.is_empty() && self.oauth_allow_domain.is_empty() {
            return;
        }
        let Some(key) = key else {
            errors.push("--oauth-allow-email / --oauth-allow-domain need --oauth or --oidc".into());
            return;
        };
        let email = format!("actions.ngrok.{key}.identity.email.lower()");
        let mut allowed = Vec::new();
        let mut emails = Vec::new();
        for e in &self.oauth_allow_email {
            if plain_address(e) && e.contains('@') {
                emails.push(format!("'{}'", e.to_ascii_lowercase()));
            } else {
                errors.push(format!(
                    "--oauth-allow-email `{e}`: expected an email address"
                ));
            }
        }
        if !emails.is_empty() {
            allowed.push(format!("{email} in [{}]", emails.join(", ")));
        }
        for d in &self.oauth_allow_domain {
            let d = d.trim_start_matches('@');
            if plain_address(d) && !d.contains('@') {
                allowed.push(format!("{email}.endsWith('@{}')", d.to_ascii_lowercase()));
            } else {
                errors.push(format!("--oauth-allow-domain `{d}`: expected a domain"));
            }
        }
        if !allowed.is_empty() {
            let deny_others = format!("!({})", allowed.join(" || "));
            request.push((
                "--oauth-allow-email/--oauth-allow-domain",
                rule_when(&deny_others, "deny", map(Vec::new())),
            ));
            expressions.push(deny_others);
        }
    }

    /// True when no flag is set (then there is no layer to add).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Compiles the flags into a policy with origin `flags`; problems name the flag
    /// (`flags: --basic-auth[0]: the password must be 8 to 128 characters long`).
    pub fn compile(&self) -> Result<Policy, PolicyErrors> {
        self.compile_with(&LoadEnv::default())
    }

    /// [`Shorthand::compile`] with the host's secret vaults and default sign-in apps (`--oauth
    /// google` without `--oauth-client-id` uses the operator's app).
    pub fn compile_with(&self, env: &LoadEnv) -> Result<Policy, PolicyErrors> {
        let resolver = Resolver::new(env);
        let compiled = self.compile_resolved(&resolver);
        compiled.map(|mut p| {
            p.secrets = resolver.into_used();
            p
        })
    }

    fn compile_resolved(&self, resolver: &Resolver<'_>) -> Result<Policy, PolicyErrors> {
        let mut bad_format = Vec::new();
        let mut request: Vec<(&'static str, Node)> = Vec::new();
        let mut response: Vec<(&str, Node)> = Vec::new();
        if !self.cidr_allow.is_empty() || !self.cidr_deny.is_empty() {
            let allow = if self.cidr_allow.is_empty() {
                vec!["0.0.0.0/0".to_string(), "::/0".to_string()]
            } else {
                self.cidr_allow.clone()
            };
            let config = map(vec![
                ("allow", strings(&allow)),
                ("deny", strings(&self.cidr_deny)),
            ]);
            request.push(("--cidr-allow/--cidr-deny", rule("restrict-ips", config)));
        }
        let mut expressions = Vec::new();
        self.login_rules(&mut request, &mut expressions, &mut bad_format);
        if !self.basic_auth.is_empty() {
            let config = map(vec![("credentials", strings(&self.basic_auth))]);
            request.push(("--basic-auth", rule("basic-auth", config)));
        }
        let headers = [
            (
                &self.request_header_remove,
                "--request-header-remove",
                true,
                &mut request,
            ),
            (
                &self.response_header_remove,
                "--response-header-remove",
                true,
                &mut response,
            ),
        ];
        for (values, flag, _, rules) in headers {
            if !values.is_empty() {
                rules.push((
                    flag,
                    rule("remove-headers", map(vec![("headers", strings(values))])),
                ));
            }
        }
        for (values, flag, rules) in [
            (
                &self.request_header_add,
                "--request-header-add",
                &mut request,
            ),
            (
                &self.response_header_add,
                "--response-header-add",
                &mut response,
            ),
        ] {
            if !values.is_empty() {
                let hm = header_map(flag, values, &mut bad_format);
                rules.push((flag, rule("add-headers", map(vec![("headers", hm)]))));
            }
        }
        let flags: Vec<(String, &str)> = [
            ("on_http_request", &request),
            ("on_http_response", &response),
        ]
        .iter()
        .flat_map(|(phase, rules)| {
            rules
                .iter()
                .enumerate()
                .map(move |(i, (flag, _))| (format!("{phase}[{i}]"), *flag))
        })
        .collect();
        let doc = map(vec![
            (
                "on_http_request",
                Node::synthetic(Kind::Seq(request.into_iter().map(|(_, r)| r).collect())),
            ),
            (
                "on_http_response",
                Node::synthetic(Kind::Seq(response.into_iter().map(|(_, r)| r).collect())),
            ),
        ]);
        let mut cx = Cx::new("flags", resolver);
        for msg in bad_format {
            cx.err("", None, msg);
        }
        let mut policy = Policy::compile(&mut cx, &doc, "flags");
        // Which action results the rules read (`Policy::parse` finds them in the source text;
        // flags have none). Without it the allow-list rule would find no identity to check.
        policy.wanted = Wanted::scan(&expressions.join("\n"), result_keys());
        if cx.errors.is_empty() {
            return Ok(policy);
        }
        let mut errors = cx.errors;
        for e in &mut errors {
            if let Some((prefix, flag)) = flags.iter().find(|(p, _)| e.path.starts_with(p.as_str()))
            {
                let rest = e.path[prefix.len()..].trim_start_matches(".actions[0].config");
                let rest = rest.rsplit_once('.').map_or(rest, |(_, last)| last);
                let index = rest.find('[').map_or("", |i| &rest[i..]);
                e.path = format!("{flag}{index}");
            }
        }
        Err(PolicyErrors::new(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::Shorthand;
    use crate::run::engine::Engine;
    use crate::testutil::*;

    #[test]
    fn basic_auth_flag_behaves_like_ngrok() {
        let flags = Shorthand {
            basic_auth: vec!["user:password1".into()],
            ..Default::default()
        };
        let e = Engine::new(vec![flags.compile().unwrap()]);
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert_eq!(o.res.status(), 401);
        assert!(header(&o.res, "www-authenticate")
            .unwrap()
            .starts_with("Basic realm="));
        assert!(
            run(
                &e,
                req("GET /", &[("authorization", &basic("user", "password1"))]),
                "1.1.1.1"
            )
            .forwarded
        );
    }

    #[test]
    fn header_and_cidr_flags() {
        let flags = Shorthand {
            request_header_add: vec!["X-Env: prod".into()],
            request_header_remove: vec!["x-debug".into()],
            response_header_add: vec!["x-served-by:sluice".into()],
            response_header_remove: vec!["server".into()],
            cidr_deny: vec!["6.6.6.0/24".into()],
            ..Default::default()
        };
        let e = Engine::new(vec![flags.compile().unwrap()]);
        let o = run(&e, req("GET /", &[("x-debug", "1")]), "1.1.1.1");
        assert!(o.forwarded, "deny-only flags allow everything else");
        assert_eq!(o.req.headers["x-env"], "prod");
        assert!(!o.req.headers.contains_key("x-debug"));
        assert_eq!(header(&o.res, "x-served-by"), Some("sluice"));
        assert_eq!(run(&e, req("GET /", &[]), "6.6.6.6").res.status(), 403);
    }

    #[test]
    fn login_flags_compile_to_the_action_and_an_allow_list_rule() {
        let flags = Shorthand {
            oidc: Some("https://idp.example.com".into()),
            oidc_client_id: Some("app".into()),
            oidc_client_secret: Some("s3cret".into()),
            oauth_allow_email: vec!["Alice@Example.com".into()],
            oauth_allow_domain: vec!["@corp.example".into()],
            ..Default::default()
        };
        let policy = flags.compile().unwrap();
        let e = Engine::new(vec![policy]);
        // Offline (no edge) the sign-in cannot run: a clear 500, not a pass.
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert_eq!(o.res.status(), 500);
        assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3245"));
        let bad = Shorthand {
            oauth: Some("github".into()),
            oauth_allow_email: vec!["x' || true || '".into()],
            ..Default::default()
        };
        let errs = bad.compile().unwrap_err().to_string();
        assert!(errs.contains("expected an email address"), "{errs}");
        assert!(errs.contains("--oauth"), "{errs}");
        let allow_without_login = Shorthand {
            oauth_allow_domain: vec!["example.com".into()],
            ..Default::default()
        };
        let errs = allow_without_login.compile().unwrap_err().to_string();
        assert!(errs.contains("need --oauth or --oidc"), "{errs}");
    }

    #[test]
    fn flag_errors_name_the_flag() {
        let flags = Shorthand {
            basic_auth: vec!["user:short".into()],
            cidr_allow: vec!["nope".into()],
            request_header_add: vec!["novalue".into()],
            ..Default::default()
        };
        let errs = flags.compile().unwrap_err().to_string();
        assert!(
            errs.contains("flags: --request-header-add `novalue`: expected `name: value`"),
            "{errs}"
        );
        assert!(
            errs.contains("flags: --basic-auth[0]: the password must be 8 to 128 characters long"),
            "{errs}"
        );
        assert!(
            errs.contains("flags: --cidr-allow/--cidr-deny[0]: invalid CIDR `nope`"),
            "{errs}"
        );
    }
}
