use std::path::PathBuf;

/// Errors from the log store and its query language.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt data in {path}: {what}; restore the file from a backup or delete it and replay the log")]
    Corrupt { path: PathBuf, what: String },
    #[error("too many streams ({limit}): keep high-cardinality values out of stream labels or raise logstore.max_streams")]
    TooManyStreams { limit: usize },
    #[error("stream has {count} labels, limit {limit}: drop some stream labels or raise logstore.max_labels_per_stream")]
    TooManyLabels { count: usize, limit: usize },
    #[error("label {name:?} is {len} bytes long, limit {limit}: shorten it or raise logstore.max_label_bytes")]
    LabelTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("stream labels must not be empty: give the stream at least one label")]
    EmptyStream,
    #[error("entry at {timestamp_ns} ns is too far behind the stream's newest entry at {newest_ns} ns (window {window_ns} ns): send entries in order or raise logstore.out_of_order_window")]
    OutOfOrder {
        timestamp_ns: i64,
        newest_ns: i64,
        window_ns: i64,
    },
    #[error("line is {len} bytes long, limit {limit}: split it or raise logstore.max_line_bytes")]
    LineTooLong { len: usize, limit: usize },
    #[error("compression codec error: {0}")]
    Codec(String),
    #[error("parse error at line {line}, col {col}: {msg}")]
    Parse {
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("invalid query: {0}")]
    Query(String),
    #[error("query limit reached: {0}")]
    Limit(String),
    #[error("pipeline error: {0}: add `| __error__=\"\"` to drop failing lines")]
    Pipeline(String),
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

pub(crate) fn corrupt(path: impl Into<PathBuf>, what: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.into(),
        what: what.into(),
    }
}
