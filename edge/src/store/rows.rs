//! The store's rows as types, and the queries that read and write them. Values are checked
//! before they get here (the control plane compiles them); these functions only move them.

use rusqlite::{params, Connection, OptionalExtension, Row};

/// A credential created through the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    /// `cr_…`.
    pub id: String,
    /// SHA-256 of the token.
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

/// What a reservation holds: a hostname or a TCP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// A lowercase hostname.
    Domain(String),
    /// A port of the edge's `tcp_ports`.
    Port(u16),
}

/// A reserved domain or TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
