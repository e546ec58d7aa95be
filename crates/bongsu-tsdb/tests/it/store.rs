//! Recovery, corruption, rollups, retention, limits and concurrency through the public API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bongsu_model::{Labels, Sample};
use bongsu_tsdb::{increase, raw_increase, Matcher, Options, Resolution, Tsdb};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn l(name: &str, inst: &str) -> Labels {
    Labels::from_pairs([("__name__", name), ("instance", inst)]).unwrap()
}

fn all(db: &Tsdb) -> Vec<(Labels, Vec<Sample>)> {
    db.select(&[], i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|s| (s.labels, s.samples))
        .collect()
}

#[test]
fn recovery_restores_applied_offsets_and_data_up_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        ooo_window_ms: 0,
        ..Options::default()
    };
    let db = Tsdb::open(dir.path(), opts.clone()).unwrap();
    // partition 0 carries samples for 5 hours, one batch per 15 minutes
    for i in 0..20i64 {
        let t = i * 15 * 60_000;
        db.append(&l("up", "a"), &[Sample::new(t, i as f64)])
            .unwrap();
        db.mark_applied(&[(0, 100 + i as u64), (3, 7)]);
    }
    assert!(
        db.applied_offsets().is_empty(),
        "nothing is durable before a cut"
    );
    // cut: full 2 h blocks below align_down(4h45m, 2h) = 4h
    db.cut().unwrap();
    // batches 0..=15 (t < 4h) are durable; the one holding t = 4h is not
    assert_eq!(db.applied_offsets(), vec![(0, 115), (3, 7)]);
    drop(db); // crash: head lost

    let db = Tsdb::open(dir.path(), opts).unwrap();
    assert_eq!(db.applied_offsets(), vec![(0, 115), (3, 7)]);
    let got = all(&db);
    assert_eq!(got.len(), 1);
    let ts: Vec<i64> = got[0].1.iter().map(|s| s.timestamp_ms).collect();
    assert_eq!(ts, (0..16).map(|i| i * 15 * 60_000).collect::<Vec<_>>());
    // replay from offset 115 is idempotent with what is already stored
    for i in 15..20i64 {
        let o = db
            .append(&l("up", "a"), &[Sample::new(i * 15 * 60_000, i as f64)])
            .unwrap();
        assert_eq!(o.out_of_window, 0);
        db.mark_applied(&[(0, 100 + i as u64)]);
    }
    db.flush().unwrap();
    assert_eq!(db.applied_offsets(), vec![(0, 119), (3, 7)]);
    let got = all(&db);
    assert_eq!(got[0].1.len(), 20);
    assert!(got[0]
        .1
        .iter()
        .enumerate()
        .all(|(i, s)| s.value == i as f64));
}

#[test]
fn flipped_byte_in_a_block_is_detected_and_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    for i in 0..100 {
        db.append(&l("m", "a"), &[Sample::new(i * 1000, i as f64)])
            .unwrap();
    }
    db.flush().unwrap();
    drop(db);
    let block = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    // data: detected when read
    let data = block.join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let k = bytes.len() - 10;
    bytes[k] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    let err = db.select(&[], 0, i64::MAX).unwrap_err().to_string();
    assert!(err.contains(&data.display().to_string()), "{err}");
    assert!(err.contains("checksum"), "{err}");
    drop(db);
    bytes[k] ^= 0x01;
    std::fs::write(&data, &bytes).unwrap();
    // index: detected at open
    let index = block.join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[14] ^= 0x20;
    std::fs::write(&index, &bytes).unwrap();
    let err = Tsdb::open(dir.path(), Options::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&index.display().to_string()), "{err}");
}

/// A counter over four days with resets, scraped every 15 s.
fn counter_samples() -> Vec<Sample> {
    let mut v = 0.0;
    (0..4 * DAY / 15_000)
        .map(|i| {
            v = if i % 5_003 == 4_000 {
                3.0
            } else {
                v + (i % 7) as f64
            };
            Sample::new(i * 15_000, v)
        })
        .collect()
}

#[test]
fn rollup_increase_equals_raw_increase_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    let samples = counter_samples();
    for chunk in samples.chunks(5_000) {
        db.append(&l("node_cpu_seconds_total", "a"), chunk).unwrap();
        db.compact_now().unwrap();
    }
    let usage = db.disk_usage();
    assert!(usage.rollup_blocks >= 2, "{usage:?}");
    let raw: Vec<(i64, f64)> = db.select(&[], 0, i64::MAX).unwrap()[0]
        .samples
        .iter()
        .map(|s| (s.timestamp_ms, s.value))
        .collect();
    assert_eq!(raw.len(), samples.len());
    for res in Resolution::ALL {
        let pts = &db.select_rollup(&[], 0, 4 * DAY, res).unwrap()[0].points;
        assert_eq!(pts.len() as i64, 4 * DAY / res.millis());
        assert_eq!(
            pts.iter().map(|p| p.count).sum::<u64>(),
            samples.len() as u64
        );
        assert_eq!(increase(pts), raw_increase(&raw));
        // a sub-range: windows from 30 h to 70 h
        let (a, b) = (30 * HOUR, 70 * HOUR);
        let pts = &db.select_rollup(&[], a, b - 1, res).unwrap()[0].points;
        let sub: Vec<_> = raw
            .iter()
            .copied()
            .filter(|s| s.0 >= a && s.0 < b)
            .collect();
        assert_eq!(increase(pts), raw_increase(&sub));
    }
}

#[test]
fn retention_deletes_whole_blocks_and_rollups_outlive_raw() {
    let dir = tempfile::tempdir().unwrap();
    let bad = Options {
        retention_raw_ms: 2 * DAY,
        ..Options::default()
    };
    let err = Tsdb::open(dir.path(), bad).unwrap_err().to_string();
    assert!(err.contains("retention_raw_ms"), "{err}");
    let opts = Options {
        compaction_ranges_ms: vec![DAY],
        retention_raw_ms: 2 * DAY,
        retention_5m_ms: 5 * DAY / 2,
        ..Options::default()
    };
    let db = Tsdb::open(dir.path(), opts).unwrap();
    let samples = counter_samples();
    for chunk in samples.chunks(5_000) {
        db.append(&l("c", "a"), chunk).unwrap();
        db.compact_now().unwrap();
    }
    let newest = samples.last().unwrap().timestamp_ms;
    let raw = &db.select(&[], 0, i64::MAX).unwrap()[0].samples;
    // whole blocks only: the first kept sample starts a block window
    let first = raw[0].timestamp_ms;
    assert!(
        first >= newest - 2 * DAY - DAY && first % HOUR == 0,
        "{first}"
    );
    // hourly rollups still reach back to the start
    let pts = &db
        .select_rollup(&[], 0, newest, Resolution::OneHour)
        .unwrap()[0]
        .points;
    assert_eq!(pts[0].t, 0);
    let five = &db
        .select_rollup(&[], 0, newest, Resolution::FiveMinutes)
        .unwrap()[0]
        .points;
    assert!(five[0].t > 0);
}

#[test]
fn queries_run_concurrently_with_appends_and_background_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Tsdb::open(dir.path(), Options::default()).unwrap());
    let compactor = db.start_compactor(Duration::from_millis(5));
    let reader = {
        let db = db.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let s = db
                    .select(&[Matcher::equal("instance", "a")], 0, i64::MAX)
                    .unwrap();
                let n = s.first().map_or(0, |s| s.samples.len());
                // samples only ever grow and stay sorted
                if let Some(s) = s.first() {
                    assert!(s
                        .samples
                        .windows(2)
                        .all(|w| w[0].timestamp_ms < w[1].timestamp_ms));
                }
                if n == 20_000 || Instant::now() > deadline {
                    return n;
                }
            }
        })
    };
    for i in 0..20_000i64 {
        db.append(&l("m", "a"), &[Sample::new(i * 15_000, 1.0)])
            .unwrap();
    }
    assert_eq!(reader.join().unwrap(), 20_000);
    drop(compactor);
    assert!(db.disk_usage().raw_blocks >= 1);
}

#[test]
fn stats_and_label_queries() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    for (n, i) in [("a", "1"), ("a", "2"), ("b", "1")] {
        db.append(&l(n, i), &[Sample::new(10, 1.0)]).unwrap();
    }
    let s = db.stats(10);
    assert_eq!(s.num_series, 3);
    assert_eq!(s.series_count_by_metric_name[0], ("a".to_string(), 2));
    assert_eq!(
        s.label_value_count_by_label_name[0],
        ("__name__".to_string(), 2)
    );
    assert_eq!(
        db.label_values("instance", &[Matcher::equal("__name__", "b")], 0, 100)
            .unwrap(),
        ["1"]
    );
    assert_eq!(
        db.label_names(&[], 0, 100).unwrap(),
        ["__name__", "instance"]
    );
    assert!(db.series(&[], 11, 100).unwrap().is_empty());
    let m = db.head_memory();
    assert_eq!(m.series, 3);
    assert!(m.chunk_bytes > 0 && m.total() > m.chunk_bytes);
}

#[test]
fn series_and_label_queries_read_indexes_of_overlapping_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    for (n, i) in [("a", "1"), ("a", "2"), ("b", "1")] {
        db.append(&l(n, i), &[Sample::new(10, 1.0), Sample::new(20, 2.0)])
            .unwrap();
    }
    db.cut_before(2 * HOUR).unwrap();
    db.append(&l("c", "9"), &[Sample::new(5 * HOUR, 1.0)])
        .unwrap();

    // The block's series, from its index and the series' time bounds.
    let old = db.series(&[], 0, 100).unwrap();
    assert_eq!(old, [l("a", "1"), l("a", "2"), l("b", "1")]);
    assert!(db.series(&[], 21, HOUR).unwrap().is_empty());
    // The head's series.
    assert_eq!(db.series(&[], 5 * HOUR, 5 * HOUR).unwrap(), [l("c", "9")]);
    assert_eq!(
        db.series(&[Matcher::equal("__name__", "a")], 0, 10 * HOUR)
            .unwrap()
            .len(),
        2
    );
    // Names and values without matchers come from the overlapping indexes only.
    assert_eq!(
        db.label_values("instance", &[], 0, 100).unwrap(),
        ["1", "2"]
    );
    assert_eq!(
        db.label_values("__name__", &[], 0, 10 * HOUR).unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(
        db.label_values("instance", &[], 4 * HOUR, 6 * HOUR)
            .unwrap(),
        ["9"]
    );
    assert!(db
        .label_values("nope", &[], 0, 10 * HOUR)
        .unwrap()
        .is_empty());
    assert_eq!(
        db.label_names(&[], 0, 10 * HOUR).unwrap(),
        ["__name__", "instance"]
    );
    assert!(db.label_names(&[], 3 * HOUR, 4 * HOUR).unwrap().is_empty());
    // With matchers: the selected series' labels.
    assert_eq!(
        db.label_values("instance", &[Matcher::equal("__name__", "b")], 0, 10 * HOUR)
            .unwrap(),
        ["1"]
    );
}
