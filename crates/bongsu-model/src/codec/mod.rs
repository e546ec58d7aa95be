//! Binary payloads of the records bongsu appends to its durable log.
//!
//! - [`MetricsRecord`]: a record of the `metrics` topic, a batch of series with their samples and
//!   the metric families' metadata.
//! - [`MetricsRecordWriter`] and [`MetricsRecordView`]: the same `metrics` record bytes written
//!   from and read into borrowed label pairs, for the ingest path, which allocates nothing per
//!   series.
//! - [`LogsRecord`]: a record of the `logs` topic, a batch of streams with their entries.
//! - [`LogsRecordWriter`] and [`LogsRecordView`]: the same `logs` record bytes written from
//!   and read into borrowed lines.
//!
//! Both start with a 4-byte magic and a version byte, use a symbol table so repeated label
//! names and values are stored once per record, and are little-endian throughout. The byte
//! layout is documented in `docs/formats/records.md`. They carry no checksum: the log's batch
//! CRC-32C covers them. Decoding untrusted bytes never panics and bounds what it allocates.

mod error;
mod logs;
mod metrics;
mod metrics_view;
mod wire;

pub use error::{RecordError, RecordResult};
pub use logs::{
    LogEntryRef, LogStream, LogStreamRef, LogsRecord, LogsRecordView, LogsRecordWriter, LOGS_MAGIC,
    LOGS_VERSION,
};
pub use metrics::{
    MetricKind, MetricMetadata, MetricsRecord, Series, METRICS_MAGIC, METRICS_VERSION,
};
pub use metrics_view::{MetadataRef, MetricsRecordView, MetricsRecordWriter, SeriesView};
pub use wire::DecodeLimits;

#[cfg(test)]
mod golden;
