//! Loading: a policy document or the agent's flags compiled into a `Policy`, every problem located.

pub(crate) mod check;
pub(crate) mod errors;
pub(crate) mod node;
pub(crate) mod parse;
pub(crate) mod shorthand;

#[cfg(test)]
mod tests;
