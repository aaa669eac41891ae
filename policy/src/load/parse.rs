//! A policy document compiled into rules: `Policy::parse` is the only way to get one.

use crate::actions::Action;
use crate::cel::expr::Expr;
use crate::load::check::{list, string_list, Cx, Obj};
use crate::load::errors::PolicyErrors;
use crate::load::node::{self, Node};
use crate::phase::Phase;

/// A compiled policy: its rules per phase. Immutable; built by [`Policy::parse`] or
/// [`Shorthand::compile`](crate::Shorthand::compile), evaluated by an [`Engine`](crate::Engine).
#[derive(Debug)]
pub struct Policy {
    pub(crate) origin: String,
    pub(crate) request: Vec<Rule>,
    pub(crate) response: Vec<Rule>,
    /// Which `actions.ngrok.*` results its expressions read (see [`crate::cel::vars::wanted_results`]).
    pub(crate) wanted_results: u32,
}

/// One rule: ANDed expressions and ordered actions.
#[derive(Debug)]
pub(crate) struct Rule {
    /// The name, else `origin: on_http_request[i]`.
    pub label: String,
    pub expressions: Vec<Expr>,
    pub actions: Vec<Action>,
}

const PHASES: &[&str] = &["on_http_request", "on_http_response", "on_tcp_connect"];

impl Policy {
    /// Compiles a YAML or JSON traffic-policy document. `origin` labels messages, e.g.
    /// `traffic-policy.yml:12:7: on_http_request[2].actions[0].config.status_code: expected an
    /// integer 100..=599, got 42`. Every problem is reported, one [`PolicyError`](crate::PolicyError) each.
    pub fn parse(source: &str, origin: &str) -> Result<Self, PolicyErrors> {
        let mut cx = Cx::new(origin);
        let root = match node::load(source) {
            Ok(n) => n,
            Err((pos, msg)) => {
                cx.err("", pos, format!("invalid YAML/JSON: {msg}"));
                return Err(PolicyErrors::new(cx.errors));
            }
        };
        let mut policy = Self::compile(&mut cx, &root, origin);
        policy.wanted_results = crate::cel::vars::wanted_results(source);
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
            request: Vec::new(),
            response: Vec::new(),
            wanted_results: 0,
        };
        if root.kind == node::Kind::Null {
            return policy;
        }
        let Some(obj) = Obj::open(cx, root, "", PHASES) else {
            return policy;
        };
        if let Some((n, p)) = obj.get("on_tcp_connect") {
            cx.err(
                &p,
                n.pos,
                "on_tcp_connect is not supported: Sluice has no TCP endpoints yet",
            );
        }
        for phase in [Phase::Request, Phase::Response] {
            let Some((n, p)) = obj.get(phase.key()) else {
                continue;
            };
            let rules: Vec<Rule> = list(cx, n, &p, None)
                .into_iter()
                .filter_map(|(rn, rp)| compile_rule(cx, rn, &rp, phase, origin))
                .collect();
            match phase {
                Phase::Request => policy.request = rules,
                Phase::Response => policy.response = rules,
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

    pub(crate) fn rules(&self, phase: Phase) -> &[Rule] {
        match phase {
            Phase::Request => &self.request,
            Phase::Response => &self.response,
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
            match Expr::compile(&src, phase) {
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
        for (an, ap) in items {
            actions.extend(Action::compile(cx, an, &ap, phase));
        }
    }
    let label = name.unwrap_or_else(|| format!("{origin}: {path}"));
    (cx.errors.len() == before).then_some(Rule {
        label,
        expressions,
        actions,
    })
}

#[cfg(test)]
mod tests {
    use crate::testutil::errors;

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let errs = errors(
            r#"on_http_request:
  - name: first
    expressions: ["req.method =="]
    actions:
      - type: deny
        config:
          status_code: "x"
  - actions:
      - type: teleport
      - type: compress-response
  - expressions: ["req.nope == 1", "frobnicate(req.method)", "res.status_code == 200"]
    actions: [{type: deny, config: {code: 1}}]
inbound: []
"#,
        );
        let expected = [
            "test.yml:3:19: on_http_request[0].expressions[0]: invalid CEL expression `req.method ==`",
            "test.yml:7:24: on_http_request[0].actions[0].config.status_code: expected an integer 100..=599, got \"x\"",
            "test.yml:9:15: on_http_request[1].actions[0].type: unknown action type `teleport`",
            "test.yml:10:15: on_http_request[1].actions[1].type: action `compress-response` is not allowed in on_http_request",
            "test.yml:11:19: on_http_request[2].expressions[0]: in CEL expression `req.nope == 1`: unknown variable `req.nope`",
            "test.yml:11:36: on_http_request[2].expressions[1]: in CEL expression `frobnicate(req.method)`: unknown function `frobnicate`",
            "test.yml:11:62: on_http_request[2].expressions[2]: in CEL expression `res.status_code == 200`: `res.status_code` is only available in on_http_response",
            "test.yml:12:37: on_http_request[2].actions[0].config.code: unknown field `code`, expected one of: status_code",
            "test.yml:13:1: inbound: unknown field `inbound`",
        ];
        assert_eq!(errs.len(), expected.len(), "{errs:#?}");
        for (e, x) in errs.iter().zip(expected) {
            assert!(e.starts_with(x), "\n got: {e}\nwant: {x}");
        }
    }

    #[test]
    fn tcp_phase_and_unsupported_actions_are_explained() {
        let errs = errors("on_tcp_connect: [{actions: [{type: deny}]}]\non_http_request: [{actions: [{type: circuit-breaker, config: {}}]}]");
        assert!(
            errs[0].contains(
                "on_tcp_connect: on_tcp_connect is not supported: Sluice has no TCP endpoints yet"
            ),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("action type `circuit-breaker` is not supported by Sluice yet"),
            "{errs:?}"
        );
    }

    #[test]
    fn rule_shape_is_checked() {
        let errs = errors("on_http_request: [{name: x}, {actions: []}, {actions: [{config: {}}]}]");
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("on_http_request[0]: missing required field `actions`"));
        assert!(errs[1].contains("on_http_request[1].actions: a rule needs at least one action"));
        assert!(errs[2].contains("on_http_request[2].actions[0]: missing required field `type`"));
    }

    #[test]
    fn json_documents_and_empty_documents() {
        let p = crate::Policy::parse(
            r#"{"on_http_request": [{"actions": [{"type": "deny"}]}]}"#,
            "p.json",
        )
        .unwrap();
        assert_eq!(p.rule_counts(), (1, 0));
        assert_eq!(
            crate::Policy::parse("", "empty.yml").unwrap().rule_counts(),
            (0, 0)
        );
        let e = crate::Policy::parse("{\"on_http_request\": [", "p.json").unwrap_err();
        assert!(
            e.to_string().starts_with("p.json:2:1: invalid YAML/JSON"),
            "{e}"
        );
    }

    #[test]
    fn comprehension_variables_and_macros_are_allowed() {
        crate::Policy::parse(
            "on_http_request: [{expressions: [\"req.headers.exists(k, k.startsWith('x-')) && has(req.headers.host) && type(req.method) == string\"], actions: [{type: deny}]}]",
            "t.yml",
        )
        .unwrap();
    }
}
