/// How the server should answer a request that failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or breaks a per-item limit: HTTP 400.
    BadRequest,
    /// The request body, its decompressed size or its item count is over a limit: HTTP 413.
    PayloadTooLarge,
    /// The content type or encoding is one this receiver does not speak: HTTP 415.
    UnsupportedMediaType,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
        }
    }
}

/// Why an ingest request or input was refused. Nothing of a refused request is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "request body too large ({size} bytes, limit {limit}): send smaller batches or raise {key}"
    )]
    BodyTooLarge {
        size: usize,
        limit: usize,
        key: &'static str,
    },
    #[error("decompressed body too large ({size} bytes, limit {limit}): send smaller batches or raise {key}")]
    DecompressedTooLarge {
        size: u64,
        limit: usize,
        key: &'static str,
    },
    #[error("too many {what} in one request ({actual}, limit {limit}): send smaller batches or raise {key}")]
    TooManyItems {
        what: &'static str,
        actual: usize,
        limit: usize,
        key: &'static str,
    },
    #[error("{what} over limit ({actual}, limit {limit}) in {context}: shorten it or raise {key}")]
    ItemTooLarge {
        what: &'static str,
        actual: usize,
        limit: usize,
        key: &'static str,
        context: String,
    },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("bad {header} header {value:?}: {detail}")]
    BadHeader {
        header: &'static str,
        value: String,
        detail: &'static str,
    },
    #[error("malformed {format} body: {detail}")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    #[error(
        "invalid label name {name:?} in {context}: label names must match [a-zA-Z_][a-zA-Z0-9_]*"
    )]
    InvalidLabelName { name: String, context: String },
    #[error("invalid metric name {name:?} in {context}: metric names must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName { name: String, context: String },
    #[error("missing metric name in {context}: every series needs a __name__ label")]
    MissingMetricName { context: String },
    #[error("duplicate label name {name:?} in {context}: send each label once per series")]
    DuplicateLabel { name: String, context: String },
    #[error("invalid UTF-8 in {what}: send UTF-8 text")]
    InvalidUtf8 { what: &'static str },
    #[error("line {line}: {detail}")]
    Exposition { line: usize, detail: String },
    #[error("invalid stream selector {selector:?}: {detail}")]
    StreamSelector { selector: String, detail: String },
}

impl Error {
    /// How the server maps this error to an HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BodyTooLarge { .. }
            | Self::DecompressedTooLarge { .. }
            | Self::TooManyItems { .. } => ErrorKind::PayloadTooLarge,
            Self::UnsupportedMediaType(_) => ErrorKind::UnsupportedMediaType,
            Self::ItemTooLarge { .. }
            | Self::BadHeader { .. }
            | Self::Malformed { .. }
            | Self::InvalidLabelName { .. }
            | Self::InvalidMetricName { .. }
            | Self::MissingMetricName { .. }
            | Self::DuplicateLabel { .. }
            | Self::InvalidUtf8 { .. }
            | Self::Exposition { .. }
            | Self::StreamSelector { .. } => ErrorKind::BadRequest,
        }
    }

    pub(crate) fn malformed(format: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Malformed {
            format,
            detail: detail.to_string(),
        }
    }
}

/// Result of an ingest decoder.
pub type Result<T> = std::result::Result<T, Error>;
