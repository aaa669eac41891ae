//! The store's schema, as numbered migrations. SQLite's `user_version` holds how many have
//! run; each runs once, in order, in its own transaction. Append only: a released migration is
//! never edited.

use rusqlite::Connection;

/// Every migration, in order; the schema version is how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: credentials, reservations, cloud endpoints.
    "CREATE TABLE credentials (
        id            TEXT PRIMARY KEY,
        token_digest  BLOB NOT NULL UNIQUE,   -- SHA-256 of the token; the token is never stored
        created_at    TEXT NOT NULL,          -- RFC 3339, UTC
        description   TEXT NOT NULL DEFAULT '',
        metadata      TEXT NOT NULL DEFAULT '',
        acl           TEXT NOT NULL DEFAULT '[]',  -- JSON array of bind: rules
        max_sessions  INTEGER,
        max_endpoints INTEGER
    );
    CREATE TABLE reserved_domains (
        id            TEXT PRIMARY KEY,
        domain        TEXT NOT NULL UNIQUE,   -- lowercase hostname
        credential_id TEXT NOT NULL,          -- cr_… of the API, or of edge.yaml's tokens
        created_at    TEXT NOT NULL,
        description   TEXT NOT NULL DEFAULT '',
        metadata      TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE reserved_addrs (
        id            TEXT PRIMARY KEY,
        port          INTEGER NOT NULL UNIQUE,
        credential_id TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        description   TEXT NOT NULL DEFAULT '',
        metadata      TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE cloud_endpoints (
        id              TEXT PRIMARY KEY,
        url             TEXT NOT NULL,
        traffic_policy  TEXT NOT NULL,
        pooling_enabled INTEGER NOT NULL DEFAULT 0,
        credential_id   TEXT,
        created_at      TEXT NOT NULL,
        description     TEXT NOT NULL DEFAULT '',
        metadata        TEXT NOT NULL DEFAULT ''
    );",
    // 2: what the file knows about itself; in a cluster, `cluster_epoch`: the epoch of the
    // cluster's rows this file is the durable copy of (docs/cluster.md).
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
];

/// Why the schema could not be brought up to date.
#[derive(Debug)]
pub enum MigrationError {
    /// The file's version is past [`MIGRATIONS`].
    Newer {
        /// Its version.
        found: u32,
        /// The newest this build knows.
        known: u32,
    },
    /// A statement failed; the transaction was rolled back.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrationError {
    fn from(e: rusqlite::Error) -> Self {
        MigrationError::Sql(e)
    }
}

/// Runs the migrations `conn` has not had yet.
pub fn apply(conn: &mut Connection) -> Result<(), MigrationError> {
    let known = MIGRATIONS.len() as u32;
    let found: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > known {
        return Err(MigrationError::Newer { found, known });
    }
    for (version, sql) in (1u32..).zip(MIGRATIONS).skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    Ok(())
}
