//! The live status screen `agent http` shows when stdout is a terminal.

pub mod screen;
pub mod stats;
pub mod terminal;

use std::io::IsTerminal;

/// Whether to show the screen: stdout is a terminal and logs do not go to it.
pub fn wanted(log_destination: &str) -> bool {
    std::io::stdout().is_terminal() && log_destination != "stdout"
}
