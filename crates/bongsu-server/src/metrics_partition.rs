//! Spreading metrics over the `metrics` topic's partitions by series.
//!
//! The tsdb consumer applies each partition on its own task, and the store drops a sample that
//! is more than `tsdb.ooo_window` behind its series' newest one. If the records of one series
//! went to several partitions (round robin), one partition's task could run ahead of another's
//! (a backfill, a replay after a crash) and push older samples of the same series out of the
//! window. So every series goes to one partition, chosen by a hash of its label set: a sender
//! that sends a series in order has it applied in order. A request whose series fall into
//! several partitions becomes one record per partition, appended concurrently; the request is
//! acknowledged when all of them are durable. If one append fails the sender retries the whole
//! request, and the samples that were stored are counted as duplicates, not stored twice.

use std::sync::OnceLock;

use bongsu_ingest::WriteRequestView;
use bongsu_model::{Labels, MetricsRecord, MetricsRecordWriter};
use bongsu_stream::{Record, Stream};

use crate::ingest::METRICS_TOPIC;

/// FNV-1a over name, separator, value, separator of each label: stable across versions and
/// processes. Computed once per series of a request; it picks the partition
/// ([`partition_of_hash`]) and keys the receiver's cache of series already checked.
pub(crate) fn label_hash<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for (n, v) in pairs {
        eat(n.as_bytes());
        eat(v.as_bytes());
    }
    h
}

/// The partition of a series whose [`label_hash`] is `hash`.
pub(crate) fn partition_of_hash(hash: u64, partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    (hash % u64::from(partitions)) as u32
}

/// The partition of the `metrics` topic a series belongs to.
pub(crate) fn partition_of(labels: &Labels, partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    partition_of_hash(
        label_hash(labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))),
        partitions,
    )
}

/// Like [`encode_by_partition`], straight from a decoded request view: `hashes[i]` is the
/// [`label_hash`] of the view's `i`-th series. The bytes equal `encode_by_partition` of the
/// same request.
pub(crate) fn encode_view_by_partition(
    view: &WriteRequestView<'_>,
    hashes: &[u64],
    partitions: u32,
) -> Vec<(u32, Vec<u8>)> {
    let partitions = partitions.max(1);
    // Each writer sized for its share of the request, with some slack for an uneven split,
    // so that none grows (and copies) while the series are added.
    let share = |n: usize| n / partitions as usize + n / (4 * partitions as usize) + 16;
    let (series, labels, samples) = (
        share(view.series_count()),
        share(view.label_count()),
        share(view.sample_count()),
    );
    let new_writer = || MetricsRecordWriter::with_capacity(series, labels, samples);
    let mut writers: Vec<Option<MetricsRecordWriter<'_>>> = (0..partitions).map(|_| None).collect();
    for (s, &h) in view.series().zip(hashes) {
        let p = partition_of_hash(h, partitions) as usize;
        writers[p]
            .get_or_insert_with(new_writer)
            .push_series(s.labels, s.samples);
    }
    // Metadata rides with the first record; with no series at all, in partition 0 (and with
    // one partition, the record is written even when empty, as encode_by_partition does).
    let first = writers.iter().position(Option::is_some);
    let meta_at = match first {
        Some(p) => Some(p),
        None if partitions == 1 || !view.metadata().is_empty() => Some(0),
        None => None,
    };
    if let Some(p) = meta_at {
        let w = writers[p].get_or_insert_with(MetricsRecordWriter::new);
        for m in view.metadata() {
            w.push_metadata(*m);
        }
    }
    writers
        .into_iter()
        .enumerate()
        .filter_map(|(p, w)| w.map(|w| (p as u32, w.finish())))
        .collect()
}

/// Splits `record` into one encoded record per partition that has series, in partition order.
/// Metadata rides with the first of them.
pub(crate) fn encode_by_partition(record: MetricsRecord, partitions: u32) -> Vec<(u32, Vec<u8>)> {
    if partitions <= 1 {
        return vec![(0, record.encode())];
    }
    let mut parts: Vec<MetricsRecord> = (0..partitions).map(|_| MetricsRecord::default()).collect();
    for s in record.series {
        let p = partition_of(&s.labels, partitions);
        parts[p as usize].series.push(s);
    }
    let mut out: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut metadata = Some(record.metadata);
    for (p, mut part) in parts.into_iter().enumerate() {
        if part.series.is_empty() {
            continue;
        }
        if let Some(m) = metadata.take() {
            part.metadata = m;
        }
        out.push((p as u32, part.encode()));
    }
    if let Some(m) = metadata {
        // No series at all: keep whatever metadata came, in partition 0.
        if !m.is_empty() {
            let part = MetricsRecord {
                series: Vec::new(),
                metadata: m,
            };
            out.push((0, part.encode()));
        }
    }
    out
}

/// The number of partitions of the `metrics` topic, described once and kept in `cache`: a
/// topic's partition count does not change while the server runs, and describing it takes every
/// partition's log lock, which appends need.
pub(crate) async fn metrics_partitions(
    stream: &dyn Stream,
    cache: &OnceLock<u32>,
) -> bongsu_stream::Result<u32> {
    topic_partitions(stream, METRICS_TOPIC, cache).await
}

/// The number of partitions of `topic`, described once and kept in `cache`.
pub(crate) async fn topic_partitions(
    stream: &dyn Stream,
    topic: &str,
    cache: &OnceLock<u32>,
) -> bongsu_stream::Result<u32> {
    if let Some(n) = cache.get() {
        return Ok(*n);
    }
    let desc = stream.describe_topic(topic).await?;
    Ok(*cache.get_or_init(|| desc.partitions.len().max(1) as u32))
}

/// Appends the parts (from [`encode_by_partition`]) to their partitions concurrently and waits
/// until every one is acknowledged; the first error, if any, is returned.
pub(crate) async fn append_parts(
    stream: &dyn Stream,
    parts: Vec<(u32, Vec<u8>)>,
    now_ms: i64,
) -> bongsu_stream::Result<()> {
    append_parts_to(stream, METRICS_TOPIC, parts, now_ms).await
}

/// Appends `(partition, record value)` parts to `topic` concurrently and waits until every one
/// is acknowledged; the first error, if any, is returned.
pub(crate) async fn append_parts_to(
    stream: &dyn Stream,
    topic: &str,
    parts: Vec<(u32, Vec<u8>)>,
    now_ms: i64,
) -> bongsu_stream::Result<()> {
    let appends = parts.into_iter().map(|(p, value)| async move {
        stream
            .append(topic, Some(p), vec![Record::new(value, now_ms)])
            .await
    });
    for r in futures::future::join_all(appends).await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bongsu_model::{Label, MetricKind, MetricMetadata, Sample, Series};

    use super::*;

    fn series(name: &str, i: usize) -> Series {
        Series {
            labels: Labels::new(vec![
                Label::new("__name__", name),
                Label::new("instance", format!("host-{i}")),
            ])
            .unwrap(),
            samples: vec![Sample::new(i as i64, i as f64)],
        }
    }

    #[test]
    fn every_series_lands_in_its_one_partition_and_nothing_is_lost() {
        let record = MetricsRecord {
            series: (0..200).map(|i| series("up", i)).collect(),
            metadata: vec![MetricMetadata {
                family: "up".into(),
                kind: MetricKind::Gauge,
                help: "up".into(),
                unit: String::new(),
            }],
        };
        let parts = encode_by_partition(record.clone(), 4);
        assert!(parts.len() > 1, "200 series should spread over partitions");
        let mut seen = 0;
        let mut metadata = 0;
        for (p, bytes) in &parts {
            let decoded = MetricsRecord::decode(bytes).unwrap();
            metadata += decoded.metadata.len();
            for s in &decoded.series {
                assert_eq!(partition_of(&s.labels, 4), *p);
                // The same series always maps to the same partition.
                assert_eq!(partition_of(&s.labels.clone(), 4), *p);
            }
            seen += decoded.series.len();
        }
        assert_eq!(seen, 200);
        assert_eq!(metadata, 1);
        // One partition: one record, unchanged.
        let one = encode_by_partition(record.clone(), 1);
        assert_eq!(one.len(), 1);
        assert_eq!(MetricsRecord::decode(&one[0].1).unwrap(), record);
    }

    #[test]
    fn the_view_encoder_writes_the_same_bytes() {
        use bongsu_ingest::{decode_write_request_view, prompb, Limits};
        use prost::Message;
        let ts = |i: usize| prompb::TimeSeries {
            labels: vec![
                prompb::Label {
                    name: "instance".into(),
                    value: format!("host-{i}"),
                },
                prompb::Label {
                    name: "__name__".into(),
                    value: "up".into(),
                },
            ],
            samples: vec![prompb::Sample {
                value: i as f64,
                timestamp: i as i64,
            }],
            ..Default::default()
        };
        let md = prompb::MetricMetadata {
            r#type: 2,
            metric_family_name: "up".into(),
            help: "up".into(),
            unit: String::new(),
        };
        for (n, with_md) in [(0, false), (0, true), (1, true), (50, true), (50, false)] {
            let req = prompb::WriteRequest {
                timeseries: (0..n).map(ts).collect(),
                metadata: if with_md {
                    vec![md.clone()]
                } else {
                    Vec::new()
                },
            };
            let raw = req.encode_to_vec();
            let limits = Limits::default();
            let owned = bongsu_ingest::decode_write_request(&raw, &limits)
                .unwrap()
                .record;
            let view = decode_write_request_view(&raw, &limits).unwrap();
            let hashes: Vec<u64> = view
                .series()
                .map(|s| label_hash(s.labels.iter().copied()))
                .collect();
            for parts in [1, 4] {
                assert_eq!(
                    encode_view_by_partition(&view, &hashes, parts),
                    encode_by_partition(owned.clone(), parts),
                    "{n} series, metadata {with_md}, {parts} partitions"
                );
            }
        }
    }

    #[test]
    fn metadata_without_series_is_kept() {
        let record = MetricsRecord {
            series: Vec::new(),
            metadata: vec![MetricMetadata {
                family: "x".into(),
                kind: MetricKind::Counter,
                help: String::new(),
                unit: String::new(),
            }],
        };
        let parts = encode_by_partition(record, 3);
        assert_eq!(parts.len(), 1);
        assert_eq!(
            MetricsRecord::decode(&parts[0].1).unwrap().metadata.len(),
            1
        );
    }
}
