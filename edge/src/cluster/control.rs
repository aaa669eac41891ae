//! Messages to the edge that holds a session, over the store's pub/sub (`sluice:edge:{id}`,
//! one channel per edge): the operator's stop of a session listed by another edge
//! (`sessions.rs`), and the replacement of an endpoint's members when another run of the same
//! authtoken took the endpoint on another edge (sent by the claim script, `claims.rs`).
//! Replacement follows the rules one edge applies (`RouteSet::admit`): an unpooled newcomer
//! takes over unpooled members of other runs; pools, and an agent run's own links to several
//! edges, are left alone.

use super::store::{self, Follower};
use crate::tunnel::authtoken::TokenId;
use crate::tunnel::routes::Member;
use crate::tunnel::state::TunnelState;
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sluice_proto::close_code;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// A message to one edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// Close session `session` as the operator's stop.
    Stop {
        /// `ses_…`.
        session: String,
    },
    /// Run `run` of authtoken `owner` claimed `endpoint` on another edge.
    Replace {
        /// The store's name for the endpoint.
        endpoint: String,
        /// The authtoken's digest, hex.
        owner: String,
        /// The newcomer's agent run.
        run: String,
        /// Whether the newcomer enabled pooling.
        pooled: bool,
    },
}

/// Edge `edge_id`'s channel.
pub fn channel(edge_id: &str) -> String {
    format!("sluice:edge:{edge_id}")
}

/// Sends `message` to edge `edge_id` (delivered if that edge is subscribed now).
pub async fn send(
    conn: &ConnectionManager,
    edge_id: &str,
    message: &Message,
) -> redis::RedisResult<()> {
    let text = serde_json::to_string(message).unwrap_or_default();
    let mut conn = conn.clone();
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(channel(edge_id)).arg(text);
    cmd.query_async::<i64>(&mut conn).await.map(drop)
}

/// Follows edge `edge_id`'s channel and acts on each message for `tunnel`'s sessions, until
/// aborted; a lost subscription is taken again every second (a failure counted in `errors` as
/// `control`).
pub async fn follow(
    client: redis::Client,
    edge_id: String,
    tunnel: Arc<TunnelState>,
    errors: IntCounterVec,
) {
    let follower = Messages { tunnel };
    store::follow(
        client,
        &channel(&edge_id),
        None,
        &follower,
        &errors,
        "control",
    )
    .await;
}

/// This edge's sessions, as the messages to it act on them.
struct Messages {
    tunnel: Arc<TunnelState>,
}

#[async_trait::async_trait]
impl Follower for Messages {
    async fn on_message(&self, text: String) {
        match serde_json::from_str::<Message>(&text) {
            Ok(message) => act(&message, &self.tunnel),
            Err(e) => debug!("an unreadable message to this edge: {e}"),
        }
    }
}

/// Carries out `message` on this edge.
fn act(message: &Message, tunnel: &TunnelState) {
    match message {
        Message::Stop { session } => {
            if let Some(entry) = tunnel.directory.get(session) {
                info!(%session, "stopped by the operator through another edge");
                entry
                    .handle
                    .link
                    .conn
                    .close(close_code::STOPPED, b"stopped by the edge operator");
            }
        }
        Message::Replace {
            endpoint,
            owner,
            run,
            pooled,
        } => replace(tunnel, endpoint, owner, run, *pooled),
    }
}

/// Closes this edge's members of `endpoint` that run `run` of `owner` took over elsewhere.
fn replace(tunnel: &TunnelState, endpoint: &str, owner: &str, run: &str, pooled: bool) {
    let (Some(claims), Some(owner)) = (&tunnel.cluster, TokenId::from_hex(owner)) else {
        return;
    };
    let Some(set) = claims
        .local_key(endpoint)
        .and_then(|key| tunnel.routes.lookup_key(&key))
    else {
        return;
    };
    let mine: Vec<_> = set
        .members()
        .iter()
        .filter(|m| m.owner() == owner && m.is_alive())
        .filter_map(|m| match &m.member {
            Member::Agent { session, .. } => Some((session.clone(), m.pooling)),
            _ => None,
        })
        .collect();
    if pooled || mine.iter().any(|(_, pooling)| *pooling) {
        if !(pooled && mine.iter().all(|(_, pooling)| *pooling)) {
            warn!(%endpoint, "pooled and unpooled members of one authtoken on different edges: enable pooling on every agent, or on none");
        }
        return;
    }
    for (session, _) in mine.iter().filter(|(s, _)| s.run_id != run) {
        info!(old_session = %session.id, %endpoint, "endpoint member replaced by the same authtoken on another edge");
        session
            .link
            .conn
            .close(close_code::REPLACED, b"replaced by a new session");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_the_claim_script_writes_them() {
        // cjson's encoding in claims.rs' script.
        let text = r#"{"replace":{"endpoint":"https://a.example","owner":"ab","run":"r1","pooled":false}}"#;
        assert_eq!(
            serde_json::from_str::<Message>(text).expect("message"),
            Message::Replace {
                endpoint: "https://a.example".into(),
                owner: "ab".into(),
                run: "r1".into(),
                pooled: false,
            }
        );
        let stop = Message::Stop {
            session: "ses_1".into(),
        };
        let back: Message =
            serde_json::from_str(&serde_json::to_string(&stop).expect("json")).expect("back");
        assert_eq!(back, stop);
    }
}
