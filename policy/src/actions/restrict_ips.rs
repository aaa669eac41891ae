//! restrict-ips: allow or refuse by the client's L4 address (never `x-forwarded-for`).

use super::action::{Action, Exec, Flow};
use super::config::{template, Cfg};
use crate::cel::names::Names;
use crate::cel::template::Template;
use crate::codes;
use crate::load::check::{string_list, Cx, Obj};
use crate::phase::Phase;
use crate::run::outcome::{ActionOutcome, Decision};
use crate::run::state::RequestState;
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

fn cidrs(cx: &mut Cx, obj: &Obj, key: &str, names: Names<'_>) -> Vec<Cidr> {
    let Some((node, path)) = obj.get(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (entry, p, pos) in string_list(cx, node, &path, None) {
        let Some(t) = template(cx, &entry, &p, pos, names) else {
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
        let allow = cidrs(cx, &obj, "allow", c.names);
        let deny = cidrs(cx, &obj, "deny", c.names);
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
}

impl Action for RestrictIps {
    fn run(&self, ex: &mut Exec) -> Flow {
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
}

impl RestrictIps {
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

impl RequestState {
    /// The restrict-ips decision (`Allow` or `Deny`), if one ran.
    pub fn ip_policy(&self) -> Option<Decision> {
        self.last_outcome("restrict-ips")
    }

    /// The last restrict-ips outcome of one phase, with whether it was enforced: for
    /// on_tcp_connect, the decision `tcp_connection_closed` events carry.
    pub fn ip_policy_in(&self, phase: Phase) -> Option<&ActionOutcome> {
        self.outcomes
            .iter()
            .rev()
            .find(|o| o.phase == phase && o.action == "restrict-ips")
    }
}
