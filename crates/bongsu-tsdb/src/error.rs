use std::path::PathBuf;

/// Errors returned by the time-series store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt tsdb file {path}: {reason}; remove the block directory or restore it from a backup")]
    Corrupt { path: PathBuf, reason: String },
    #[error("unsupported tsdb file version {version} in {path}: upgrade bongsu to read it")]
    UnsupportedVersion { path: PathBuf, version: u16 },
    #[error("series limit reached ({limit} series in the head): drop high-cardinality labels or raise tsdb.max_series")]
    SeriesLimit { limit: usize },
    #[error("series limit for metric {metric:?} reached ({limit} series): drop high-cardinality labels or raise tsdb.max_series_per_metric")]
    MetricSeriesLimit { metric: String, limit: usize },
    #[error("invalid regex {pattern:?} in matcher: {reason}")]
    InvalidRegex { pattern: String, reason: String },
    #[error("sample for {series} at {timestamp_ms} is older than the out-of-order window ({window_ms} ms behind its newest sample): it was refused")]
    OutOfWindow {
        series: String,
        timestamp_ms: i64,
        window_ms: i64,
    },
    #[error("compression failed: {0}")]
    Compress(String),
    #[error("invalid configuration: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
