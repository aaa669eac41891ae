//! A policy document compiled into rules: `Policy::parse` is the only way to get one.

use crate::actions::action::Action;
use crate::actions::{self as registry, result_keys};
use crate::cel::expr::Expr;
use crate::cel::names::Names;
use crate::cel::wanted::Wanted;
use crate::load::check::{list, string_list, Cx, Obj};
use crate::load::errors::{PolicyError, PolicyErrors, Pos};
use crate::load::node::{self, Node};
use crate::phase::Phase;
use crate::secrets::{LoadEnv, Resolver, Secret};

/// A compiled policy: its rules per phase. Immutable; built by [`Policy::parse`] or
/// [`Shorthand::compile`](crate::Shorthand::compile), evaluated by an [`Engine`](crate::Engine).
#[derive(Debug)]
pub struct Policy {
    pub(crate) origin: String,
    pub(crate) tcp_connect: Vec<Rule>,
    pub(crate) request: Vec<Rule>,
    pub(crate) response: Vec<Rule>,
    pub(crate) event_stream: Vec<Rule>,
    /// Which `actions.ngrok.*` results its expressions read.
    pub(crate) wanted: Wanted,
    /// Where on_http_request starts (else the document), for [`Policy::check_answers`].
    pub(crate) request_pos: Option<Pos>,
    /// Where each phase the document has starts, for [`Policy::check_protocol`].
    pub(crate) phase_pos: Vec<(Phase, Option<Pos>)>,
    /// The secrets it resolved while compiling, redacted from what the engine reports.
    pub(crate) secrets: Vec<Secret>,
}

/// One rule: ANDed expressions and ordered actions.
#[derive(Debug)]
pub(crate) struct Rule {
    /// The name, else `origin: on_http_request[i]`.
    pub label: String,
    pub expressions: Vec<Expr>,
    pub actions: Vec<Box<dyn Action>>,
}

const PHASES: &[&str] = &[
    "on_http_request",
    "on_http_response",
    "on_event_stream_message",
    "on_tcp_connect",
];

impl Policy {
    /// Compiles a YAML or JSON traffic-policy document. `origin` labels messages, e.g.
    /// `traffic-policy.yml:12:7: on_http_request[2].actions[0].config.status_code: expected an
    /// integer 100..=599, got 42`. Every problem is reported, one [`PolicyError`](crate::PolicyError) each.
    /// The host supplies nothing: `secrets.get` and login actions without client credentials
    /// are refused; see [`Policy::parse_with`].
    pub fn parse(source: &str, origin: &str) -> Result<Self, PolicyErrors> {
        Self::parse_with(source, origin, &LoadEnv::default())
    }

    /// [`Policy::parse`] with the host's secret vaults and default sign-in apps: each
    /// `secrets.get(vault, name)` and each login action without client credentials is resolved
    /// now, once.
    pub fn parse_with(source: &str, origin: &str, env: &LoadEnv) -> Result<Self, PolicyErrors> {
        let resolver = Resolver::new(env);
        let parsed = Self::parse_resolved(source, origin, &resolver);
        parsed.map(|mut p| {
            p.secrets = resolver.into_used();
            p
        })
    }

    fn parse_resolved(
        source: &str,
        origin: &str,
        resolver: &Resolver<'_>,
    ) -> Result<Self, PolicyErrors> {
        let mut cx = Cx::new(origin, resolver);
        cx.supplies = resolver.env().supplies();
        let root = match node::load(source) {
            Ok(n) => n,
            Err((pos, msg)) => {
                cx.err("", pos, format!("invalid YAML/JSON: {msg}"));
                return Err(PolicyErrors::new(cx.errors));
            }
        };
        let mut policy = Self::compile(&mut cx, &root, origin);
        policy.wanted = Wanted::scan(source, result_keys());
        if cx.errors.is_empty() {
            Ok(policy)
        } else {
            // Document order; the sort is stable, so one place's messages keep their order.
            cx.errors.sort_by_key(|e| e.pos.map(|p| (p.line, p.col)));
            Err(PolicyErrors::new(cx.errors))
        }
    }

    /// Compiles a document tree, collecting problems in `cx`.
    pub(crate) fn compile(cx: &mut Cx, root: &Node, origin: &str) -> Self {
        let mut policy = Self {
            origin: origin.to_string(),
            tcp_connect: Vec::new(),
            request: Vec::new(),
            response: Vec::new(),
            event_stream: Vec::new(),
            wanted: Wanted::default(),
            request_pos: root.pos,
            phase_pos: Vec::new(),
            secrets: Vec::new(),
        };
        if root.kind == node::Kind::Null {
            return policy;
        }
        let Some(obj) = Obj::open(cx, root, "", PHASES) else {
            return policy;
        };
        for phase in [
            Phase::TcpConnect,
            Phase::Request,
            Phase::Response,
            Phase::EventStream,
        ] {
            let Some((n, p)) = obj.get(phase.key()) else {
                continue;
            };
            if phase == Phase::Request {
                policy.request_pos = n.pos;
            }
            policy.phase_pos.push((phase, n.pos));
            let rules: Vec<Rule> = list(cx, n, &p, None)
                .into_iter()
                .filter_map(|(rn, rp)| compile_rule(cx, rn, &rp, phase, origin))
                .collect();
            match phase {
                Phase::TcpConnect => policy.tcp_connect = rules,
                Phase::Request => policy.request = rules,
                Phase::Response => policy.response = rules,
                Phase::EventStream => policy.event_stream = rules,
            }
        }
        policy
    }

    /// The label given to [`Policy::parse`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many rules each phase has: `(on_http_request, on_http_response)`.
    pub fn rule_counts(&self) -> (usize, usize) {
        (self.request.len(), self.response.len())
    }

    /// Whether some on_http_request action reads the request body.
    pub fn reads_request_body(&self) -> bool {
        self.request
            .iter()
            .flat_map(|r| &r.actions)
            .any(|a| a.reads_request_body())
    }

    /// For an endpoint without an upstream (a cloud endpoint): an error located at
    /// on_http_request (or the document's start) when no on_http_request action can answer or
    /// forward (custom-response, deny, redirect, forward-internal), since such an endpoint
    /// could never produce a response.
    pub fn check_answers(&self) -> Result<(), PolicyError> {
        let answers = self
            .request
            .iter()
            .flat_map(|r| &r.actions)
            .any(|a| a.can_answer());
        if answers {
            return Ok(());
        }
        Err(PolicyError {
            origin: self.origin.clone(),
            pos: self.request_pos,
            path: Phase::Request.key().to_string(),
            message: "a cloud endpoint has no agent behind it, so its policy must answer: add a \
                      forward-internal, custom-response, redirect, deny or close-connection action"
                .to_string(),
        })
    }

    /// For an endpoint of `protocol` (`http`, `https`, `tcp`, `tls`; `internal` for one
    /// reached only by forward-internal): an error located at a phase that could never run
    /// there. A TCP or TLS endpoint carries no HTTP, so it has no HTTP phases (ngrok's
    /// ERR_NGROK_2230); an internal HTTP endpoint receives forwarded requests, never a
    /// connection of its own, so it has no on_tcp_connect (ngrok's ERR_NGROK_2262).
    pub fn check_protocol(&self, protocol: &str, internal: bool) -> Result<(), PolicyError> {
        let tcp = matches!(protocol, "tcp" | "tls");
        let refused = self.phase_pos.iter().find(|(phase, _)| {
            let rules = !self.rules(*phase).is_empty();
            rules
                && if tcp {
                    phase.has_message()
                } else {
                    internal && *phase == Phase::TcpConnect
                }
        });
        let Some((phase, pos)) = refused else {
            return self.check_terminate_tls(protocol);
        };
        let message = if tcp {
            format!(
                "a {protocol} endpoint carries no HTTP, so {phase} never runs there: only \
                 on_tcp_connect applies (ngrok's ERR_NGROK_2230)"
            )
        } else {
            "an internal HTTP endpoint receives forwarded requests, never a connection of its \
             own, so on_tcp_connect never runs there; use a TCP or TLS endpoint (ngrok's \
             ERR_NGROK_2262)"
                .to_string()
        };
        Err(PolicyError {
            origin: self.origin.clone(),
            pos: *pos,
            path: phase.key().to_string(),
            message,
        })
    }

    /// terminate-tls finishes a TLS handshake: a `tcp://` or `http://` endpoint has none.
    fn check_terminate_tls(&self, protocol: &str) -> Result<(), PolicyError> {
        if !matches!(protocol, "tcp" | "http") {
            return Ok(());
        }
        let Some(index) = self
            .tcp_connect
            .iter()
            .position(|r| r.actions.iter().any(|a| a.terminates_tls()))
        else {
            return Ok(());
        };
        let pos = self
            .phase_pos
            .iter()
            .find(|(p, _)| *p == Phase::TcpConnect)
            .and_then(|(_, pos)| *pos);
        Err(PolicyError {
            origin: self.origin.clone(),
            pos,
            path: format!("{}[{index}]", Phase::TcpConnect.key()),
            message: format!(
                "terminate-tls finishes the client's TLS handshake, and a {protocol} endpoint's \
                 clients send none: it applies to tls:// and https:// endpoints"
            ),
        })
    }

    pub(crate) fn rules(&self, phase: Phase) -> &[Rule] {
        match phase {
            Phase::TcpConnect => &self.tcp_connect,
            Phase::Request => &self.request,
            Phase::Response => &self.response,
            Phase::EventStream => &self.event_stream,
        }
    }
}

fn compile_rule(cx: &mut Cx, node: &Node, path: &str, phase: Phase, origin: &str) -> Option<Rule> {
    let obj = Obj::open(cx, node, path, &["name", "expressions", "actions"])?;
    let before = cx.errors.len();
    let name = obj.string(cx, "name").map(|(n, _, _)| n);
    let mut expressions = Vec::new();
    if let Some((n, p)) = obj.get("expressions") {
        for (src, ep, pos) in string_list(cx, n, &p, None) {
            let names = Names {
                phase,
                results: result_keys(),
                supplies: cx.supplies,
                secrets: Some(cx.resolver),
                locals: &[],
            };
            match Expr::compile_condition(&src, names) {
                Ok(e) => expressions.push(e),
                Err(problems) => problems.into_iter().for_each(|m| cx.err(&ep, pos, m)),
            }
        }
    }
    let mut actions = Vec::new();
    if let Some((n, p)) = obj.require(cx, "actions") {
        let items = list(cx, n, &p, None);
        if items.is_empty() && matches!(n.kind, node::Kind::Seq(_)) {
            cx.err(&p, n.pos, "a rule needs at least one action");
        }
        let mut ended_by: Option<&str> = None;
        for (an, ap) in items {
            if let Some(ender) = ended_by {
                cx.err(
                    &ap,
                    an.pos,
                    format!("this action can never run: `{ender}` before it in the same rule always ends the phase"),
                );
            }
            actions.extend(registry::compile(cx, an, &ap, phase));
            ended_by = ended_by.or(registry::always_ends(an));
        }
    }
    let label = name.unwrap_or_else(|| format!("{origin}: {path}"));
    (cx.errors.len() == before).then_some(Rule {
        label,
        expressions,
        actions,
    })
}
