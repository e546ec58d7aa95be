//! Snapshots: a copy of blocks and head that opens as a store and holds exactly the data.

use bongsu_model::{Labels, Sample};
use bongsu_tsdb::{Options, Tsdb};

const HOUR: i64 = 3_600_000;

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
fn snapshot_holds_blocks_and_head_and_opens_as_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    // 5 h of 3 series at 15 s: the cut persists the first 4 h, the rest stays in the head
    for i in 0..(5 * HOUR / 15_000) {
        let t = i * 15_000;
        for (k, inst) in ["a", "b", "c"].into_iter().enumerate() {
            let v = (i * (k as i64 + 1)) as f64 / 100.0;
            db.append(&l("m", inst), &[Sample::new(t, v)]).unwrap();
        }
    }
    db.cut().unwrap();
    let before = db.disk_usage();
    assert!(before.raw_blocks >= 2, "{before:?}");
    assert!(db.head_series() == 3);
    let r = db.snapshot().unwrap();
    assert_eq!(r.samples, 3 * (5 * HOUR / 15_000) as u64);
    assert_eq!(r.head_series, 3);
    assert_eq!(r.head_samples, r.samples - before.raw_samples);
    assert_eq!(r.blocks, before.raw_blocks + before.rollup_blocks + 1);
    assert!(r.raw_index_bytes > 0 && r.raw_data_bytes > 0 && r.raw_meta_bytes > 0);
    assert_eq!(r.dir, dir.path().join("snapshots").join(&r.name));
    // the live store is unchanged and still serves everything
    assert_eq!(db.disk_usage(), before);
    let want = all(&db);
    // the snapshot is a store of its own with the same samples, head included
    let copy = Tsdb::open(&r.dir, Options::default()).unwrap();
    assert_eq!(all(&copy), want);
    assert_eq!(copy.disk_usage().raw_samples, r.samples);
    // a second snapshot gets a new name; the store does not see snapshots as blocks
    let r2 = db.snapshot().unwrap();
    assert_ne!(r2.name, r.name);
    drop(db);
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.disk_usage(), before);
}

#[test]
fn snapshot_of_an_empty_store_is_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path(), Options::default()).unwrap();
    let r = db.snapshot().unwrap();
    assert_eq!((r.blocks, r.samples, r.raw_bytes()), (0, 0, 0));
    let copy = Tsdb::open(&r.dir, Options::default()).unwrap();
    assert!(all(&copy).is_empty());
}
