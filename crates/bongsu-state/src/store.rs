//! The SQLite-backed store.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::schema;
use crate::token::{self, NewToken, Scope, TokenInfo};
use crate::{Error, Result};

/// The state database's file name inside the data directory.
pub const STATE_DB_FILE: &str = "state.db";

/// How long a writer waits for another process's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `last_used_ms` is written at most this often per token.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// The `meta` key set once the first admin token has been created.
const META_BOOTSTRAPPED: &str = "bootstrapped_at_ms";

/// The name of the admin token created on first start.
pub(crate) const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

/// bongsu's state database. Cheap to share behind an `Arc`; every method is synchronous and
/// may block briefly on disk or on another process's write lock (up to [`BUSY_TIMEOUT`]), so
/// call it from `spawn_blocking` on an async runtime.
#[derive(Debug)]
pub struct StateStore {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
}

impl StateStore {
    /// Opens (creating if needed) `<data_dir>/state.db`, creating `data_dir` too, and applies
    /// pending migrations.
    pub fn open(data_dir: &Path) -> Result<StateStore> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(STATE_DB_FILE);
        let conn = Connection::open(&path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL lets the server and the command-line tools use the database at the same time.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Still works, but the server and the command-line tools then wait on each other.
            tracing::warn!(
                journal_mode = %mode,
                "state database refused wal mode: concurrent use may wait on locks"
            );
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        Self::finish_open(conn, Some(path))
    }

    /// Opens a private in-memory store, for tests.
    pub fn open_in_memory() -> Result<StateStore> {
        let conn = Connection::open_in_memory()?;
        Self::finish_open(conn, None)
    }

    fn finish_open(mut conn: Connection, path: Option<PathBuf>) -> Result<StateStore> {
        schema::migrate(&mut conn)?;
        Ok(StateStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64> {
        schema::current_version(&self.lock())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection inconsistent: every
        // multi-statement change runs in a transaction that rolls back when dropped.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a token and returns it with its secret. The secret is not stored.
    pub fn create_token(&self, name: &str, scope: Scope, now_ms: i64) -> Result<NewToken> {
        token::validate_name(name)?;
        let conn = self.lock();
        insert_token(&conn, name, scope, now_ms)
    }

    /// On the first call against a fresh database, creates an admin token named
    /// `bootstrap-admin` and returns it; on every later call returns `None`, even when all tokens
    /// have since been revoked (then create one with the command-line tool).
    pub fn bootstrap_admin_token(&self, now_ms: i64) -> Result<Option<NewToken>> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [META_BOOTSTRAPPED],
                |r| r.get(0),
            )
            .optional()?;
        if done.is_some() {
            return Ok(None);
        }
        let token = insert_token(&tx, BOOTSTRAP_TOKEN_NAME, Scope::Admin, now_ms)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![META_BOOTSTRAPPED, now_ms.to_string()],
        )?;
        tx.commit()?;
        Ok(Some(token))
    }

    /// Every token, revoked ones included, by id.
    pub fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, name, scope, created_at_ms, last_used_ms, revoked
             FROM api_tokens ORDER BY id",
        )?;
        let rows = stmt.query_map([], row_to_info)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    /// One token by id.
    pub fn get_token(&self, id: i64) -> Result<TokenInfo> {
        let conn = self.lock();
        get_token(&conn, id)
    }

    /// Revokes a token (idempotent) and returns its record.
    pub fn revoke_token(&self, id: i64) -> Result<TokenInfo> {
        let conn = self.lock();
        let n = conn.execute("UPDATE api_tokens SET revoked = 1 WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(Error::TokenNotFound(id));
        }
        get_token(&conn, id)
    }

    /// Checks a presented secret. Returns the token's record when it exists and is not revoked,
    /// `None` otherwise, and records the use (at most once a minute per token).
    ///
    /// The lookup goes by the SHA-256 digest of the presented secret, then the stored digest
    /// is compared again in constant time; timing therefore reveals nothing about any stored
    /// secret.
    pub fn verify_token(&self, secret: &str, now_ms: i64) -> Result<Option<TokenInfo>> {
        if !token::looks_like_token(secret) {
            return Ok(None);
        }
        let presented = token::hash_token(secret);
        let conn = self.lock();
        let found = conn
            .query_row(
                "SELECT id, name, scope, created_at_ms, last_used_ms, revoked, token_hash
                 FROM api_tokens WHERE token_hash = ?1",
                [&presented[..]],
                |r| {
                    let stored: Vec<u8> = r.get(6)?;
                    Ok((row_to_info(r)?, stored))
                },
            )
            .optional()?;
        let Some((info, stored)) = found else {
            return Ok(None);
        };
        let info = info?;
        let Ok(stored) = <[u8; 32]>::try_from(stored.as_slice()) else {
            return Ok(None);
        };
        if !token::ct_eq(&stored, &presented) || info.revoked {
            return Ok(None);
        }
        let mut info = info;
        let stale = info
            .last_used_ms
            .is_none_or(|t| now_ms - t >= LAST_USED_GRANULARITY_MS);
        if stale {
            conn.execute(
                "UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1",
                params![info.id, now_ms],
            )?;
            info.last_used_ms = Some(now_ms);
        }
        Ok(Some(info))
    }
}

fn insert_token(conn: &Connection, name: &str, scope: Scope, now_ms: i64) -> Result<NewToken> {
    let secret = token::generate_secret()?;
    let hash = token::hash_token(&secret);
    conn.execute(
        "INSERT INTO api_tokens (name, scope, token_hash, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
        params![name, scope.as_str(), &hash[..], now_ms],
    )?;
    let id = conn.last_insert_rowid();
    Ok(NewToken {
        info: TokenInfo {
            id,
            name: name.to_owned(),
            scope,
            created_at_ms: now_ms,
            last_used_ms: None,
            revoked: false,
        },
        secret,
    })
}

fn get_token(conn: &Connection, id: i64) -> Result<TokenInfo> {
    conn.query_row(
        "SELECT id, name, scope, created_at_ms, last_used_ms, revoked
         FROM api_tokens WHERE id = ?1",
        [id],
        row_to_info,
    )
    .optional()?
    .ok_or(Error::TokenNotFound(id))?
}

/// Reads a token row. The outer error is SQLite's; the inner one a bad stored scope.
fn row_to_info(r: &Row<'_>) -> rusqlite::Result<Result<TokenInfo>> {
    let scope: String = r.get(2)?;
    let revoked: i64 = r.get(5)?;
    let info = TokenInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        scope: Scope::Read,
        created_at_ms: r.get(3)?,
        last_used_ms: r.get(4)?,
        revoked: revoked != 0,
    };
    Ok(scope
        .parse::<Scope>()
        .map(|scope| TokenInfo { scope, ..info }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_305_806_000;

    #[test]
    fn migrates_an_empty_database_to_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert!(dir.path().join(STATE_DB_FILE).exists());
        drop(store);
        // Reopening applies nothing and keeps the data.
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), schema::SCHEMA_VERSION);
        assert!(store.list_tokens().unwrap().is_empty());
    }

    #[test]
    fn creates_the_data_dir_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        let store = StateStore::open(&data).unwrap();
        let mode: String = store
            .lock()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_a_database_from_a_newer_bongsu() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(STATE_DB_FILE)).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(conn);
        let err = StateStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, Error::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this bongsu supports"));
    }

    #[test]
    fn create_verify_revoke() {
        let store = StateStore::open_in_memory().unwrap();
        let t = store.create_token("ci", Scope::Write, T0).unwrap();
        assert_eq!(t.info.name, "ci");
        assert_eq!(t.info.scope, Scope::Write);
        assert!(!t.info.revoked);

        let v = store.verify_token(&t.secret, T0 + 1).unwrap().unwrap();
        assert_eq!(v.id, t.info.id);
        assert_eq!(v.last_used_ms, Some(T0 + 1));

        // Wrong secrets of the right shape, and garbage, do not verify.
        let other = token::generate_secret().unwrap();
        assert_eq!(store.verify_token(&other, T0).unwrap(), None);
        assert_eq!(store.verify_token("", T0).unwrap(), None);
        assert_eq!(store.verify_token("Bearer x", T0).unwrap(), None);
        let mut flipped = t.secret.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(store.verify_token(&flipped, T0).unwrap(), None);

        let r = store.revoke_token(t.info.id).unwrap();
        assert!(r.revoked);
        assert_eq!(store.verify_token(&t.secret, T0 + 2).unwrap(), None);
        // Revoking twice is fine; an unknown id is an error that names it.
        assert!(store.revoke_token(t.info.id).unwrap().revoked);
        let err = store.revoke_token(12345).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no token with id 12345: list tokens to see their ids"
        );
    }

    #[test]
    fn the_secret_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let t = store.create_token("x", Scope::Read, T0).unwrap();
        drop(store);
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        let needle = t.secret.as_bytes();
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        let needle = &t.secret.as_bytes()[4..];
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn last_used_is_written_at_most_once_a_minute() {
        let store = StateStore::open_in_memory().unwrap();
        let t = store.create_token("r", Scope::Read, T0).unwrap();
        let id = t.info.id;
        store.verify_token(&t.secret, T0 + 1_000).unwrap().unwrap();
        store.verify_token(&t.secret, T0 + 30_000).unwrap().unwrap();
        assert_eq!(store.get_token(id).unwrap().last_used_ms, Some(T0 + 1_000));
        store.verify_token(&t.secret, T0 + 61_000).unwrap().unwrap();
        assert_eq!(store.get_token(id).unwrap().last_used_ms, Some(T0 + 61_000));
    }

    #[test]
    fn bootstrap_happens_once_even_after_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let first = store.bootstrap_admin_token(T0).unwrap().unwrap();
        assert_eq!(first.info.scope, Scope::Admin);
        assert_eq!(first.info.name, "bootstrap-admin");
        assert!(store.bootstrap_admin_token(T0).unwrap().is_none());
        store.revoke_token(first.info.id).unwrap();
        drop(store);
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.bootstrap_admin_token(T0).unwrap().is_none());
        assert_eq!(store.list_tokens().unwrap().len(), 1);
    }

    #[test]
    fn two_handles_on_one_database_see_each_others_changes() {
        let dir = tempfile::tempdir().unwrap();
        let server = StateStore::open(dir.path()).unwrap();
        let cli = StateStore::open(dir.path()).unwrap();
        let t = cli.create_token("cli", Scope::Read, T0).unwrap();
        assert!(server.verify_token(&t.secret, T0).unwrap().is_some());
        cli.revoke_token(t.info.id).unwrap();
        assert!(server.verify_token(&t.secret, T0).unwrap().is_none());
    }

    #[test]
    fn list_returns_all_tokens_in_id_order() {
        let store = StateStore::open_in_memory().unwrap();
        let a = store.create_token("a", Scope::Read, T0).unwrap();
        let b = store.create_token("b", Scope::Admin, T0 + 5).unwrap();
        store.revoke_token(a.info.id).unwrap();
        let all = store.list_tokens().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "a");
        assert!(all[0].revoked);
        assert_eq!(all[1], b.info);
    }

    #[test]
    fn invalid_names_are_rejected_before_writing() {
        let store = StateStore::open_in_memory().unwrap();
        assert!(matches!(
            store.create_token("", Scope::Read, T0),
            Err(Error::InvalidName(_))
        ));
        assert!(store.list_tokens().unwrap().is_empty());
    }
}
