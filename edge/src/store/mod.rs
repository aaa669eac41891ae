//! The edge's durable state: credentials, reserved names and cloud endpoints created through
//! the admin API, in one SQLite file (`<state_dir>/sluice.db`) with versioned migrations
//! ([`migrations`]). Readable with the `sqlite3` CLI; every change is one transaction.

mod migrations;
pub mod rows;

use parking_lot::Mutex;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The store's file name inside the state directory.
pub const FILE_NAME: &str = "sluice.db";

/// Why the store could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened, created or migrated.
    #[error("store {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer Sluice, whose schema this one does not know.
    #[error(
        "store {path} has schema version {found}, and this edge (sluice {}) knows up to \
         version {known}: run the newer edge, or restore a backup made before the upgrade",
        env!("CARGO_PKG_VERSION")
    )]
    Newer {
        /// The database file.
        path: PathBuf,
        /// The file's schema version.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// A query failed.
    #[error("store: {0}")]
    Query(#[from] rusqlite::Error),
    /// The blocking task running the query was lost.
    #[error("store: the query's task ended: {0}")]
    Task(String),
}

/// The open store. Queries run on tokio's blocking pool, one at a time (SQLite serialises
/// writers anyway, and admin calls are rare).
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating it if missing) `<state_dir>/sluice.db` and brings its schema up to date.
    /// A store from a newer version is refused, untouched.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let open = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        if let Err(e) = std::fs::create_dir_all(state_dir) {
            return Err(open(rusqlite::Error::InvalidPath(
                format!("{}: {e}", state_dir.display()).into(),
            )));
        }
        let mut conn = Connection::open(&path).map_err(open)?;
        // Another process (an operator's sqlite3, a backup) may hold a lock for a moment.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open)?;
        match migrations::apply(&mut conn) {
            Ok(()) => {}
            Err(migrations::MigrationError::Newer { found, known }) => {
                return Err(StoreError::Newer { path, found, known })
            }
            Err(migrations::MigrationError::Sql(e)) => return Err(open(e)),
        }
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `query` on the connection, off the async threads.
    pub async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || query(&mut conn.lock()))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(StoreError::Query)
    }

    /// Whether the store answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await
            .map(drop)
    }

    /// Runs `query` now, on this thread: for the edge's start, before it serves.
    pub fn run_now<T>(
        &self,
        query: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        query(&mut self.conn.lock()).map_err(StoreError::Query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_from_a_newer_version_is_refused_untouched() {
        let dir = tempfile::tempdir().expect("temp dir");
        drop(Store::open(dir.path()).expect("new store"));
        let conn = Connection::open(dir.path().join(FILE_NAME)).expect("open");
        conn.pragma_update(None, "user_version", 99).expect("bump");
        drop(conn);
        let err = Store::open(dir.path()).expect_err("newer store");
        assert!(matches!(err, StoreError::Newer { found: 99, .. }), "{err}");
        assert!(err.to_string().contains("version 99"), "{err}");
        let conn = Connection::open(dir.path().join(FILE_NAME)).expect("open");
        let v: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, 99);
    }

    #[test]
    fn reopening_keeps_the_schema_and_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("new store");
        store
            .run_now(|c| {
                c.execute(
                    "INSERT INTO credentials (id, token_digest, created_at) VALUES ('cr_1', x'00', 't')",
                    [],
                )
            })
            .expect("insert");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        let n: i64 = store
            .run_now(|c| c.query_row("SELECT count(*) FROM credentials", [], |r| r.get(0)))
            .expect("count");
        assert_eq!(n, 1);
    }
}
