//! Errors of the load generator library.

/// What went wrong while generating, sending or comparing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request could not be sent or its answer not read.
    #[error("http request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The receiver answered with a status other than success.
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    /// A query API answer was not the Prometheus JSON shape.
    #[error("malformed query answer from {url}: {reason}")]
    Malformed { url: String, reason: String },
    /// A setting is out of range.
    #[error("invalid workload setting: {0}")]
    Config(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;
