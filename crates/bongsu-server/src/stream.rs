//! Wiring of the embedded stream: open it under the data directory, create the topics bongsu
//! appends to, expose its counters on `/metrics`, and flush it on shutdown.

use std::path::Path;
use std::sync::Arc;

use bongsu_stream::{EmbeddedStream, Stream, StreamOptions, TopicConfig};

use crate::config::{Compression, StreamSettings};
use crate::metrics::{MetricKind, MetricsSource, MetricsWriter};
use crate::{Error, Result};

/// The topics the server creates on start, with the `[stream]` settings. A topic that exists
/// keeps the settings it was created with.
pub const BUILTIN_TOPICS: &[&str] = &["metrics", "logs"];

/// The `[stream]` settings as the configuration of a new topic.
pub fn topic_config(s: &StreamSettings) -> TopicConfig {
    TopicConfig {
        partitions: s.effective_partitions(),
        retention_ms: s.retention_ms,
        retention_bytes: s.retention_bytes,
        segment_bytes: s.segment_bytes,
        segment_ms: i64::try_from(s.segment_ms).unwrap_or(i64::MAX),
        // `stream.flush_ms = 0` means "no time-based flush" (Kafka's default of Long.MAX_VALUE);
        // the stream's own `flush.ms = 0` would mean "fsync before every acknowledgement".
        flush_ms: match s.flush_ms {
            0 => i64::MAX,
            ms => i64::try_from(ms).unwrap_or(i64::MAX),
        },
        flush_messages: i64::try_from(s.flush_messages).unwrap_or(i64::MAX),
        compression_type: match s.compression {
            Compression::Zstd => bongsu_stream::Compression::Zstd,
            Compression::Lz4 => bongsu_stream::Compression::Lz4,
            Compression::None => bongsu_stream::Compression::None,
        },
        max_message_bytes: s.max_message_bytes,
        ..TopicConfig::default()
    }
}

/// Opens the embedded stream in `dir` (off the async runtime) and creates the built-in topics
/// that do not exist yet.
pub(crate) async fn open(dir: &Path, settings: &StreamSettings) -> Result<Arc<EmbeddedStream>> {
    let opts = StreamOptions {
        retention_check_interval_ms: settings.retention_check_interval_ms,
        ..StreamOptions::default()
    };
    let dir = dir.to_path_buf();
    let stream = tokio::task::spawn_blocking(move || EmbeddedStream::open(&dir, opts))
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    let existing = stream.list_topics().await?;
    for topic in BUILTIN_TOPICS {
        if !existing.iter().any(|t| t == topic) {
            stream.create_topic(topic, topic_config(settings)).await?;
            tracing::info!(topic, "created topic");
        }
    }
    Ok(stream)
}

/// The stream's counters and consumer lag as Prometheus metrics.
pub(crate) struct StreamMetricsSource(pub(crate) Arc<EmbeddedStream>);

impl MetricsSource for StreamMetricsSource {
    fn collect(&self, out: &mut MetricsWriter) {
        let m = self.0.metrics();
        let counters: [(&str, &str, u64); 7] = [
            (
                "bongsu_stream_bytes_in_total",
                "Bytes of encoded batches appended to the stream.",
                m.bytes_in,
            ),
            (
                "bongsu_stream_bytes_out_total",
                "Bytes of records (keys and values) returned by fetches.",
                m.bytes_out,
            ),
            (
                "bongsu_stream_records_appended_total",
                "Records appended to the stream.",
                m.records_appended,
            ),
            (
                "bongsu_stream_batches_appended_total",
                "Batches appended to the stream.",
                m.batches_appended,
            ),
            (
                "bongsu_stream_fsyncs_total",
                "fsync calls on segment files.",
                m.fsyncs,
            ),
            (
                "bongsu_stream_fetches_total",
                "Fetch calls served by the stream.",
                m.fetches,
            ),
            (
                "bongsu_stream_segments_deleted_total",
                "Segments deleted by retention.",
                m.segments_deleted,
            ),
        ];
        for (name, help, value) in counters {
            out.family(name, help, MetricKind::Counter);
            out.sample(name, &[], value as f64);
        }
        let lags = self.0.group_lags();
        out.family(
            "bongsu_stream_consumer_lag_records",
            "Records between a consumer group's committed offset and the end of the partition.",
            MetricKind::Gauge,
        );
        for (group, lag) in &lags {
            let partition = lag.tp.partition.to_string();
            out.sample(
                "bongsu_stream_consumer_lag_records",
                &[
                    ("group", group),
                    ("topic", &lag.tp.topic),
                    ("partition", &partition),
                ],
                lag.lag as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_map_to_kafka_topic_config() {
        let mut s = StreamSettings {
            default_partitions: 3,
            flush_messages: 1000,
            compression: Compression::Lz4,
            ..StreamSettings::default()
        };
        let c = topic_config(&s);
        assert_eq!(c.partitions, 3);
        assert_eq!(c.flush_messages, 1000);
        assert_eq!(
            c.flush_ms,
            i64::MAX,
            "flush_ms = 0 must not fsync every append"
        );
        assert_eq!(c.compression_type, bongsu_stream::Compression::Lz4);
        assert_eq!(c.max_message_bytes, s.max_message_bytes);
        s.flush_ms = 250;
        assert_eq!(topic_config(&s).flush_ms, 250);
    }
}
