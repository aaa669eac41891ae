//! close-connection: ends the request by closing the client's connection, without a response.

use super::action::{Action, Exec, Flow};
use super::config::Cfg;
use crate::load::check::Cx;
use crate::load::node::Kind;
use crate::run::outcome::Decision;

/// `close-connection`: no config.
#[derive(Debug)]
pub(crate) struct CloseConnection;

impl CloseConnection {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        // ngrok documents no fields; an empty or absent `config` is fine, anything else is a
        // typo worth reporting.
        if !matches!(c.node.kind, Kind::Null) {
            c.open(cx, &[])?;
        }
        Some(Self)
    }
}

impl Action for CloseConnection {
    fn run(&self, ex: &mut Exec) -> Flow {
        ex.record("close-connection", Decision::Close, true);
        Flow::Close
    }

    fn can_answer(&self) -> bool {
        true
    }
}
