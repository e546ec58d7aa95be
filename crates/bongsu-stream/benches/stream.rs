//! Micro benchmarks: batch codec, append, fetch.

use std::sync::Arc;

use bongsu_stream::{
    decode_batch, encode_batch, Compression, EmbeddedStream, FetchOptions, Record, Stream,
    StreamOptions, TopicConfig,
};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn records(n: usize, size: usize) -> Vec<Record> {
    let line = b"ts=2026-11-22T00:00:00Z host=web-01 level=info msg=\"request served\" status=200 ";
    let v = Bytes::from(line.iter().cycle().take(size).copied().collect::<Vec<u8>>());
    (0..n).map(|i| Record::new(v.clone(), i as i64)).collect()
}

fn codec(c: &mut Criterion) {
    let recs = records(1000, 100);
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1000));
    for comp in [Compression::None, Compression::Lz4, Compression::Zstd] {
        g.bench_function(format!("encode_1000x100B_{}", comp.name()), |b| {
            let mut out = Vec::with_capacity(1 << 20);
            b.iter(|| {
                out.clear();
                encode_batch(0, &recs, comp, &mut out).unwrap();
            })
        });
        let mut buf = Vec::new();
        encode_batch(0, &recs, comp, &mut buf).unwrap();
        g.bench_function(format!("decode_1000x100B_{}", comp.name()), |b| {
            b.iter(|| decode_batch(&buf).unwrap())
        });
    }
    g.finish();
}

fn engine(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s: Arc<EmbeddedStream> =
        EmbeddedStream::open(dir.path(), StreamOptions::default()).unwrap();
    let cfg = TopicConfig {
        partitions: 1,
        compression_type: Compression::None,
        ..TopicConfig::default()
    };
    rt.block_on(s.create_topic("t", cfg)).unwrap();
    let mut g = c.benchmark_group("engine");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_durable_1000x100B", |b| {
        b.iter_batched(
            || records(1000, 100),
            |recs| rt.block_on(s.append("t", Some(0), recs)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("fetch_1000x100B", |b| {
        let opts = FetchOptions {
            max_partition_fetch_bytes: 100_000,
            ..FetchOptions::no_wait()
        };
        b.iter(|| {
            let f = rt.block_on(s.fetch("t", 0, 0, opts)).unwrap();
            assert!(!f.records.is_empty());
            f
        })
    });
    g.finish();
    rt.block_on(s.shutdown());
}

criterion_group!(benches, codec, engine);
criterion_main!(benches);
