//! Enrolled agents: per-agent tokens (hashed like API tokens, prefix `bsa_`), what each agent
//! last reported, and its shipping mark, which the server uses to drop re-sent batches.

use rusqlite::{params, OptionalExtension, Row};

use crate::store::StateStore;
use crate::token;
use crate::{Error, Result};

/// Every agent token starts with this (API tokens start with `bsu_`).
pub const AGENT_TOKEN_PREFIX: &str = "bsa_";

/// The last batch of an agent that reached the stream: its queue epoch, its sequence number,
/// and which parts of it were appended (bit 0 metrics, bit 1 logs; see docs/formats/agent.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipMark {
    /// The agent queue's random epoch; a new epoch starts a new sequence.
    pub epoch: u64,
    /// The batch's sequence number within the epoch.
    pub seq: u64,
    /// Bit set of the parts of batch `seq` already appended.
    pub parts: u8,
}

/// What the store knows about an agent. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// Stable id, used to revoke.
    pub id: i64,
    /// The name given at enrollment (usually the host name).
    pub name: String,
    /// Enrollment time, Unix milliseconds.
    pub created_at_ms: i64,
    /// A revoked agent's token never authenticates again.
    pub revoked: bool,
    /// Host name the agent last reported.
    pub host: Option<String>,
    /// Agent version it last reported.
    pub version: Option<String>,
    /// Last accepted push, Unix milliseconds.
    pub last_seen_ms: Option<i64>,
    /// The last inventory it sent (a JSON document).
    pub inventory: Option<String>,
    /// Its shipping mark.
    pub mark: ShipMark,
}

/// A freshly enrolled agent and its token, which is never stored nor shown again.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAgent {
    /// The stored record.
    pub info: AgentInfo,
    /// The token to configure on the agent, `bsa_...`.
    pub secret: String,
}

impl std::fmt::Debug for NewAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAgent")
            .field("info", &self.info)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What an accepted push tells about the agent, written with its shipping mark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentReport {
    /// Host name, when the push carried a heartbeat.
    pub host: Option<String>,
    /// Agent version, when the push carried a heartbeat.
    pub version: Option<String>,
    /// A new inventory document, when the push carried one.
    pub inventory: Option<String>,
}

const COLUMNS: &str = "id, name, created_at_ms, revoked, host, version, last_seen_ms, inventory, \
                       ship_epoch, ship_seq, ship_parts";

fn row_to_agent(r: &Row<'_>) -> rusqlite::Result<AgentInfo> {
    let revoked: i64 = r.get(3)?;
    let epoch: i64 = r.get(8)?;
    let seq: i64 = r.get(9)?;
    let parts: i64 = r.get(10)?;
    Ok(AgentInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at_ms: r.get(2)?,
        revoked: revoked != 0,
        host: r.get(4)?,
        version: r.get(5)?,
        last_seen_ms: r.get(6)?,
        inventory: r.get(7)?,
        mark: ShipMark {
            // Stored as the two's complement bit pattern: SQLite integers are signed.
            epoch: epoch as u64,
            seq: seq as u64,
            parts: (parts & 0xff) as u8,
        },
    })
}

impl StateStore {
    /// Enrolls an agent under a unique name and returns it with its token.
    pub fn enroll_agent(&self, name: &str, now_ms: i64) -> Result<NewAgent> {
        token::validate_name(name)?;
        let secret = token::generate_secret_with_prefix(AGENT_TOKEN_PREFIX)?;
        let hash = token::hash_token(&secret);
        let conn = self.lock();
        let exists: Option<i64> = conn
            .query_row("SELECT id FROM agents WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(Error::AgentExists(name.to_owned()));
        }
        conn.execute(
            "INSERT INTO agents (name, token_hash, created_at_ms) VALUES (?1, ?2, ?3)",
            params![name, &hash[..], now_ms],
        )?;
        let id = conn.last_insert_rowid();
        let info = get_agent(&conn, id)?;
        Ok(NewAgent { info, secret })
    }

    /// Every agent, revoked ones included, by id.
    pub fn list_agents(&self) -> Result<Vec<AgentInfo>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM agents ORDER BY id"))?;
        let rows = stmt.query_map([], row_to_agent)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    /// One agent by id.
    pub fn get_agent(&self, id: i64) -> Result<AgentInfo> {
        get_agent(&self.lock(), id)
    }

    /// Revokes an agent's token (idempotent) and returns its record.
    pub fn revoke_agent(&self, id: i64) -> Result<AgentInfo> {
        let conn = self.lock();
        let n = conn.execute("UPDATE agents SET revoked = 1 WHERE id = ?1", [id])?;
        if n == 0 {
            return Err(Error::AgentNotFound(id));
        }
        get_agent(&conn, id)
    }

    /// Checks a presented agent token: the agent's record when it exists and is not revoked.
    pub fn verify_agent_token(&self, secret: &str) -> Result<Option<AgentInfo>> {
        if !token::looks_like_token_with_prefix(secret, AGENT_TOKEN_PREFIX) {
            return Ok(None);
        }
        let presented = token::hash_token(secret);
        let conn = self.lock();
        let found = conn
            .query_row(
                &format!("SELECT {COLUMNS}, token_hash FROM agents WHERE token_hash = ?1"),
                [&presented[..]],
                |r| {
                    let stored: Vec<u8> = r.get(11)?;
                    Ok((row_to_agent(r)?, stored))
                },
            )
            .optional()?;
        let Some((info, stored)) = found else {
            return Ok(None);
        };
        let Ok(stored) = <[u8; 32]>::try_from(stored.as_slice()) else {
            return Ok(None);
        };
        if !token::ct_eq(&stored, &presented) || info.revoked {
            return Ok(None);
        }
        Ok(Some(info))
    }

    /// Records an accepted push: the shipping mark, last-seen time and what the push reported
    /// (fields left `None` keep their stored value), in one statement.
    pub fn record_agent_push(
        &self,
        id: i64,
        mark: ShipMark,
        report: &AgentReport,
        now_ms: i64,
    ) -> Result<()> {
        let conn = self.lock();
        let n = conn.execute(
            "UPDATE agents SET ship_epoch = ?2, ship_seq = ?3, ship_parts = ?4, last_seen_ms = ?5,
                host = COALESCE(?6, host), version = COALESCE(?7, version),
                inventory = COALESCE(?8, inventory)
             WHERE id = ?1",
            params![
                id,
                mark.epoch as i64,
                mark.seq as i64,
                i64::from(mark.parts),
                now_ms,
                report.host,
                report.version,
                report.inventory,
            ],
        )?;
        if n == 0 {
            return Err(Error::AgentNotFound(id));
        }
        Ok(())
    }

    /// A value of the store's key/value table.
    pub fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .lock()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value of the store's key/value table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.lock().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

fn get_agent(conn: &rusqlite::Connection, id: i64) -> Result<AgentInfo> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM agents WHERE id = ?1"),
        [id],
        row_to_agent,
    )
    .optional()?
    .ok_or(Error::AgentNotFound(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_305_806_000;

    #[test]
    fn enroll_verify_report_revoke() {
        let store = StateStore::open_in_memory().unwrap();
        let a = store.enroll_agent("web-1", T0).unwrap();
        assert!(a.secret.starts_with(AGENT_TOKEN_PREFIX));
        assert_eq!(a.info.mark, ShipMark::default());
        let v = store.verify_agent_token(&a.secret).unwrap().unwrap();
        assert_eq!(v.id, a.info.id);
        // An API-token-shaped secret or garbage never verifies as an agent.
        let api = store
            .create_token("x", crate::Scope::Admin, T0)
            .unwrap()
            .secret;
        assert_eq!(store.verify_agent_token(&api).unwrap(), None);
        assert_eq!(store.verify_agent_token("bsa_short").unwrap(), None);

        let mark = ShipMark {
            epoch: u64::MAX - 3,
            seq: 42,
            parts: 3,
        };
        let report = AgentReport {
            host: Some("web-1.example".into()),
            version: Some("0.1.0".into()),
            inventory: Some("{\"os\":{}}".into()),
        };
        store
            .record_agent_push(a.info.id, mark, &report, T0 + 5)
            .unwrap();
        // A push without heartbeat or inventory keeps what was reported before.
        let next = ShipMark { seq: 43, ..mark };
        store
            .record_agent_push(a.info.id, next, &AgentReport::default(), T0 + 6)
            .unwrap();
        let got = store.get_agent(a.info.id).unwrap();
        assert_eq!(got.mark, next);
        assert_eq!(got.last_seen_ms, Some(T0 + 6));
        assert_eq!(got.host.as_deref(), Some("web-1.example"));
        assert_eq!(got.inventory.as_deref(), Some("{\"os\":{}}"));

        assert!(store.revoke_agent(a.info.id).unwrap().revoked);
        assert_eq!(store.verify_agent_token(&a.secret).unwrap(), None);
        assert!(matches!(
            store.revoke_agent(999),
            Err(Error::AgentNotFound(999))
        ));
    }

    #[test]
    fn names_are_unique_and_the_mark_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let a = store.enroll_agent("db", T0).unwrap();
        let err = store.enroll_agent("db", T0).unwrap_err();
        assert!(err.to_string().contains("already enrolled"), "{err}");
        let mark = ShipMark {
            epoch: 7,
            seq: 9,
            parts: 1,
        };
        store
            .record_agent_push(a.info.id, mark, &AgentReport::default(), T0)
            .unwrap();
        store.set_meta("k", "v1").unwrap();
        store.set_meta("k", "v2").unwrap();
        drop(store);
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.list_agents().unwrap()[0].mark, mark);
        assert_eq!(store.get_meta("k").unwrap().as_deref(), Some("v2"));
        assert_eq!(store.get_meta("missing").unwrap(), None);
    }
}
