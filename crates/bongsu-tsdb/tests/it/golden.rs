//! Reads a checked-in store written by format version 1, so that a format change that
//! breaks existing data fails here. Regenerate (only for a deliberate new version) with
//! `BONGSU_REGEN_GOLDEN=1 cargo test -p bongsu-tsdb --test it golden`.

use std::path::{Path, PathBuf};

use bongsu_model::{Labels, Sample, STALE_NAN_BITS};
use bongsu_tsdb::{Matcher, Options, Resolution, Tsdb};

const HOUR: i64 = 3_600_000;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/store-v1")
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "golden_total"), ("instance", &format!("h{i}"))]).unwrap()
}

fn value(i: usize, k: i64) -> f64 {
    match (i, k % 97) {
        (2, 5) => f64::from_bits(STALE_NAN_BITS),
        (2, 6) => f64::INFINITY,
        _ => (k * (i as i64 + 1)) as f64,
    }
}

const SAMPLES: i64 = 30 * HOUR / 60_000;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn golden_store_v1_is_readable() {
    if std::env::var_os("BONGSU_REGEN_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(golden_dir());
        let db = Tsdb::open(golden_dir(), Options::default()).unwrap();
        for i in 0..3 {
            let s: Vec<Sample> = (0..SAMPLES)
                .map(|k| Sample::new(k * 60_000, value(i, k)))
                .collect();
            db.append(&labels(i), &s).unwrap();
        }
        db.mark_applied(&[(0, 42), (1, 7)]);
        db.flush().unwrap();
        db.compact_now().unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&golden_dir(), tmp.path());
    let db = Tsdb::open(tmp.path(), Options::default()).unwrap();
    assert_eq!(db.applied_offsets(), vec![(0, 42), (1, 7)]);
    let usage = db.disk_usage();
    assert!(usage.rollup_blocks >= 2, "{usage:?}");
    let got = db
        .select(&[Matcher::equal("__name__", "golden_total")], 0, i64::MAX)
        .unwrap();
    assert_eq!(got.len(), 3);
    for (i, s) in got.iter().enumerate() {
        assert_eq!(s.labels, labels(i));
        let want: Vec<Sample> = (0..SAMPLES)
            .map(|k| Sample::new(k * 60_000, value(i, k)))
            .collect();
        assert_eq!(s.samples, want);
    }
    let r = db
        .select_rollup(&[], 0, 24 * HOUR - 1, Resolution::OneHour)
        .unwrap();
    assert_eq!(r[0].points.len(), 24);
    assert_eq!(r[0].points[1].count, 60);
}
