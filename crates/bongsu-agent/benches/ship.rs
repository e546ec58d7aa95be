//! The shipping path without the network: encoding a 512 KiB batch of log lines, decoding it as
//! the server does, and queueing it on disk.

use bongsu_agent::{decode_batch, Batch, BatchLimits, DiskQueue, QueueConfig};
use bongsu_model::{Labels, LogEntry, LogStream, LogsRecord};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn batch() -> Batch {
    let labels = match Labels::from_pairs([("app", "bench"), ("filename", "/var/log/app.log")]) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let entries = (0..5000)
        .map(|i| {
            LogEntry::new(
                1_700_000_000_000_000_000 + i,
                format!("2026-11-22T03:00:00.000Z INFO request served path=/api/v1/items/{i} status=200 dur_ms={}", i % 997),
            )
        })
        .collect();
    Batch {
        epoch: 1,
        seq: 1,
        created_ms: 0,
        heartbeat: None,
        inventory: None,
        metrics: None,
        logs: Some(LogsRecord {
            streams: vec![LogStream { labels, entries }],
        }),
    }
}

fn ship(c: &mut Criterion) {
    let b = batch();
    let raw: u64 = b
        .logs
        .as_ref()
        .map(|l| {
            l.streams[0]
                .entries
                .iter()
                .map(|e| e.line.len() as u64)
                .sum()
        })
        .unwrap_or(0);
    let mut g = c.benchmark_group("agent batch of 5000 lines");
    g.throughput(Throughput::Bytes(raw));
    g.bench_function("encode (zstd level 1)", |bench| {
        bench.iter(|| b.encode(1).map(|v| v.len()).unwrap_or(0))
    });
    let bytes = match b.encode(1) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    g.bench_function("decode and validate (server side)", |bench| {
        bench.iter(|| {
            decode_batch(&bytes, &BatchLimits::default())
                .map(|d| d.seq)
                .unwrap_or(0)
        })
    });
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let mut q = match DiskQueue::open(dir.path(), QueueConfig::default()) {
        Ok(q) => q,
        Err(e) => panic!("{e}"),
    };
    g.bench_function("queue push and ack", |bench| {
        bench.iter(|| {
            let payload = bytes.clone();
            let seq = q.push(move |_, _| Ok(payload), b"checkpoint").unwrap_or(0);
            q.ack(seq).map(|()| seq).unwrap_or(0)
        })
    });
    g.finish();
}

criterion_group!(benches, ship);
criterion_main!(benches);
