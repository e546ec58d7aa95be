//! Checked-in records of each released format version: decoding them must keep working,
//! and encoding their contents must reproduce the same bytes.
//!
//! To regenerate after an intentional change of the *current* version's encoder (never of a
//! released one), run `BONGSU_REWRITE_GOLDEN=1 cargo test -p bongsu-model golden`.

use crate::{
    Label, Labels, LogEntry, LogStream, LogsRecord, MetricKind, MetricMetadata, MetricsRecord,
    Sample, Series,
};

fn metrics_v1() -> MetricsRecord {
    let l = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.iter().copied()).unwrap_or_default();
    MetricsRecord {
        series: vec![
            Series {
                labels: l(&[("__name__", "up"), ("instance", "a:9100"), ("job", "node")]),
                samples: vec![
                    Sample::new(1_700_000_000_000, 1.0),
                    Sample::stale(1_700_000_015_000),
                ],
            },
            Series {
                labels: l(&[
                    ("__name__", "node_load1"),
                    ("instance", "a:9100"),
                    ("job", "node"),
                ]),
                samples: vec![Sample::new(-5, f64::NEG_INFINITY)],
            },
        ],
        metadata: vec![MetricMetadata {
            family: "node_load1".into(),
            kind: MetricKind::Gauge,
            help: "1m load average.".into(),
            unit: String::new(),
        }],
    }
}

fn logs_v1() -> LogsRecord {
    LogsRecord {
        streams: vec![LogStream {
            labels: Labels::from_pairs([("app", "api"), ("source", "syslog")]).unwrap_or_default(),
            entries: vec![
                LogEntry::new(1_700_000_000_000_000_001, "GET /health 200"),
                LogEntry {
                    timestamp_ns: 1_700_000_000_000_000_002,
                    line: "héllo".into(),
                    structured_metadata: vec![
                        Label::new("trace_id", "abc"),
                        Label::new("procid", "42"),
                    ],
                },
            ],
        }],
    }
}

fn check(path: &str, golden: &[u8], encoded: &[u8]) {
    if std::env::var_os("BONGSU_REWRITE_GOLDEN").is_some() {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::write(&full, encoded).unwrap();
        return;
    }
    assert_eq!(
        golden, encoded,
        "{path}: encoding changed; a released format must not change"
    );
}

#[test]
fn golden_metrics_v1() {
    let golden = include_bytes!("testdata/metrics_v1.bin");
    let rec = metrics_v1();
    check("src/codec/testdata/metrics_v1.bin", golden, &rec.encode());
    assert_eq!(MetricsRecord::decode(golden).unwrap(), rec);
}

#[test]
fn golden_logs_v1() {
    let golden = include_bytes!("testdata/logs_v1.bin");
    let rec = logs_v1();
    check("src/codec/testdata/logs_v1.bin", golden, &rec.encode());
    assert_eq!(LogsRecord::decode(golden).unwrap(), rec);
}
