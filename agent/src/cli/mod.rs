//! The `agent` binary's command line: the flags (`args.rs`, `inspect_args.rs`), one file per
//! command (`http.rs`, `start.rs`, `config_check.rs`, `policy.rs`), running the agent until a
//! signal while reporting to the user (`run.rs`), and logging (`logging.rs`).

pub(crate) mod args;
pub(crate) mod config_check;
pub(crate) mod http;
pub(crate) mod inspect_args;
pub(crate) mod logging;
pub(crate) mod policy;
pub(crate) mod raw;
pub(crate) mod run;
pub(crate) mod start;
