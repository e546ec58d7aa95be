//! Forward-only schema migrations.
//!
//! Migration `i` (0-based) takes the database from schema version `i` to `i + 1`. Released
//! migrations are never edited; a change is a new migration appended at the end.

use rusqlite::{Connection, OptionalExtension};

use crate::{Error, Result};

/// The migrations, in order. Version N means the first N have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: API tokens and a key/value table for one-off facts (e.g. "bootstrapped").
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
     ) STRICT;
     CREATE TABLE api_tokens (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT NOT NULL,
        scope         TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        token_hash    BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        created_at_ms INTEGER NOT NULL,
        last_used_ms  INTEGER,
        revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
     ) STRICT;",
    // 2: enrolled agents, each with its own token (hashed like API tokens), what it last
    // reported, and its shipping mark (the last batch appended to the stream, for de-dup).
    "CREATE TABLE agents (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        name          TEXT NOT NULL UNIQUE,
        token_hash    BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        created_at_ms INTEGER NOT NULL,
        revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
        host          TEXT,
        version       TEXT,
        last_seen_ms  INTEGER,
        inventory     TEXT,
        ship_epoch    INTEGER NOT NULL DEFAULT 0,
        ship_seq      INTEGER NOT NULL DEFAULT 0,
        ship_parts    INTEGER NOT NULL DEFAULT 0
     ) STRICT;",
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Reads the current schema version (0 for an empty database).
pub(crate) fn current_version(conn: &Connection) -> Result<i64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT;",
    )?;
    let v: Option<i64> = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?;
    Ok(v.unwrap_or(0))
}

/// Applies every migration the database lacks, each in its own transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64> {
    let mut version = current_version(conn)?;
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    while version < SCHEMA_VERSION {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the write lock.
        let now = current_version(&tx)?;
        if now != version {
            version = now;
            tx.commit()?;
            continue;
        }
        // `version` is in 0..SCHEMA_VERSION here, so the index is in bounds.
        let sql = MIGRATIONS[version as usize];
        tx.execute_batch(sql)?;
        tx.execute("DELETE FROM schema_version", [])?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version + 1],
        )?;
        tx.commit()?;
        version += 1;
    }
    Ok(version)
}
