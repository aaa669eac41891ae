//! restrict-ips: allow or refuse by the client's L4 address (never `x-forwarded-for`).

use super::{template, Cfg, Exec, Flow};
use crate::cel::expr::Template;
use crate::codes;
use crate::load::check::{string_list, Cx, Obj};
use crate::run::state::Decision;
use cel::Value;
use http::StatusCode;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// One CIDR entry: parsed now when literal, after interpolation otherwise.
#[derive(Debug)]
enum Cidr {
    Fixed(IpNet),
    Dynamic(Template),
}

/// `restrict-ips`: allowed iff some `allow` entry matches and no `deny` entry does.
#[derive(Debug)]
pub(crate) struct RestrictIps {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
    enforce: bool,
}

/// Parses `1.2.3.4/24`, or a bare address as a single-host network.
pub(crate) fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn cidrs(cx: &mut Cx, obj: &Obj, key: &str, phase: crate::Phase) -> Vec<Cidr> {
    let Some((node, path)) = obj.get(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (entry, p, pos) in string_list(cx, node, &path, None) {
        let Some(t) = template(cx, &entry, &p, pos, phase) else {
            continue;
        };
        match t.literal().map(parse_cidr) {
            Some(Some(net)) => out.push(Cidr::Fixed(net)),
            Some(None) => cx.err(&p, pos, format!("invalid CIDR `{entry}`")),
            None => out.push(Cidr::Dynamic(t)),
        }
    }
    out
}

impl RestrictIps {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["allow", "deny", "enforce", "ip_policies"])?;
        let before = cx.errors.len();
        if let Some((n, p)) = obj.get("ip_policies") {
            cx.err(&p, n.pos, "`ip_policies` (ngrok-hosted IP policies) are not supported; list CIDRs in `allow`/`deny`");
        }
        let allow = cidrs(cx, &obj, "allow", c.phase);
        let deny = cidrs(cx, &obj, "deny", c.phase);
        let enforce = obj.bool(cx, "enforce", true);
        if allow.is_empty() && cx.errors.len() == before {
            let msg = if deny.is_empty() {
                "expected `allow` and/or `deny` CIDRs"
            } else {
                "`deny` without `allow` would refuse every address (allowed = some allow matches and no deny matches); add `0.0.0.0/0` and `::/0` to `allow`"
            };
            cx.err(&c.path, obj.pos, msg);
        }
        (cx.errors.len() == before).then_some(Self {
            allow,
            deny,
            enforce,
        })
    }

    pub fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "restrict-ips";
        let ip = ex.st.client_ip;
        let allowed = match self.first_match(ex, &self.allow, ip) {
            Ok(m) => m,
            Err(flow) => return flow,
        };
        let denied = match self.first_match(ex, &self.deny, ip) {
            Ok(m) => m,
            Err(flow) => return flow,
        };
        let (action, matched) = match (allowed, denied) {
            (_, Some(d)) => ("deny", Some(d)),
            (Some(a), None) => ("allow", Some(a)),
            (None, None) => ("deny", None),
        };
        ex.set_result("restrict_ips", || {
            let results: HashMap<String, Value> = HashMap::from([
                ("action".to_string(), Value::from(action)),
                (
                    "matched_cidr".to_string(),
                    Value::from(matched.map_or_else(String::new, |m| m.to_string())),
                ),
            ]);
            results.into()
        });
        if action == "allow" {
            ex.record(ACTION, Decision::Allow, self.enforce);
            return Flow::Next;
        }
        ex.refuse(ACTION, Decision::Deny, self.enforce, || {
            codes::error_response(
                StatusCode::FORBIDDEN,
                codes::IP_RESTRICTED,
                "The client IP address is not allowed.",
            )
        })
    }

    fn first_match(&self, ex: &mut Exec, list: &[Cidr], ip: IpAddr) -> Result<Option<IpNet>, Flow> {
        for c in list {
            let net = match c {
                Cidr::Fixed(n) => *n,
                Cidr::Dynamic(t) => {
                    let s = ex.render("restrict-ips", t)?;
                    parse_cidr(&s).ok_or_else(|| {
                        ex.fail(
                            "restrict-ips",
                            codes::INTERPOLATION_FAILED,
                            &format!("interpolated CIDR `{s}` is invalid"),
                        )
                    })?
                }
            };
            if net.contains(&ip) {
                return Ok(Some(net));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::Decision;

    const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          allow: ["10.0.0.0/8", "2001:db8::/32"]
          deny: ["10.6.6.0/24"]
"#;

    #[test]
    fn allowed_iff_an_allow_matches_and_no_deny_does() {
        let e = engine(POLICY);
        let o = run(&e, req("GET /", &[]), "10.1.1.1");
        assert!(o.forwarded);
        assert_eq!(o.st.ip_policy(), Some(Decision::Allow));
        let o = run(&e, req("GET /", &[]), "10.6.6.1");
        assert_eq!(o.res.status(), 403);
        assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3205"));
        assert_eq!(run(&e, req("GET /", &[]), "192.168.1.1").res.status(), 403);
        assert!(run(&e, req("GET /", &[]), "2001:db8::1").forwarded);
        assert!(
            run(&e, req("GET /", &[]), "::ffff:10.1.1.1").forwarded,
            "v4-mapped v6 is v4"
        );
    }

    #[test]
    fn never_reads_x_forwarded_for() {
        let e = engine(POLICY);
        let o = run(
            &e,
            req("GET /", &[("x-forwarded-for", "10.1.1.1")]),
            "8.8.8.8",
        );
        assert_eq!(o.res.status(), 403);
    }

    #[test]
    fn enforce_false_and_results() {
        let e = engine(
            r#"
on_http_request:
  - actions: [{type: restrict-ips, config: {allow: ["10.0.0.0/8"], enforce: false}}]
  - expressions: ["actions.ngrok.restrict_ips.action == 'deny'"]
    actions: [{type: add-headers, config: {headers: {x-outsider: "${actions.ngrok.restrict_ips.matched_cidr}!"}}}]
"#,
        );
        let o = run(&e, req("GET /", &[]), "8.8.8.8");
        assert!(o.forwarded);
        assert_eq!(o.req.headers["x-outsider"], "!");
        assert_eq!(o.st.ip_policy(), Some(Decision::Deny));
    }

    #[test]
    fn bad_cidrs_and_deny_only_are_rejected() {
        let errs = errors("on_http_request: [{actions: [{type: restrict-ips, config: {allow: ['10.0.0.0/33', 'x']}}]}]");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("allow[0]: invalid CIDR `10.0.0.0/33`"));
        let errs = errors(
            "on_http_request: [{actions: [{type: restrict-ips, config: {deny: ['1.2.3.4/32']}}]}]",
        );
        assert!(errs[0].contains("would refuse every address"), "{errs:?}");
    }
}
