//! What the agent runs — `AgentConfig` (`agent.rs`: the edge and its endpoints), `EndpointConfig`
//! (`endpoint.rs`) and its `Upstream` (`upstream.rs`) — and how they are made from what the user
//! writes: `agent http` flags or `agent.yml` entries (`endpoint_spec.rs`), whole `agent.yml`
//! files (`agent_file.rs`), and traffic-policy inputs (`policy_input.rs`).

pub(crate) mod agent;
pub mod agent_file;
pub(crate) mod endpoint;
pub mod endpoint_spec;
pub mod policy_input;
pub(crate) mod upstream;
