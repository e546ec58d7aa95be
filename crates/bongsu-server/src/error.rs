use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors from configuring, starting and running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration is not valid TOML.
    #[error("config is not valid TOML: {0}")]
    ConfigSyntax(String),
    /// A section or key is unknown or has a value of the wrong type.
    #[error("config section [{section}]: {message}")]
    ConfigSection { section: String, message: String },
    /// A top-level key is not one of the known sections.
    #[error(
        "config has unknown section or key `{0}`: the sections are [server], [auth], [stream], [ingest] and [logs]"
    )]
    ConfigUnknownSection(String),
    /// A value parsed but is out of range or inconsistent.
    #[error("config {key}: {message}")]
    ConfigValue { key: String, message: String },
    /// A `BONGSU_*` environment variable could not be applied.
    #[error("environment variable {var}: {message}")]
    ConfigEnv { var: String, message: String },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] bongsu_state::Error),
    /// The embedded stream failed to open or to create a topic.
    #[error(transparent)]
    Stream(#[from] bongsu_stream::Error),
    /// The log store failed to open or to flush.
    #[error(transparent)]
    LogStore(#[from] bongsu_logstore::Error),
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source}: pick a free address with --listen or server.listen"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("http server error: {0}")]
    Serve(std::io::Error),
    /// Shutdown hooks that did not finish within `server.shutdown_timeout`.
    #[error("shutdown hooks did not finish within server.shutdown_timeout: {0}: raise the timeout or check the log")]
    ShutdownTimeout(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// The server crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
