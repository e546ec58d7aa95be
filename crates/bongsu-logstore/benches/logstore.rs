//! Criterion benches: ingest lines/s, scan GB/s where no filter helps, rare-token search.

use std::hint::black_box;

use bongsu_logstore::{Config, Direction, LogStore};
use bongsu_model::{Labels, LogEntry};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const T0: i64 = 1_700_000_000_000_000_000;

/// A realistic mixed line: access logs, logfmt, JSON and plain text with ids and IPs.
fn line(i: u64) -> String {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let ip = format!(
        "10.{}.{}.{}",
        (h >> 8) & 0xff,
        (h >> 16) & 0xff,
        (h >> 24) & 0xff
    );
    match i % 4 {
        0 => format!(
            "{ip} - - [14/Nov/2023:22:{:02}:{:02} +0000] \"GET /api/v1/items/{} HTTP/1.1\" {} {}",
            (i / 60) % 60,
            i % 60,
            h % 5000,
            [200, 200, 200, 404, 500][(h % 5) as usize],
            h % 20000
        ),
        1 => format!(
            "ts=2023-11-14T22:13:{:02}Z level={} msg=\"request handled\" req_id=req-{:016x} duration={}ms user=u{}",
            i % 60,
            ["info", "info", "warn", "error"][(h % 4) as usize],
            h,
            h % 900,
            h % 1000
        ),
        2 => format!(
            "{{\"level\":\"info\",\"trace\":\"{:016x}\",\"path\":\"/orders/{}\",\"status\":{},\"latency_ms\":{}}}",
            h,
            h % 10000,
            [200, 201, 429, 503][(h % 4) as usize],
            h % 3000
        ),
        _ => format!("worker {} processed batch {} of tenant t{} in {}ms from {ip}", h % 8, i, h % 50, h % 700),
    }
}

fn lines(n: u64) -> Vec<LogEntry> {
    (0..n)
        .map(|i| LogEntry::new(T0 + i as i64 * 1000, line(i)))
        .collect()
}

fn build(dir: &std::path::Path, entries: &[LogEntry]) -> LogStore {
    let cfg = Config {
        compaction: false,
        ..Config::default()
    };
    let mut st = LogStore::open(dir, cfg).unwrap();
    let l = Labels::from_pairs([("app", "bench")]).unwrap();
    for (i, c) in entries.chunks(1000).enumerate() {
        st.append(0, i as u64, &l, c).unwrap();
    }
    st.flush().unwrap();
    st
}

fn bench(c: &mut Criterion) {
    let entries = lines(200_000);
    let raw: u64 = entries.iter().map(|e| e.line.len() as u64 + 1).sum();

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.sample_size(10);
    g.bench_function("append_and_flush_200k_lines", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().unwrap();
            black_box(build(dir.path(), &entries));
        })
    });
    g.finish();

    let dir = tempfile::tempdir().unwrap();
    let st = build(dir.path(), &entries);
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(raw));
    g.sample_size(10);
    g.bench_function("non_matching_regex", |b| {
        b.iter(|| {
            let r = st
                .query_range(
                    r#"{app="bench"} |~ "zzq[0-9]+x""#,
                    0,
                    i64::MAX,
                    1,
                    100,
                    Direction::Forward,
                )
                .unwrap();
            black_box(r)
        })
    });
    g.bench_function("non_matching_literal", |b| {
        b.iter(|| {
            let r = st
                .query_range(
                    r#"{app="bench"} |= "zzq""#,
                    0,
                    i64::MAX,
                    1,
                    100,
                    Direction::Forward,
                )
                .unwrap();
            black_box(r)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("rare_token");
    g.throughput(Throughput::Bytes(raw));
    g.bench_function("word_bounded_regex", |b| {
        b.iter(|| {
            let r = st
                .query_range(
                    r#"{app="bench"} |~ "\\breq-00000000deadbeef\\b""#,
                    0,
                    i64::MAX,
                    1,
                    100,
                    Direction::Forward,
                )
                .unwrap();
            black_box(r)
        })
    });
    // A bare substring: the token filter cannot use it, the substring (gram) filter can.
    g.bench_function("substring_literal", |b| {
        b.iter(|| {
            let r = st
                .query_range(
                    r#"{app="bench"} |= "req-00000000deadbeef""#,
                    0,
                    i64::MAX,
                    1,
                    100,
                    Direction::Forward,
                )
                .unwrap();
            black_box(r)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("compaction");
    g.throughput(Throughput::Bytes(raw));
    g.sample_size(10);
    g.bench_function("compact_200k_lines", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let st = build(dir.path(), &entries);
                (dir, st)
            },
            |(dir, mut st)| {
                while st.compact().unwrap() {}
                black_box((dir, st))
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
