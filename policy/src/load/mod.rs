//! Loading: a policy document (or the agent's shorthand flags) checked and compiled into a
//! `Policy`, every problem reported with its place.

pub(crate) mod check;
pub(crate) mod errors;
pub(crate) mod node;
pub(crate) mod parse;
pub(crate) mod shorthand;

#[cfg(test)]
mod tests;
