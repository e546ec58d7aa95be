/// Errors from the state store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQLite database failed (open, query, constraint).
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created or read.
    #[error("cannot prepare the state directory: {0}")]
    Io(#[from] std::io::Error),
    /// The database was written by a newer bongsu.
    #[error(
        "state database schema version {found} is newer than this bongsu supports ({supported}): \
         run a newer bongsu or restore a backup"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// No token has the given id.
    #[error("no token with id {0}: list tokens to see their ids")]
    TokenNotFound(i64),
    /// No agent has the given id.
    #[error("no agent with id {0}: list agents to see their ids")]
    AgentNotFound(i64),
    /// An agent with this name is already enrolled.
    #[error("an agent named {0:?} is already enrolled: revoke it first or pick another name")]
    AgentExists(String),
    /// A token name was empty, too long or had control characters.
    #[error("invalid token name: {0}")]
    InvalidName(String),
    /// A scope string was not one of read, write, admin.
    #[error("invalid scope {0:?}: use read, write or admin")]
    InvalidScope(String),
    /// The OS random number generator failed.
    #[error("cannot generate a random token: {0}")]
    Random(String),
}

/// The state store's result type.
pub type Result<T> = std::result::Result<T, Error>;
