//! Errors of the generator's senders and writers.

use std::path::PathBuf;

/// What went wrong writing or sending generated logs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}: check the path and free space")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A network peer could not be reached or closed the connection.
    #[error(
        "cannot send to {addr}: {source}: check that the server is running and listening there"
    )]
    Net {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A push endpoint answered with an error status.
    #[error("{addr} answered HTTP {status} to a push: {body}")]
    Rejected {
        addr: String,
        status: u16,
        body: String,
    },
    /// A response did not parse as HTTP/1.1.
    #[error("{addr} sent a malformed HTTP response: {what}")]
    BadResponse { addr: String, what: String },
    /// An argument was out of range.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// The generator's result type.
pub type Result<T> = std::result::Result<T, Error>;
