//! The store's rows as types, and the queries that read and write them. Values are checked
//! before they get here (the control plane compiles them); these functions only move them.
//! The rows are JSON too (serde), as the cluster store holds them (docs/cluster.md).

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

/// A credential created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialRow {
    /// `cr_…`.
    pub id: String,
    /// SHA-256 of the token (hex in JSON).
    #[serde(with = "hex_digest")]
    pub token_digest: [u8; 32],
    /// RFC 3339.
    pub created_at: String,
    /// Free text.
    pub description: String,
    /// Free text.
    pub metadata: String,
    /// `bind:` rules.
    pub acl: Vec<String>,
    /// Sessions limit.
    pub max_sessions: Option<u32>,
    /// Endpoints limit.
    pub max_endpoints: Option<u32>,
}

/// What a reservation holds: a hostname or a TCP port (`{"domain": NAME}` or `{"port": N}`
/// in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reserved {
    /// A lowercase hostname.
    Domain(String),
    /// A port of the edge's `tcp_ports`.
    Port(u16),
}

/// A reserved domain or TCP address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRow {
    /// `rd_…` or `ra_…`.
    pub id: String,
    /// The name.
    pub reserved: Reserved,
    /// The owning credential.
    pub credential_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// Free text.
    pub description: String,
    /// Free text.
    pub metadata: String,
}

/// A cloud endpoint created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEndpointRow {
    /// `ep_…`.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// The policy document as given.
    pub traffic_policy: String,
    /// Pooling.
    pub pooling_enabled: bool,
    /// Whose namespace it forwards into.
    pub credential_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Free text.
    pub description: String,
    /// Free text.
    pub metadata: String,
}

/// `[u8; 32]` as 64 hex digits.
mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&text, &mut digest).map_err(serde::de::Error::custom)?;
        Ok(digest)
    }
}

/// Every row of the admin API: what a cluster edge's file mirrors of the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllRows {
    /// Credentials.
    pub credentials: Vec<CredentialRow>,
    /// Reserved domains and addresses.
    pub reservations: Vec<ReservationRow>,
    /// Cloud endpoints.
    pub cloud: Vec<CloudEndpointRow>,
}

impl AllRows {
    /// Reads them all.
    pub fn read(c: &Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            credentials: credentials(c)?,
            reservations: reservations(c)?,
            cloud: cloud_endpoints(c)?,
        })
    }

    /// The same rows in one order (by id), whatever order they were read in, so two reads
    /// compare equal when they hold the same rows.
    pub fn sorted(mut self) -> Self {
        self.credentials.sort_by(|a, b| a.id.cmp(&b.id));
        self.reservations.sort_by(|a, b| a.id.cmp(&b.id));
        self.cloud.sort_by(|a, b| a.id.cmp(&b.id));
        self
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty() && self.reservations.is_empty() && self.cloud.is_empty()
    }
}

/// The `meta` key of the cluster epoch a file mirrors.
const EPOCH_KEY: &str = "cluster_epoch";

/// The cluster epoch this file is the copy of; none when it never mirrored a cluster.
pub fn mirrored_epoch(c: &Connection) -> rusqlite::Result<Option<String>> {
    c.query_row("SELECT value FROM meta WHERE key = ?1", [EPOCH_KEY], |r| {
        r.get(0)
    })
    .optional()
}

/// Makes the file hold exactly `rows`, the copy of cluster epoch `epoch`, in one transaction:
/// a row the cluster no longer has is gone here too.
pub fn replace_all(c: &mut Connection, rows: &AllRows, epoch: &str) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    for table in [
        "credentials",
        "reserved_domains",
        "reserved_addrs",
        "cloud_endpoints",
    ] {
        tx.execute(&format!("DELETE FROM {table}"), [])?;
    }
    for row in &rows.credentials {
        put_credential(&tx, row)?;
    }
    for row in &rows.reservations {
        insert_reservation(&tx, row)?;
    }
    for row in &rows.cloud {
        insert_cloud_endpoint(&tx, row)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        [EPOCH_KEY, epoch],
    )?;
    tx.commit()
}

fn acl_json(acl: &[String]) -> String {
    serde_json::Value::from(acl.to_vec()).to_string()
}

fn credential(row: &Row<'_>) -> rusqlite::Result<CredentialRow> {
    let digest: Vec<u8> = row.get("token_digest")?;
    let acl: String = row.get("acl")?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("credentials.{what} is malformed").into(),
        )
    };
    Ok(CredentialRow {
        id: row.get("id")?,
        token_digest: digest.try_into().map_err(|_| bad("token_digest"))?,
        created_at: row.get("created_at")?,
        description: row.get("description")?,
        metadata: row.get("metadata")?,
        acl: serde_json::from_str(&acl).map_err(|_| bad("acl"))?,
        max_sessions: row.get("max_sessions")?,
        max_endpoints: row.get("max_endpoints")?,
    })
}

/// Every stored credential, oldest first.
pub fn credentials(c: &Connection) -> rusqlite::Result<Vec<CredentialRow>> {
    let mut stmt = c.prepare("SELECT * FROM credentials ORDER BY created_at, id")?;
    let rows = stmt.query_map([], credential)?;
    rows.collect()
}

/// Inserts or replaces a credential.
pub fn put_credential(c: &Connection, row: &CredentialRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR REPLACE INTO credentials
         (id, token_digest, created_at, description, metadata, acl, max_sessions, max_endpoints)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            row.id,
            row.token_digest.as_slice(),
            row.created_at,
            row.description,
            row.metadata,
            acl_json(&row.acl),
            row.max_sessions,
            row.max_endpoints
        ],
    )?;
    Ok(())
}

/// Deletes a credential and its reservations in one transaction; whether it existed.
pub fn delete_credential(c: &mut Connection, id: &str) -> rusqlite::Result<bool> {
    let tx = c.transaction()?;
    let n = tx.execute("DELETE FROM credentials WHERE id = ?1", [id])?;
    tx.execute(
        "DELETE FROM reserved_domains WHERE credential_id = ?1",
        [id],
    )?;
    tx.execute("DELETE FROM reserved_addrs WHERE credential_id = ?1", [id])?;
    tx.commit()?;
    Ok(n > 0)
}

fn reservation(row: &Row<'_>, reserved: Reserved) -> rusqlite::Result<ReservationRow> {
    Ok(ReservationRow {
        id: row.get("id")?,
        reserved,
        credential_id: row.get("credential_id")?,
        created_at: row.get("created_at")?,
        description: row.get("description")?,
        metadata: row.get("metadata")?,
    })
}

/// Every reservation, domains then ports, oldest first within each.
pub fn reservations(c: &Connection) -> rusqlite::Result<Vec<ReservationRow>> {
    let mut out = Vec::new();
    let mut stmt = c.prepare("SELECT * FROM reserved_domains ORDER BY created_at, id")?;
    for r in stmt.query_map([], |row| {
        let domain = row.get("domain")?;
        reservation(row, Reserved::Domain(domain))
    })? {
        out.push(r?);
    }
    let mut stmt = c.prepare("SELECT * FROM reserved_addrs ORDER BY created_at, id")?;
    for r in stmt.query_map([], |row| {
        let port = row.get("port")?;
        reservation(row, Reserved::Port(port))
    })? {
        out.push(r?);
    }
    Ok(out)
}

/// Inserts a reservation; fails (constraint) when the name is already reserved.
pub fn insert_reservation(c: &Connection, row: &ReservationRow) -> rusqlite::Result<()> {
    let values = params![
        row.id,
        row.credential_id,
        row.created_at,
        row.description,
        row.metadata
    ];
    match &row.reserved {
        Reserved::Domain(domain) => c.execute(
            "INSERT INTO reserved_domains (id, credential_id, created_at, description, metadata, domain)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            [values, params![domain]].concat().as_slice(),
        )?,
        Reserved::Port(port) => c.execute(
            "INSERT INTO reserved_addrs (id, credential_id, created_at, description, metadata, port)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            [values, params![port]].concat().as_slice(),
        )?,
    };
    Ok(())
}

/// Deletes a reservation by id; whether it existed.
pub fn delete_reservation(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    let n = c.execute("DELETE FROM reserved_domains WHERE id = ?1", [id])?
        + c.execute("DELETE FROM reserved_addrs WHERE id = ?1", [id])?;
    Ok(n > 0)
}

fn cloud_endpoint(row: &Row<'_>) -> rusqlite::Result<CloudEndpointRow> {
    Ok(CloudEndpointRow {
        id: row.get("id")?,
        url: row.get("url")?,
        traffic_policy: row.get("traffic_policy")?,
        pooling_enabled: row.get("pooling_enabled")?,
        credential_id: row.get("credential_id")?,
        created_at: row.get("created_at")?,
        description: row.get("description")?,
        metadata: row.get("metadata")?,
    })
}

/// Every stored cloud endpoint, oldest first.
pub fn cloud_endpoints(c: &Connection) -> rusqlite::Result<Vec<CloudEndpointRow>> {
    let mut stmt = c.prepare("SELECT * FROM cloud_endpoints ORDER BY created_at, id")?;
    let rows = stmt.query_map([], cloud_endpoint)?;
    rows.collect()
}

/// One stored cloud endpoint.
pub fn cloud_endpoint_by_id(
    c: &Connection,
    id: &str,
) -> rusqlite::Result<Option<CloudEndpointRow>> {
    c.query_row(
        "SELECT * FROM cloud_endpoints WHERE id = ?1",
        [id],
        cloud_endpoint,
    )
    .optional()
}

/// Inserts a cloud endpoint.
pub fn insert_cloud_endpoint(c: &Connection, row: &CloudEndpointRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO cloud_endpoints
         (id, url, traffic_policy, pooling_enabled, credential_id, created_at, description, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            row.id,
            row.url,
            row.traffic_policy,
            row.pooling_enabled,
            row.credential_id,
            row.created_at,
            row.description,
            row.metadata
        ],
    )?;
    Ok(())
}

/// Deletes a cloud endpoint; whether it existed.
pub fn delete_cloud_endpoint(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM cloud_endpoints WHERE id = ?1", [id])? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AllRows {
        AllRows {
            credentials: vec![CredentialRow {
                id: "cr_1".into(),
                token_digest: [7; 32],
                created_at: "2026-01-01T00:00:00Z".into(),
                description: "ci".into(),
                metadata: String::new(),
                acl: vec![],
                max_sessions: Some(2),
                max_endpoints: None,
            }],
            reservations: vec![
                ReservationRow {
                    id: "rd_1".into(),
                    reserved: Reserved::Domain("app.example.com".into()),
                    credential_id: "cr_1".into(),
                    created_at: "2026-01-01T00:00:00Z".into(),
                    description: String::new(),
                    metadata: "m".into(),
                },
                ReservationRow {
                    id: "ra_1".into(),
                    reserved: Reserved::Port(20001),
                    credential_id: "cr_1".into(),
                    created_at: "2026-01-01T00:00:00Z".into(),
                    description: String::new(),
                    metadata: String::new(),
                },
            ],
            cloud: vec![CloudEndpointRow {
                id: "ep_1".into(),
                url: "https://hello.example.com".into(),
                traffic_policy: "on_http_request: []\n".into(),
                pooling_enabled: true,
                credential_id: None,
                created_at: "2026-01-01T00:00:00Z".into(),
                description: String::new(),
                metadata: String::new(),
            }],
        }
        .sorted()
    }

    #[test]
    fn rows_survive_their_json_as_the_cluster_store_holds_it() {
        let rows = sample();
        let json = serde_json::to_string(&rows.credentials[0]).expect("json");
        // An empty ACL stays an array, and the digest is hex (the store's scripts read both).
        assert!(
            json.contains("\"acl\":[]") && json.contains(&"07".repeat(32)),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<CredentialRow>(&json).expect("back"),
            rows.credentials[0]
        );
        for r in &rows.reservations {
            let json = serde_json::to_string(r).expect("json");
            // As the store's scripts read it for the index: `reserved.domain` or `reserved.port`.
            let value: serde_json::Value = serde_json::from_str(&json).expect("value");
            match &r.reserved {
                Reserved::Domain(d) => assert_eq!(value["reserved"]["domain"], d.as_str()),
                Reserved::Port(p) => assert_eq!(value["reserved"]["port"], *p),
            }
            assert_eq!(
                &serde_json::from_str::<ReservationRow>(&json).expect("back"),
                r
            );
        }
        let json = serde_json::to_string(&rows.cloud[0]).expect("json");
        assert_eq!(
            serde_json::from_str::<CloudEndpointRow>(&json).expect("back"),
            rows.cloud[0]
        );
    }

    #[test]
    fn replacing_the_copy_drops_rows_the_cluster_lacks_and_records_the_epoch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::Store::open(dir.path()).expect("store");
        let rows = sample();
        store
            .run_now(|c| {
                assert_eq!(mirrored_epoch(c)?, None);
                put_credential(
                    c,
                    &CredentialRow {
                        id: "cr_gone".into(),
                        ..rows.credentials[0].clone()
                    },
                )?;
                replace_all(c, &rows, "e1")?;
                assert_eq!(AllRows::read(c)?.sorted(), rows);
                assert_eq!(mirrored_epoch(c)?.as_deref(), Some("e1"));
                replace_all(c, &AllRows::default(), "e2")?;
                assert!(AllRows::read(c)?.is_empty());
                assert_eq!(mirrored_epoch(c)?.as_deref(), Some("e2"));
                Ok(())
            })
            .expect("queries");
    }
}
