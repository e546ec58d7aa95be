//! A measurement over an existing store: loads every sample of the store at the given path
//! (e.g. a server's `<data_dir>/tsdb` after a bench run) into a fresh head, then prints the
//! head's memory per series and what a snapshot of it takes on disk, index and samples apart.
//!
//!     cargo run --release -p bongsu-tsdb --example measure_store -- <data_dir>/tsdb

use bongsu_tsdb::{Options, Tsdb};

fn main() {
    let Some(src) = std::env::args().nth(1) else {
        eprintln!("usage: measure_store <tsdb dir>   (e.g. a server's <data_dir>/tsdb)");
        std::process::exit(2);
    };
    let src = Tsdb::open(&src, Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_series: usize::MAX,
        max_series_per_metric: usize::MAX,
        ..Options::default()
    };
    let db = Tsdb::open(dir.path(), opts).unwrap();
    let (mut n, mut xor120) = (0u64, 0usize);
    for s in src.select(&[], i64::MIN, i64::MAX).unwrap() {
        n += s.samples.len() as u64;
        db.append(&s.labels, &s.samples).unwrap();
        // what the same samples take as XOR chunks of 120 (the head before packed chunks)
        for c in s.samples.chunks(120) {
            let mut x = bongsu_tsdb::XorChunk::new();
            for smp in c {
                assert!(x.append(smp.timestamp_ms, smp.value));
            }
            xor120 += x.bytes().len();
        }
    }
    let m = db.head_memory();
    println!(
        "head: {} series, {n} samples, {:.0} B/series accounted (chunks {:.0}, series {:.0}, postings {:.0}, symbols {:.0})",
        m.series,
        m.per_series(),
        m.chunk_bytes as f64 / m.series as f64,
        m.series_bytes as f64 / m.series as f64,
        m.index_bytes as f64 / m.series as f64,
        m.symbol_bytes as f64 / m.series as f64,
    );
    println!(
        "the same samples as XOR chunks of 120: {:.0} B/series",
        xor120 as f64 / m.series as f64
    );
    let r = db.snapshot().unwrap();
    let per = |b: u64| b as f64 / r.samples.max(1) as f64;
    println!(
        "snapshot: {} samples, {:.3} B/sample = index {:.3} + data {:.3} + meta {:.5}",
        r.samples,
        per(r.raw_bytes()),
        per(r.raw_index_bytes),
        per(r.raw_data_bytes),
        per(r.raw_meta_bytes),
    );
}
