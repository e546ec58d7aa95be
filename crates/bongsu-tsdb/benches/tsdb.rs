//! Micro benchmarks: XOR chunk append/iterate, postings intersection, select over 100k series.

use bongsu_model::{Labels, Sample};
use bongsu_tsdb::{LabelIndex, MatchOp, Matcher, Options, Tsdb, XorChunk, XorIter};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn chunk(c: &mut Criterion) {
    let samples: Vec<(i64, f64)> = (0..120)
        .map(|i| {
            (
                1_700_000_000_000 + i * 15_000 + (i * 7919) % 5,
                1e6 + ((i * 31) % 97) as f64,
            )
        })
        .collect();
    let mut g = c.benchmark_group("xor_chunk");
    g.throughput(Throughput::Elements(samples.len() as u64));
    g.bench_function("append_120", |b| {
        b.iter(|| {
            let mut ch = XorChunk::new();
            for &(t, v) in &samples {
                ch.append(t, v);
            }
            black_box(ch.bytes().len())
        })
    });
    let mut ch = XorChunk::new();
    for &(t, v) in &samples {
        ch.append(t, v);
    }
    let bytes = ch.bytes().to_vec();
    g.bench_function("iterate_120", |b| {
        b.iter(|| XorIter::new(black_box(&bytes)).map(|s| s.1).sum::<f64>())
    });
    g.finish();
}

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", format!("metric_{}", i % 100)),
        ("instance", format!("host-{}:9100", i / 100 % 1000)),
        ("job", format!("job-{}", i % 10)),
        ("device", format!("dev{}", i % 7)),
    ])
    .unwrap()
}

fn postings(c: &mut Criterion) {
    let mut idx = LabelIndex::new();
    for i in 0..100_000 {
        idx.insert(&series_labels(i));
    }
    let two = [
        Matcher::equal("job", "job-3"),
        Matcher::equal("device", "dev2"),
    ];
    let with_re = [
        Matcher::equal("__name__", "metric_13"),
        Matcher::new(MatchOp::Regex, "instance", "host-1.*").unwrap(),
        Matcher::not_equal("device", "dev0"),
    ];
    let mut g = c.benchmark_group("postings_100k_series");
    g.bench_function("intersect_two_equal", |b| {
        b.iter(|| idx.count(black_box(&two)))
    });
    g.bench_function("equal_regex_not_equal", |b| {
        b.iter(|| idx.count(black_box(&with_re)))
    });
    g.finish();
}

fn select(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let db = Tsdb::open(dir.path(), Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let t0 = 1_700_000_000_000i64;
    for i in 0..100_000 {
        let s: Vec<Sample> = (0..8)
            .map(|k| Sample::new(t0 + k * 15_000, (i + k as usize) as f64))
            .collect();
        db.append(&series_labels(i), &s)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut g = c.benchmark_group("select_100k_series");
    g.sample_size(10);
    let one_metric = [Matcher::equal("__name__", "metric_42")];
    g.bench_function("head_1k_of_100k", |b| {
        b.iter(|| {
            db.select(black_box(&one_metric), t0, t0 + 120_000)
                .map(|v| v.len())
        })
    });
    db.flush().unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("block_1k_of_100k", |b| {
        b.iter(|| {
            db.select(black_box(&one_metric), t0, t0 + 120_000)
                .map(|v| v.len())
        })
    });
    g.bench_function("block_all_100k", |b| {
        b.iter(|| db.select(&[], t0, t0 + 120_000).map(|v| v.len()))
    });
    g.finish();
}

criterion_group!(benches, chunk, postings, select);
criterion_main!(benches);
