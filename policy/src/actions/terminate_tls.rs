//! terminate-tls: sets how the edge terminates a connection's TLS (versions, certificate,
//! mutual TLS); the edge finishes the client's handshake with them where the action runs, or,
//! without one to finish, on_tcp_connect hands them over in its verdict.
//!
//! Every field is checked when the policy loads, PEM included. The certificate, key and CA
//! fields take literal text or `${secrets.get(...)}` (resolved at load too); a template that
//! reads a variable is refused, so the settings never fail on a connection.

use super::action::{Action, Exec, Flow};
use super::config::{template, Cfg};
use crate::load::check::{string_list, Cx, Obj};
use crate::load::errors::Pos;
use crate::run::handshake::Handshaken;
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use crate::tls::{certificates, MtlsStrategy, MutualTls, ServerIdentity, TerminateTls, TlsVersion};
use std::sync::Arc;

const ACTION: &str = "terminate-tls";
/// Its results: `actions.ngrok.terminate_tls`.
const ACTION_KEY: &str = "terminate_tls";

/// `terminate-tls`: its compiled settings, shared by every connection.
#[derive(Debug)]
pub(crate) struct TerminateTlsAction {
    settings: Arc<TerminateTls>,
}

/// The connection's handshake is made: a later terminate-tls has nothing to do.
struct Made;

/// The settings the terminate-tls of this connection chose, when no handshake could be made
/// in the phase.
struct Chosen(Arc<TerminateTls>);

impl RequestState {
    /// The settings of the terminate-tls that ran on this connection without a handshake (see
    /// [`Engine::on_tcp_connect_tls`](crate::Engine::on_tcp_connect_tls)), if any.
    pub fn terminate_tls(&self) -> Option<Arc<TerminateTls>> {
        self.scratch.get::<Chosen>().map(|c| Arc::clone(&c.0))
    }
}

impl TerminateTlsAction {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(
            cx,
            &[
                "min_version",
                "max_version",
                "server_certificate",
                "server_private_key",
                "mutual_tls_certificate_authorities",
                "mutual_tls_verification_strategy",
            ],
        )?;
        let before = cx.errors.len();
        let min = version(cx, &obj, "min_version", TlsVersion::Tls12);
        let max = version(cx, &obj, "max_version", TlsVersion::Tls13);
        let server = server_identity(cx, &obj, c);
        let mutual_tls = mutual_tls(cx, &obj, c);
        if cx.errors.len() != before {
            return None;
        }
        match TerminateTls::new(min, max, server, mutual_tls) {
            Ok(settings) => Some(Self {
                settings: Arc::new(settings),
            }),
            Err(e) => {
                let (p, pos) = obj
                    .get("min_version")
                    .map_or((c.path.clone(), obj.pos), |(n, p)| (p, n.pos));
                cx.err(&p, pos, e);
                None
            }
        }
    }
}

impl Action for TerminateTlsAction {
    fn terminates_tls(&self) -> bool {
        true
    }

    /// Runs twice: first it asks the engine for the handshake, then it records what became of
    /// it. A connection whose handshake an earlier terminate-tls made keeps it.
    fn run(&self, ex: &mut Exec) -> Flow {
        let Some(done) = ex.st.scratch.take::<Handshaken>() else {
            if ex.st.scratch.get::<Made>().is_some() {
                ex.st.trace_event(ex.phase, ex.rule, || {
                    format!("{ACTION}: skipped: the handshake is already made")
                });
                return Flow::Next;
            }
            return Flow::Terminate(Arc::clone(&self.settings));
        };
        match done {
            Handshaken::Done => {
                ex.st.scratch.put(Made);
                let tls = ex.st.conn().tls.clone();
                ex.set_result(ACTION_KEY, || tls.result_value());
                ex.record(ACTION, Decision::Allow, true);
                Flow::Next
            }
            Handshaken::Deferred => {
                ex.st.scratch.put(Chosen(Arc::clone(&self.settings)));
                ex.record(ACTION, Decision::Allow, true);
                Flow::Next
            }
            Handshaken::Failed(why) => {
                let why = format!("{ACTION}: the client's handshake failed: {why}");
                ex.st.push_error(why);
                ex.record(ACTION, Decision::Deny, true);
                Flow::Close
            }
        }
    }
}

/// `min_version` / `max_version`, `default` when absent.
fn version(cx: &mut Cx, obj: &Obj, key: &str, default: TlsVersion) -> TlsVersion {
    let Some((s, p, pos)) = obj.string(cx, key) else {
        return default;
    };
    TlsVersion::parse(&s).unwrap_or_else(|e| {
        cx.err(&p, pos, e);
        default
    })
}

/// A field's text, which must not depend on the connection: literal, or secrets resolved at
/// load. `None` (reported) otherwise.
fn constant(cx: &mut Cx, c: &Cfg, source: &str, path: &str, pos: Option<Pos>) -> Option<String> {
    let t = template(cx, source, path, pos, c.names)?;
    let text = t.constant();
    if text.is_none() {
        cx.err(
            path,
            pos,
            "terminate-tls reads its certificates and keys when the policy loads: give the PEM \
             text or `${secrets.get('vault', 'name')}`, not a value that depends on the \
             connection",
        );
    }
    text
}

/// `server_certificate` with `server_private_key`: both or neither.
fn server_identity(cx: &mut Cx, obj: &Obj, c: &Cfg) -> Option<ServerIdentity> {
    let cert = obj.string(cx, "server_certificate");
    let key = obj.string(cx, "server_private_key");
    let ((cert, cert_path, cert_pos), (key, key_path, key_pos)) = match (cert, key) {
        (None, None) => return None,
        (Some(_), None) => {
            cx.err(
                &c.path,
                obj.pos,
                "`server_certificate` needs `server_private_key`",
            );
            return None;
        }
        (None, Some(_)) => {
            cx.err(
                &c.path,
                obj.pos,
                "`server_private_key` needs `server_certificate`",
            );
            return None;
        }
        (Some(cert), Some(key)) => (cert, key),
    };
    let cert = constant(cx, c, &cert, &cert_path, cert_pos);
    let key = constant(cx, c, &key, &key_path, key_pos);
    let (cert, key) = (cert?, key?);
    ServerIdentity::from_pem(&cert, &key)
        .map_err(|e| {
            let at_key = e.starts_with("`server_private_key`");
            let (p, pos) = if at_key {
                (&key_path, key_pos)
            } else {
                (&cert_path, cert_pos)
            };
            cx.err(p, pos, e);
        })
        .ok()
}

/// `mutual_tls_certificate_authorities` and `mutual_tls_verification_strategy`: mutual TLS
/// is on when either is given.
fn mutual_tls(cx: &mut Cx, obj: &Obj, c: &Cfg) -> Option<MutualTls> {
    let before = cx.errors.len();
    let strategy = obj
        .string(cx, "mutual_tls_verification_strategy")
        .map(|(s, p, pos)| {
            MtlsStrategy::parse(&s).unwrap_or_else(|e| {
                cx.err(&p, pos, e);
                MtlsStrategy::RequireAndVerify
            })
        });
    let mut authorities = Vec::new();
    let cas = obj.get("mutual_tls_certificate_authorities");
    if let Some((node, path)) = &cas {
        for (source, p, pos) in string_list(cx, node, path, None) {
            let Some(text) = constant(cx, c, &source, &p, pos) else {
                continue;
            };
            match certificates(&text) {
                Ok(certs) => authorities.extend(certs),
                Err(e) => cx.err(&p, pos, e),
            }
        }
    }
    if strategy.is_none() && cas.is_none() {
        return None;
    }
    let strategy = strategy.unwrap_or(MtlsStrategy::RequireAndVerify);
    MutualTls::new(strategy, authorities)
        .map_err(|e| match &cas {
            // A CA that failed to read was reported already.
            _ if cx.errors.len() != before => {}
            Some((n, p)) => cx.err(p, n.pos, e),
            None => cx.err(&c.path, obj.pos, e),
        })
        .ok()
}
