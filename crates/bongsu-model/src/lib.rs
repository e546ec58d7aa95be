//! bongsu's data model: the values that cross crate boundaries.
//!
//! - [`Labels`]: a sorted set of label pairs identifying a metric series or a log stream.
//! - [`Sample`]: one metric value at a millisecond timestamp, with Prometheus's staleness marker.
//! - [`LogEntry`]: one log line at a nanosecond timestamp with its structured metadata.
//! - [`MetricsRecord`] and [`LogsRecord`]: the versioned binary payloads of records in the
//!   `metrics` and `logs` topics (layout in `docs/formats/records.md`); [`MetricsRecordWriter`]
//!   and [`MetricsRecordView`] write and read the metrics record from borrowed labels.
//!
//! This crate does no I/O.

mod codec;
mod error;
mod labels;
mod log;
mod sample;

pub use codec::{
    DecodeLimits, LogEntryRef, LogStream, LogStreamRef, LogsRecord, LogsRecordView,
    LogsRecordWriter, MetadataRef, MetricKind, MetricMetadata, MetricsRecord, MetricsRecordView,
    MetricsRecordWriter, RecordError, RecordResult, Series, SeriesView, LOGS_MAGIC, LOGS_VERSION,
    METRICS_MAGIC, METRICS_VERSION,
};
pub use error::{Error, Result};
pub use labels::{Label, Labels, METRIC_NAME};
pub use log::LogEntry;
pub use sample::{is_stale_nan, Sample, STALE_NAN_BITS};
