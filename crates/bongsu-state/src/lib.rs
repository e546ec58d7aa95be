//! bongsu's state store: the small, transactional, mutable state of a bongsu installation.
//!
//! Today it owns API tokens; users, teams, rules, silences and issues follow. The store is one
//! SQLite database at `<data_dir>/state.db` (WAL mode, busy timeout, forward-only migrations
//! tracked in a `schema_version` table), so the server and command-line tools may open it at the
//! same time.
//!
//! The API is synchronous and small: callers on an async runtime use `spawn_blocking`.
//!
//! - [`StateStore`]: open, migrate, tokens.
//! - [`Scope`]: `read` ⊂ `write` ⊂ `admin`.
//! - [`TokenInfo`], [`NewToken`]: what the store knows about a token; the secret is only in
//!   [`NewToken`], returned once at creation.
//! - [`AgentInfo`], [`NewAgent`], [`ShipMark`]: enrolled agents, their `bsa_` tokens and the
//!   shipping mark the server de-duplicates re-sent batches with.

mod agents;
mod error;
mod schema;
mod store;
mod time;
mod token;

pub use agents::{AgentInfo, AgentReport, NewAgent, ShipMark, AGENT_TOKEN_PREFIX};
pub use error::{Error, Result};
pub use store::{StateStore, BUSY_TIMEOUT, STATE_DB_FILE};
pub use time::format_rfc3339_ms;
pub use token::{hash_token, NewToken, Scope, TokenInfo, TOKEN_PREFIX};
