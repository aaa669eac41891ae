//! [`AdminRows`]: the admin API's rows in the cluster store, each edge's SQLite file their copy.

use super::claims::CALL_LIMIT;
use super::store::{self, Follower};
use crate::store::rows::{self, AllRows, CloudEndpointRow, CredentialRow, ReservationRow};
use crate::store::Store;
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Script, ScriptInvocation};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// The channel every change is published on.
pub const CHANNEL: &str = "sluice:admin";

/// How often every edge reads all rows again: catches a change whose message it missed (its
/// subscription was down), and a store that lost its data (the epoch is gone).
pub const RESYNC_EVERY: Duration = Duration::from_secs(3);

/// The keys every script gets, in this order.
const KEYS: [&str; 5] = [
    "sluice:admin:credentials",
    "sluice:admin:reservations",
    "sluice:admin:cloud",
    "sluice:admin:reserved",
    "sluice:admin:epoch",
];

/// What every script starts with: the keys by name, and a reservation's index field read from
/// its JSON (`domain:NAME` or `port:N`).
const LIB: &str = r"
local creds, res, cloud, idx, epoch = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function index_field(json)
  local r = cjson.decode(json).reserved
  if r.domain then return 'domain:' .. r.domain end
  return 'port:' .. string.format('%d', r.port)
end
local function put(kind, id, json)
  if kind == 'c' then redis.call('HSET', creds, id, json)
  elseif kind == 'e' then redis.call('HSET', cloud, id, json)
  else
    redis.call('HSET', res, id, json)
    redis.call('HSET', idx, index_field(json), id)
  end
end
local function unreserve(id, json)
  local field = index_field(json)
  if redis.call('HGET', idx, field) == id then redis.call('HDEL', idx, field) end
  redis.call('HDEL', res, id)
end
";

/// The epoch (empty when missing) and every row, read at once.
const READ: &str = r"
return {redis.call('GET', epoch) or '', redis.call('HVALS', creds), redis.call('HVALS', res),
  redis.call('HVALS', cloud)}
";

/// Seeds an epochless store (ARGV: the new epoch, then `KIND, ID, JSON` triples): only while
/// the marker is absent, so of several edges seeding at once the first wins and the others
/// then read its rows.
const SEED: &str = r"
if redis.call('EXISTS', epoch) == 1 then return {'exists'} end
redis.call('DEL', creds, res, cloud, idx)
for i = 2, #ARGV, 3 do put(ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
redis.call('SET', epoch, ARGV[1])
redis.call('PUBLISH', 'sluice:admin', 'seeded')
return {'ok'}
";

/// Adds a never-clustered edge's rows the cluster lacks (ARGV: `KIND, ID, JSON` triples), all
/// or nothing: a reservation whose name the cluster reserves under another id refuses it all.
const IMPORT: &str = r"
if redis.call('EXISTS', epoch) == 0 then return {'no_epoch'} end
for i = 1, #ARGV, 3 do
  if ARGV[i] == 'r' then
    local field = index_field(ARGV[i + 2])
    local holder = redis.call('HGET', idx, field)
    if holder and holder ~= ARGV[i + 1] then return {'conflict', ARGV[i + 1], field, holder} end
  end
end
local added = 0
for i = 1, #ARGV, 3 do
  local key = creds
  if ARGV[i] == 'r' then key = res elseif ARGV[i] == 'e' then key = cloud end
  if redis.call('HEXISTS', key, ARGV[i + 1]) == 0 then
    put(ARGV[i], ARGV[i + 1], ARGV[i + 2])
    added = added + 1
  end
end
if added > 0 then redis.call('PUBLISH', 'sluice:admin', 'imported') end
return {'ok', tostring(added)}
";

/// One change (ARGV: op, id, JSON), refused without an epoch (the store lost its data: the
/// edge seeds it first, so a change never lands in a store the next seed would wipe).
const CHANGE: &str = r"
if redis.call('EXISTS', epoch) == 0 then return {'no_epoch'} end
local op, id, json = ARGV[1], ARGV[2], ARGV[3]
if op == 'create_credential' then
  redis.call('HSET', creds, id, json)
elseif op == 'update_credential' then
  if redis.call('HEXISTS', creds, id) == 0 then return {'not_found'} end
  redis.call('HSET', creds, id, json)
elseif op == 'delete_credential' then
  if redis.call('HEXISTS', creds, id) == 0 then return {'not_found'} end
  local users = {}
  for _, v in ipairs(redis.call('HVALS', cloud)) do
    local e = cjson.decode(v)
    if e.credential_id == id then table.insert(users, e.id) end
  end
  if #users > 0 then
    table.insert(users, 1, 'in_use')
    return users
  end
  local all = redis.call('HGETALL', res)
  for i = 1, #all, 2 do
    if cjson.decode(all[i + 1]).credential_id == id then unreserve(all[i], all[i + 1]) end
  end
  redis.call('HDEL', creds, id)
elseif op == 'reserve' then
  local field = index_field(json)
  local holder = redis.call('HGET', idx, field)
  if holder then return {'conflict', holder} end
  put('r', id, json)
elseif op == 'unreserve' then
  local v = redis.call('HGET', res, id)
  if not v then return {'not_found'} end
  unreserve(id, v)
elseif op == 'create_cloud' then
  redis.call('HSET', cloud, id, json)
elseif op == 'delete_cloud' then
  if redis.call('HDEL', cloud, id) == 0 then return {'not_found'} end
else
  return redis.error_reply('unknown change ' .. op)
end
redis.call('PUBLISH', 'sluice:admin', op)
return {'ok'}
";

/// The rows following the store for the edge's [`RowsChanged`].
struct Following {
    rows: Arc<AdminRows>,
    target: Arc<dyn RowsChanged>,
}

#[async_trait::async_trait]
impl Follower for Following {
    async fn on_message(&self, _change: String) {
        self.rows.sync_logged(&*self.target).await;
    }

    async fn on_resync(&self) {
        self.rows.sync_logged(&*self.target).await;
    }
}

/// Why a row could not be read or changed in the store, or the copy not kept.
#[derive(Debug, thiserror::Error)]
pub enum AdminRowsError {
    /// The store did not answer (or answered what no script returns).
    #[error("cluster store: {0}")]
    Store(String),
    /// This edge's file failed.
    #[error(transparent)]
    Copy(#[from] crate::store::StoreError),
    /// A row in the store is not readable JSON of its kind.
    #[error("cluster store: a row of {key} is not readable: {message}")]
    Malformed {
        /// The hash it is in.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The row to change is not in the store (another edge deleted it).
    #[error("not found in the cluster store")]
    NotFound,
    /// The name is reserved already, by reservation `holder`.
    #[error("already reserved ({holder})")]
    Reserved {
        /// The reservation holding it.
        holder: String,
    },
    /// Cloud endpoints forward into the credential to delete.
    #[error("cloud endpoints {} forward into this credential's namespace", .0.join(", "))]
    InUse(Vec<String>),
    /// A reservation of this edge's file, never clustered before, names what the cluster
    /// reserves under another id: the edge does not start.
    #[error(
        "this edge's reservation {id} ({field}, in {path}) is reserved in the cluster by \
         {holder}: delete one of them (this edge's with sqlite3 {path} \"DELETE FROM \
         reserved_domains WHERE id = '{id}'\" (reserved_addrs for a port), or the cluster's \
         through another edge's admin API) and start this edge again",
        path = .path.display()
    )]
    ImportConflict {
        /// This edge's reservation.
        id: String,
        /// Its name in the index (`domain:NAME`, `port:N`).
        field: String,
        /// The cluster's reservation of that name.
        holder: String,
        /// This edge's file.
        path: PathBuf,
    },
}

/// What a change to the rows does, as the rest of the edge sees it.
pub trait RowsChanged: Send + Sync {
    /// The edge's copy went from `before` to `now` (another edge's change, or this one's):
    /// republish what admission reads, bring cloud endpoints online or offline, close the
    /// sessions of deleted credentials.
    fn rows_changed(&self, before: &AllRows, now: &AllRows);
}

/// One change to the rows.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A new credential.
    CreateCredential(&'a CredentialRow),
    /// A credential's new fields (refused when it is gone).
    UpdateCredential(&'a CredentialRow),
    /// A credential deleted by id, with its reservations.
    DeleteCredential(&'a str),
    /// A new reservation (refused when its name is reserved).
    Reserve(&'a ReservationRow),
    /// A reservation deleted by id.
    Unreserve(&'a str),
    /// A new cloud endpoint.
    CreateCloud(&'a CloudEndpointRow),
    /// A cloud endpoint deleted by id.
    DeleteCloud(&'a str),
}

impl Change<'_> {
    /// The script's op, id and JSON.
    fn args(&self) -> Result<(&'static str, String, String), AdminRowsError> {
        Ok(match self {
            Change::CreateCredential(r) => ("create_credential", r.id.clone(), to_json(*r)?),
            Change::UpdateCredential(r) => ("update_credential", r.id.clone(), to_json(*r)?),
            Change::DeleteCredential(id) => ("delete_credential", id.to_string(), String::new()),
            Change::Reserve(r) => ("reserve", r.id.clone(), to_json(*r)?),
            Change::Unreserve(id) => ("unreserve", id.to_string(), String::new()),
            Change::CreateCloud(r) => ("create_cloud", r.id.clone(), to_json(*r)?),
            Change::DeleteCloud(id) => ("delete_cloud", id.to_string(), String::new()),
        })
    }
}

/// A row as the store holds it.
fn to_json<T: serde::Serialize>(row: &T) -> Result<String, AdminRowsError> {
    serde_json::to_string(row).map_err(|e| AdminRowsError::Store(e.to_string()))
}

/// The rows of `all` as the seed and import scripts take them: `KIND, ID, JSON` triples.
fn triples(all: &AllRows) -> Result<Vec<String>, AdminRowsError> {
    let mut out = Vec::new();
    for r in &all.credentials {
        out.extend(["c".to_string(), r.id.clone(), to_json(r)?]);
    }
    for r in &all.reservations {
        out.extend(["r".to_string(), r.id.clone(), to_json(r)?]);
    }
    for r in &all.cloud {
        out.extend(["e".to_string(), r.id.clone(), to_json(r)?]);
    }
    Ok(out)
}

/// Rows of one hash, from their JSON.
fn parse<T: DeserializeOwned>(
    key: &'static str,
    values: &[String],
) -> Result<Vec<T>, AdminRowsError> {
    values
        .iter()
        .map(|v| {
            serde_json::from_str(v).map_err(|e| AdminRowsError::Malformed {
                key,
                message: e.to_string(),
            })
        })
        .collect()
}

/// The admin API's rows (credentials, reservations, cloud endpoints) in the cluster store,
/// and this edge's file as their copy (docs/cluster.md, "Admin-API rows").
///
/// The store holds `sluice:admin:credentials`, `sluice:admin:reservations` and
/// `sluice:admin:cloud` (hashes, id → the row's JSON), the uniqueness index
/// `sluice:admin:reserved` (`domain:NAME` / `port:N` → reservation id) and the epoch marker
/// `sluice:admin:epoch`. Every change is one Lua script that also publishes on [`CHANNEL`];
/// every edge follows the channel (and reads everything again every [`RESYNC_EVERY`]), writes
/// its file to match and tells its [`RowsChanged`], which republishes what admission reads.
pub struct AdminRows {
    client: redis::Client,
    store: ConnectionManager,
    /// This edge's SQLite file: what the admin API reads, and what seeds a store that lost its
    /// data.
    copy: Store,
    read: Script,
    seed: Script,
    import: Script,
    change: Script,
    /// One sync at a time, and the snapshots published under it, so an older read never
    /// lands after a newer one.
    syncing: tokio::sync::Mutex<()>,
    errors: IntCounterVec,
}

impl AdminRows {
    /// The rows in the store reached by `client` and `store`, mirrored into `copy`; failures
    /// counted in `errors{op="admin"}`.
    pub fn new(
        client: redis::Client,
        store: ConnectionManager,
        copy: Store,
        errors: IntCounterVec,
    ) -> Arc<Self> {
        let script = |body: &str| Script::new(&format!("{LIB}{body}"));
        Arc::new(Self {
            client,
            store,
            copy,
            read: script(READ),
            seed: script(SEED),
            import: script(IMPORT),
            change: script(CHANGE),
            syncing: tokio::sync::Mutex::new(()),
            errors,
        })
    }

    /// Runs one script call within [`CALL_LIMIT`]; a failure is counted.
    async fn call<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, AdminRowsError> {
        let mut conn = self.store.clone();
        let answer = tokio::time::timeout(CALL_LIMIT, invocation.invoke_async::<T>(&mut conn));
        let failed = match answer.await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CALL_LIMIT:?}"),
        };
        self.errors.with_label_values(&["admin"]).inc();
        Err(AdminRowsError::Store(failed))
    }

    /// The store's epoch (none when missing) and every row, read in one script.
    async fn read_store(&self) -> Result<(Option<String>, AllRows), AdminRowsError> {
        let mut call = self.read.prepare_invoke();
        for key in KEYS {
            call.key(key);
        }
        let (epoch, creds, res, cloud): (String, Vec<String>, Vec<String>, Vec<String>) =
            self.call(&call).await?;
        let rows = AllRows {
            credentials: parse(KEYS[0], &creds)?,
            reservations: parse(KEYS[1], &res)?,
            cloud: parse(KEYS[2], &cloud)?,
        };
        Ok(((!epoch.is_empty()).then_some(epoch), rows.sorted()))
    }

    /// This edge's copy and the epoch it mirrors.
    async fn read_copy(&self) -> Result<(Option<String>, AllRows), AdminRowsError> {
        let read = self
            .copy
            .run(|c| Ok((rows::mirrored_epoch(c)?, AllRows::read(c)?.sorted())))
            .await?;
        Ok(read)
    }

    /// Seeds a store without epoch from `rows` under a fresh epoch; false when another edge
    /// seeded it first.
    async fn seed(&self, rows: &AllRows) -> Result<bool, AdminRowsError> {
        let epoch = hex::encode(rand::random::<[u8; 16]>());
        let mut call = self.seed.prepare_invoke();
        for key in KEYS {
            call.key(key);
        }
        call.arg(&epoch).arg(triples(rows)?);
        let answer: Vec<String> = self.call(&call).await?;
        let seeded = answer.first().is_some_and(|a| a == "ok");
        if seeded {
            info!(%epoch, credentials = rows.credentials.len(), reservations = rows.reservations.len(), cloud_endpoints = rows.cloud.len(), "seeded the cluster store's admin rows from this edge's copy");
        }
        Ok(seeded)
    }

    /// The first sync when the edge starts, before its control plane loads the copy: seeds a
    /// store without epoch; imports the rows of a file that never mirrored the cluster (and
    /// refuses the start when one of its reservations conflicts); then makes the copy the
    /// store's rows.
    pub async fn join(&self) -> Result<(), AdminRowsError> {
        let _one = self.syncing.lock().await;
        let (epoch, _) = self.read_store().await?;
        let (mirrored, mine) = self.read_copy().await?;
        let seeded = match epoch {
            None => self.seed(&mine).await?,
            Some(_) => false,
        };
        // A file that never mirrored the cluster holds rows made on a single edge: keep them.
        // One that did already pushed what it had; its rows the cluster lacks were deleted
        // there while this edge was down, and must stay deleted.
        if !seeded && mirrored.is_none() && !mine.is_empty() {
            self.import(&mine).await?;
        }
        self.adopt_store(None).await
    }

    /// Adds `mine` to the store, rows it lacks only.
    async fn import(&self, mine: &AllRows) -> Result<(), AdminRowsError> {
        let mut call = self.import.prepare_invoke();
        for key in KEYS {
            call.key(key);
        }
        call.arg(triples(mine)?);
        let answer: Vec<String> = self.call(&call).await?;
        match answer.first().map(String::as_str) {
            Some("ok") => {
                let added = answer.get(1).map_or("0", String::as_str);
                info!(
                    added,
                    "imported this edge's admin rows into the cluster store"
                );
                Ok(())
            }
            Some("conflict") if answer.len() == 4 => Err(AdminRowsError::ImportConflict {
                id: answer[1].clone(),
                field: answer[2].clone(),
                holder: answer[3].clone(),
                path: self.copy.path().to_path_buf(),
            }),
            Some("no_epoch") => Err(AdminRowsError::Store(
                "the store lost its data while this edge joined; start it again".into(),
            )),
            _ => Err(AdminRowsError::Store(format!(
                "unexpected answer {answer:?}"
            ))),
        }
    }

    /// Reads the store and makes the copy match it, seeding a store without epoch from the
    /// copy first; `target` hears what changed.
    pub async fn resync(&self, target: Option<&dyn RowsChanged>) -> Result<(), AdminRowsError> {
        let _one = self.syncing.lock().await;
        self.adopt_store(target).await
    }

    /// [`AdminRows::resync`] with the sync lock held.
    async fn adopt_store(&self, target: Option<&dyn RowsChanged>) -> Result<(), AdminRowsError> {
        let (mut epoch, mut now) = self.read_store().await?;
        if epoch.is_none() {
            // The store lost its data (or never had any): this edge's copy is the cluster's
            // last state it knows. Whichever edge seeds first wins; the others read its rows.
            let (_, copy) = self.read_copy().await?;
            self.seed(&copy).await?;
            (epoch, now) = self.read_store().await?;
        }
        let Some(epoch) = epoch else {
            return Err(AdminRowsError::Store(
                "the epoch marker vanished just after it was seeded".into(),
            ));
        };
        let (mirrored, before) = self.read_copy().await?;
        if mirrored.as_deref() == Some(epoch.as_str()) && before == now {
            return Ok(());
        }
        let (rows, marker) = (now.clone(), epoch.clone());
        self.copy
            .run(move |c| rows::replace_all(c, &rows, &marker))
            .await?;
        debug!(%epoch, "this edge's copy of the admin rows follows the store");
        if let Some(target) = target {
            target.rows_changed(&before, &now);
        }
        Ok(())
    }

    /// Makes `change` in the store (seeding it first when it lost its data), then brings this
    /// edge's copy and snapshots up to date, so the API's answer already holds here.
    pub async fn change(
        &self,
        change: Change<'_>,
        target: &dyn RowsChanged,
    ) -> Result<(), AdminRowsError> {
        let (op, id, json) = change.args()?;
        let mut reseeded = false;
        loop {
            let mut call = self.change.prepare_invoke();
            for key in KEYS {
                call.key(key);
            }
            call.arg(op).arg(&id).arg(&json);
            let answer: Vec<String> = self.call(&call).await?;
            match answer.first().map(String::as_str) {
                Some("ok") => break,
                Some("no_epoch") if !reseeded => {
                    reseeded = true;
                    self.resync(Some(target)).await?;
                }
                Some("not_found") => return Err(AdminRowsError::NotFound),
                Some("in_use") => return Err(AdminRowsError::InUse(answer[1..].to_vec())),
                Some("conflict") => {
                    return Err(AdminRowsError::Reserved {
                        holder: answer.get(1).cloned().unwrap_or_default(),
                    })
                }
                _ => {
                    return Err(AdminRowsError::Store(format!(
                        "unexpected answer {answer:?}"
                    )))
                }
            }
        }
        // The change is made; should this read fail, the next resync brings it here.
        if let Err(e) = self.resync(Some(target)).await {
            warn!("admin rows: the change is in the store, this edge's copy follows later: {e}");
        }
        Ok(())
    }

    /// Follows the changes on [`CHANNEL`], and reads everything again on every
    /// (re)subscription and every [`RESYNC_EVERY`] (and after a subscription failed: a store
    /// that takes reads but not subscriptions must not leave this edge's credentials stale),
    /// until aborted; the published snapshots keep serving meanwhile.
    pub async fn follow(self: Arc<Self>, target: Arc<dyn RowsChanged>) {
        let (client, errors) = (self.client.clone(), self.errors.clone());
        let follower = Following { rows: self, target };
        store::follow(
            client,
            CHANNEL,
            Some(RESYNC_EVERY),
            &follower,
            &errors,
            "admin",
        )
        .await;
    }

    /// [`AdminRows::resync`], its failure logged (counted already when the store failed).
    async fn sync_logged(&self, target: &dyn RowsChanged) {
        if let Err(e) = self.resync(Some(target)).await {
            warn!("admin rows: could not follow the cluster store: {e}");
        }
    }
}
