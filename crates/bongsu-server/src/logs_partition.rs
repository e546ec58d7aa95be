//! Spreading log streams over the `logs` topic's partitions by stream.
//!
//! The logs consumer applies each partition on its own task, and the log store refuses an entry
//! more than `logs.out_of_order_window` behind its stream's newest one. If one stream's entries
//! went to several partitions (round robin), one partition's task could run ahead of another's
//! (a backfill, a replay after a crash) and push older entries of the same stream out of the
//! window. So every stream goes to one partition, chosen by the same FNV-1a hash of its label
//! set as a metrics series (`metrics_partition::partition_of`): a sender that sends a stream in
//! order has it applied in order. A Loki push or a syslog batch whose streams fall into several
//! partitions becomes one record per partition, appended concurrently; it is acknowledged when
//! all of them are durable.

use std::sync::OnceLock;

use bongsu_model::{LogStream, LogsRecord};
use bongsu_stream::Stream;

use crate::ingest::LOGS_TOPIC;
use crate::metrics_partition::{append_parts_to, partition_of, topic_partitions};

/// Splits `streams` into one record per partition that has streams, in partition order; each
/// part also carries the positions (in `streams`) of its streams.
pub(crate) fn split_by_partition(
    streams: Vec<LogStream>,
    partitions: u32,
) -> Vec<(u32, LogsRecord, Vec<usize>)> {
    if partitions <= 1 {
        let index = (0..streams.len()).collect();
        return vec![(0, LogsRecord { streams }, index)];
    }
    let mut parts: Vec<(LogsRecord, Vec<usize>)> = (0..partitions)
        .map(|_| (LogsRecord::default(), Vec::new()))
        .collect();
    for (i, s) in streams.into_iter().enumerate() {
        let p = partition_of(&s.labels, partitions) as usize;
        parts[p].0.streams.push(s);
        parts[p].1.push(i);
    }
    parts
        .into_iter()
        .enumerate()
        .filter(|(_, (r, _))| !r.streams.is_empty())
        .map(|(p, (r, i))| (p as u32, r, i))
        .collect()
}

/// [`split_by_partition`], each part encoded (`docs/formats/records.md`). A record without
/// streams stays one empty record in partition 0.
pub(crate) fn encode_by_partition(record: LogsRecord, partitions: u32) -> Vec<(u32, Vec<u8>)> {
    if record.streams.is_empty() {
        return vec![(0, record.encode())];
    }
    split_by_partition(record.streams, partitions)
        .into_iter()
        .map(|(p, r, _)| (p, r.encode()))
        .collect()
}

/// The number of partitions of the `logs` topic, described once and kept in `cache` (it does
/// not change while the server runs; describing it takes every partition's log lock).
pub(crate) async fn logs_partitions(
    stream: &dyn Stream,
    cache: &OnceLock<u32>,
) -> bongsu_stream::Result<u32> {
    topic_partitions(stream, LOGS_TOPIC, cache).await
}

/// Appends the parts (from [`encode_by_partition`]) to their partitions concurrently and waits
/// until every one is acknowledged; the first error, if any, is returned.
pub(crate) async fn append_parts(
    stream: &dyn Stream,
    parts: Vec<(u32, Vec<u8>)>,
    now_ms: i64,
) -> bongsu_stream::Result<()> {
    append_parts_to(stream, LOGS_TOPIC, parts, now_ms).await
}

#[cfg(test)]
mod tests {
    use bongsu_model::{Labels, LogEntry};

    use super::*;

    fn stream(i: usize) -> LogStream {
        LogStream {
            labels: Labels::from_pairs([("host", format!("web-{i}")), ("app", "api".into())])
                .unwrap(),
            entries: vec![LogEntry::new(i as i64, format!("line {i}"))],
        }
    }

    #[test]
    fn every_stream_lands_in_its_one_partition_and_nothing_is_lost() {
        let record = LogsRecord {
            streams: (0..100).map(stream).collect(),
        };
        let parts = encode_by_partition(record.clone(), 4);
        assert!(parts.len() > 1, "100 streams should spread over partitions");
        let mut seen: Vec<LogStream> = Vec::new();
        for (p, bytes) in &parts {
            let decoded = LogsRecord::decode(bytes).unwrap();
            assert!(!decoded.streams.is_empty());
            for s in &decoded.streams {
                assert_eq!(partition_of(&s.labels, 4), *p);
            }
            seen.extend(decoded.streams);
        }
        seen.sort_by_key(|s| s.entries[0].timestamp_ns);
        assert_eq!(seen, record.streams);
        // The positions name each part's streams in the original record.
        for (p, part, index) in split_by_partition(record.streams.clone(), 4) {
            assert_eq!(part.streams.len(), index.len());
            for (s, i) in part.streams.iter().zip(index) {
                assert_eq!(s, &record.streams[i]);
                assert_eq!(partition_of(&s.labels, 4), p);
            }
        }
        // One partition: one record, unchanged.
        let one = encode_by_partition(record.clone(), 1);
        assert_eq!(one.len(), 1);
        assert_eq!(LogsRecord::decode(&one[0].1).unwrap(), record);
        // No streams: one empty record.
        let empty = encode_by_partition(LogsRecord::default(), 4);
        assert_eq!(empty.len(), 1);
        assert_eq!(
            LogsRecord::decode(&empty[0].1).unwrap(),
            LogsRecord::default()
        );
    }
}
