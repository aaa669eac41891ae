//! [`Members`]: what must agree and what must differ between the edges of a cluster, checked
//! against the other live edges when an edge starts and renewed with its claims.
//!
//! The sign-in session keys must be the same file on every edge (a cookie sealed on one edge
//! must open on the others); the QUIC stateless-reset key must differ (with a shared one, a
//! packet that strays to the wrong edge would reset a healthy agent link); and an edge id
//! names one edge. Each edge keeps `sluice:edges` field `EDGE-ID` = `RESET|SESSION|EXPIRY|ADDR`,
//! where RESET and SESSION are fingerprints of the keys keyed by the peer secret (they reveal
//! nothing of the keys) and ADDR is where the other edges reach it (`advertise_addr`), leased as
//! claims are.

use super::claims::{CALL_LIMIT, LEASE};
use redis::aio::ConnectionManager;
use redis::Script;
use ring::hmac;
use std::net::SocketAddr;
use tracing::warn;

/// Registers this edge unless another live edge conflicts (ARGV: edge id, reset and session
/// fingerprints, lease ms, address): an empty string, else `KIND:EDGE-ID` of the first
/// conflict.
const REGISTER: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', 'sluice:edges')
for j = 1, #fields, 2 do
  local edge, value = fields[j], fields[j + 1]
  local reset, session, expiry = string.match(value, '^([^|]*)|([^|]*)|(%d+)|')
  if not expiry or tonumber(expiry) < now then
    redis.call('HDEL', 'sluice:edges', edge)
  elseif edge == ARGV[1] then
    if reset ~= ARGV[2] then return 'id:' .. edge end
  elseif reset == ARGV[2] then
    return 'reset:' .. edge
  elseif session ~= ARGV[3] then
    return 'session:' .. edge
  end
end
redis.call('HSET', 'sluice:edges', ARGV[1], ARGV[2] .. '|' .. ARGV[3] .. '|' .. (now + tonumber(ARGV[4])) .. '|' .. ARGV[5])
return ''
";

/// Why this edge may not join the cluster.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Another live edge uses this edge id.
    #[error("another edge is live with edge_id '{0}': give each edge its own id")]
    SameId(String),
    /// Another live edge has the same QUIC reset key.
    #[error("edge '{0}' has the same QUIC reset key (quic-reset-key in the state dir): give each edge its own state dir, or delete the copied key")]
    SameResetKey(String),
    /// Another live edge has other sign-in session keys.
    #[error("edge '{0}' has other sign-in session keys: copy the same session-keys file into every edge's state dir")]
    OtherSessionKeys(String),
    /// The store did not answer.
    #[error("the cluster store is unreachable: {0}")]
    Unavailable(String),
}

/// This edge's entry among the cluster's edges.
pub struct Members {
    conn: ConnectionManager,
    edge_id: String,
    reset: String,
    session: String,
    /// Where the other edges reach this one (empty: they cannot).
    address: String,
    script: Script,
}

/// A fingerprint of `key` keyed by the peer secret.
fn fingerprint(secret: &hmac::Key, key: &[u8]) -> String {
    hex::encode(&hmac::sign(secret, key).as_ref()[..16])
}

impl Members {
    /// Joins as `edge_id` reachable at `address`, with these keys, or says which live edge
    /// conflicts.
    pub async fn join(
        conn: ConnectionManager,
        edge_id: &str,
        address: Option<SocketAddr>,
        peer_secret: &str,
        reset_key: &[u8],
        session_key: &[u8],
    ) -> Result<Self, MemberError> {
        let secret = hmac::Key::new(hmac::HMAC_SHA256, peer_secret.as_bytes());
        let members = Self {
            conn,
            edge_id: edge_id.to_string(),
            reset: fingerprint(&secret, reset_key),
            session: fingerprint(&secret, session_key),
            address: address.map(|a| a.to_string()).unwrap_or_default(),
            script: Script::new(REGISTER),
        };
        members.register().await?;
        Ok(members)
    }

    async fn register(&self) -> Result<(), MemberError> {
        let mut conn = self.conn.clone();
        let mut call = self.script.prepare_invoke();
        call.arg(&self.edge_id)
            .arg(&self.reset)
            .arg(&self.session)
            .arg(LEASE.as_millis() as u64)
            .arg(&self.address);
        let answer = tokio::time::timeout(CALL_LIMIT, call.invoke_async::<String>(&mut conn))
            .await
            .map_err(|_| MemberError::Unavailable("no answer in time".into()))?
            .map_err(|e| MemberError::Unavailable(e.to_string()))?;
        match answer.split_once(':') {
            None => Ok(()),
            Some(("id", edge)) => Err(MemberError::SameId(edge.into())),
            Some(("reset", edge)) => Err(MemberError::SameResetKey(edge.into())),
            Some((_, edge)) => Err(MemberError::OtherSessionKeys(edge.into())),
        }
    }

    /// Renews the entry (and writes it back after the store lost it); a conflict that arose
    /// since is logged.
    pub async fn renew(&self) {
        if let Err(e) = self.register().await {
            warn!("cluster membership: {e}");
        }
    }
}

/// Where edge `edge_id` says the other edges reach it, if it is live and said so.
pub async fn address_of(conn: &ConnectionManager, edge_id: &str) -> Option<SocketAddr> {
    let mut conn = conn.clone();
    let mut cmd = redis::cmd("HGET");
    cmd.arg("sluice:edges").arg(edge_id);
    let value = tokio::time::timeout(CALL_LIMIT, cmd.query_async::<Option<String>>(&mut conn))
        .await
        .ok()?
        .ok()??;
    value.rsplit('|').next()?.parse().ok()
}
