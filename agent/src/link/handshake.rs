//! The agent's handshake on a new link: its `Hello` (token, endpoints, the run it belongs to)
//! on the control stream, and the edge's `Welcome` or `Rejected`.

use super::control::Control;
use super::error::{AgentError, Attempt};
use crate::config::agent::AgentConfig;
use sluice_proto::codec::{read_frame, write_frame};
use sluice_proto::control::{EndpointRequest, Hello, HelloReply, Welcome};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::link::Link;
use sluice_proto::{close_code, PROTOCOL_VERSION};
use std::time::Duration;

/// Longest the edge may take to answer the `Hello`.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// What the agent asks of the edge on each link.
pub(crate) struct Ask<'a> {
    pub(crate) config: &'a AgentConfig,
    /// This agent run's id, the same across its links.
    pub(crate) run_id: &'a str,
    /// Each endpoint's URL as first bound (random names kept), or as configured.
    pub(crate) wanted: Vec<Option<String>>,
    /// The session this link takes over from without a break, when moving back to QUIC.
    pub(crate) moving_from: Option<String>,
}

/// Sends the `Hello` on `link`'s control stream and reads the answer; on `Welcome` the control
/// stream is held for the session's life.
pub(crate) async fn admit(link: &Link, ask: Ask<'_>) -> Result<(Welcome, Control), Attempt> {
    let transient = |e: &dyn std::fmt::Display| Attempt::Transient(e.to_string());
    let (mut send, mut recv) = link.agent_control().await.map_err(|e| transient(&e))?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        authtoken: ask.config.authtoken.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: ask.run_id.to_string(),
        endpoints: ask
            .config
            .endpoints
            .iter()
            .zip(ask.wanted)
            .map(|(ep, url)| EndpointRequest {
                url,
                upstream: ep.upstream.to_string(),
                pooling_enabled: ep.pooling_enabled,
                policies: ep.policies.clone(),
            })
            .collect(),
        moving_from: ask.moving_from,
    };
    write_frame(&mut send, &hello)
        .await
        .map_err(|e| transient(&e))?;
    let reply = tokio::time::timeout(ANSWER_LIMIT, read_frame::<HelloReply, _>(&mut recv))
        .await
        .map_err(|_| Attempt::Transient("edge did not answer the handshake".into()))?
        .map_err(|e| transient(&e))?;
    match reply {
        HelloReply::Welcome(welcome) => Ok((welcome, Control::hold(send, recv))),
        HelloReply::Rejected(mut rejection) => {
            link.close(close_code::REJECTED, b"rejected");
            if rejection.code == ErrorCode::UnsupportedVersion
                && !rejection.message.contains("upgrade")
            {
                // An edge older than this agent does not say which side to upgrade.
                rejection.message = format!(
                    "{} (this agent, sluice {}, speaks protocol {PROTOCOL_VERSION}): upgrade the edge, \
                     or use an agent of the edge's version",
                    rejection.message,
                    env!("CARGO_PKG_VERSION")
                );
            }
            // A slow handshake, an address the edge is rate-limiting after wrong tokens
            // (possibly another user behind the same NAT), or a cluster store that is down for
            // now: worth retrying with backoff.
            if matches!(
                rejection.code,
                ErrorCode::HandshakeFailed
                    | ErrorCode::AuthRateLimited
                    | ErrorCode::StoreUnavailable
            ) {
                Err(Attempt::Transient(rejection.to_string()))
            } else {
                Err(Attempt::Fatal(AgentError::Rejected(rejection)))
            }
        }
    }
}
