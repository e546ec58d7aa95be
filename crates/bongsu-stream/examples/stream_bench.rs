//! Whole-engine benchmark of the embedded log; prints one table. Run through bench/stream.sh
//! (release build). Figures depend on the machine and its load: quote medians of several runs.
//!
//! Usage: stream_bench [DIR] [SECONDS_PER_MEASUREMENT]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bongsu_stream::{
    Compression, EmbeddedStream, FetchOptions, Producer, ProducerConfig, Record, Stream,
    StreamOptions, TopicConfig,
};
use bytes::Bytes;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// CPU seconds used by this process so far (user + system, from /proc; ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // after the command name: state is field 0, utime field 11, stime field 12
    (tick(11) + tick(12)) / 100.0
}

/// Runs `f`, returning its result, wall seconds and CPU seconds.
async fn measured<T>(f: impl std::future::Future<Output = R<T>>) -> R<(T, f64, f64)> {
    let (w, c) = (Instant::now(), cpu_secs());
    let r = f.await?;
    Ok((r, w.elapsed().as_secs_f64(), cpu_secs() - c))
}

fn payload(size: usize) -> Bytes {
    // log-like text, compressible like real payloads
    let line = b"ts=2026-11-22T00:00:00Z host=web-01 level=info msg=\"request served\" status=200 bytes=5120 ";
    Bytes::from(line.iter().cycle().take(size).copied().collect::<Vec<u8>>())
}

fn topic(partitions: u32, compression: Compression) -> TopicConfig {
    TopicConfig {
        partitions,
        compression_type: compression,
        segment_bytes: 256 << 20,
        retention_ms: -1,
        ..TopicConfig::default()
    }
}

/// Durable appends of `batch`-record batches from one producer task, up to 16 in flight.
async fn append_rate(
    s: &Arc<EmbeddedStream>,
    t: &str,
    partitions: u32,
    size: usize,
    secs: f64,
) -> R<f64> {
    let value = payload(size);
    let batch = (256 * 1024 / size).max(1);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    let mut done = 0u64;
    let mut p = 0u32;
    while start.elapsed().as_secs_f64() < secs {
        while set.len() < 16 {
            let recs: Vec<Record> = (0..batch).map(|_| Record::new(value.clone(), 1)).collect();
            let s = s.clone();
            let t = t.to_string();
            let part = p % partitions;
            p += 1;
            sent += batch as u64;
            set.spawn(async move { s.append(&t, Some(part), recs).await });
        }
        if let Some(r) = set.join_next().await {
            done += r??.count as u64;
        }
    }
    while let Some(r) = set.join_next().await {
        done += r??.count as u64;
    }
    let _ = sent;
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

async fn producer_rate(s: &Arc<EmbeddedStream>, t: &str, size: usize, secs: f64) -> R<f64> {
    let value = payload(size);
    let p = Producer::new(
        s.clone() as Arc<dyn Stream>,
        ProducerConfig {
            batch_size: 256 * 1024,
            linger_ms: 5,
            max_request_size: 4 << 20,
            buffer_memory: 64 << 20,
        },
    );
    let start = Instant::now();
    let mut n = 0u64;
    let mut last = None;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..1000 {
            last = Some(p.enqueue(t, Record::new(value.clone(), 1)).await?);
            n += 1;
        }
    }
    p.flush().await?;
    if let Some(d) = last {
        d.wait().await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn consume_rate(s: &Arc<EmbeddedStream>, t: &str) -> R<(f64, u64)> {
    let end = s.describe_topic(t).await?.partitions[0].high_watermark;
    let start = Instant::now();
    let mut at = 0u64;
    let opts = FetchOptions {
        max_partition_fetch_bytes: 4 << 20,
        ..FetchOptions::no_wait()
    };
    while at < end {
        let f = s.fetch(t, 0, at, opts).await?;
        at = f.records.last().map(|r| r.offset + 1).unwrap_or(end);
    }
    Ok((end as f64 / start.elapsed().as_secs_f64(), end))
}

/// End-to-end latency (append start → record fetched by a long-polling consumer) at `rate`.
async fn latency(s: &Arc<EmbeddedStream>, t: &str, rate: f64, secs: f64) -> R<(f64, f64)> {
    let origin = Instant::now();
    let consumer = {
        let s = s.clone();
        let t = t.to_string();
        tokio::spawn(async move {
            let mut at = s.describe_topic(&t).await?.partitions[0].high_watermark;
            let mut lat = Vec::new();
            let opts = FetchOptions {
                max_partition_fetch_bytes: 4 << 20,
                fetch_min_bytes: 1,
                fetch_max_wait_ms: 200,
            };
            while origin.elapsed().as_secs_f64() < secs + 0.3 {
                let f = s.fetch(&t, 0, at, opts).await?;
                let now = origin.elapsed().as_nanos() as u64;
                for r in &f.records {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&r.value[..8]);
                    lat.push(now.saturating_sub(u64::from_le_bytes(b)));
                    at = r.offset + 1;
                }
            }
            R::Ok(lat)
        })
    };
    let tick = Duration::from_millis(1);
    let per_tick = (rate / 1000.0).max(1.0) as usize;
    let mut next = tokio::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    while origin.elapsed().as_secs_f64() < secs {
        next += tick;
        tokio::time::sleep_until(next).await;
        let sent_at = (origin.elapsed().as_nanos() as u64).to_le_bytes();
        // One value per tick, shared by its records (they carry the same send time), so the
        // figure measures the log rather than the bench's allocator.
        let mut v = vec![0u8; 100];
        v[..8].copy_from_slice(&sent_at);
        let v = Bytes::from(v);
        let recs: Vec<Record> = (0..per_tick).map(|_| Record::new(v.clone(), 1)).collect();
        let s = s.clone();
        let t = t.to_string();
        set.spawn(async move { s.append(&t, Some(0), recs).await });
        while let Some(r) = set.try_join_next() {
            r??;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let mut lat = consumer.await??;
    lat.sort_unstable();
    if lat.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1e6;
    Ok((q(0.5), q(0.99)))
}

fn recovery(dir: &std::path::Path) -> R<(f64, u64)> {
    let rt = tokio::runtime::Runtime::new()?;
    let size: u64 = 1 << 30;
    {
        let s = EmbeddedStream::open(dir, StreamOptions::default())?;
        rt.block_on(async {
            let cfg = TopicConfig {
                partitions: 1,
                segment_bytes: u32::MAX as u64,
                compression_type: Compression::None,
                flush_messages: i64::MAX,
                flush_ms: i64::MAX,
                retention_ms: -1,
                ..TopicConfig::default()
            };
            s.create_topic("rec", cfg).await?;
            let value = payload(1000);
            let mut written = 0u64;
            while written < size {
                let recs: Vec<Record> = (0..1000).map(|_| Record::new(value.clone(), 1)).collect();
                s.append("rec", Some(0), recs).await?;
                written = s.describe_topic("rec").await?.partitions[0].size_bytes;
            }
            s.shutdown().await;
            R::Ok(())
        })?;
    }
    let bytes = std::fs::metadata(dir.join("topics/rec/0/00000000000000000000.log"))?.len();
    let start = Instant::now();
    let s = EmbeddedStream::open(dir, StreamOptions::default())?;
    let took = start.elapsed().as_secs_f64();
    drop(s);
    Ok((took, bytes))
}

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().collect();
    let base = match args.get(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("bongsu-stream-bench-{}", std::process::id())),
    };
    let secs: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3.0);
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let s = EmbeddedStream::open(&base.join("data"), StreamOptions::default())?;
    let mut max_100 = 0.0;
    rt.block_on(async {
        for (size, parts, comp) in [
            (100, 1, Compression::None),
            (100, 4, Compression::None),
            (1024, 1, Compression::None),
            (1024, 4, Compression::None),
            (100, 1, Compression::Zstd),
            (100, 1, Compression::Lz4),
        ] {
            let t = format!("a{size}-{parts}-{}", comp.name());
            s.create_topic(&t, topic(parts, comp)).await?;
            let (r, wall, cpu) = measured(append_rate(&s, &t, parts, size, secs)).await?;
            if size == 100 && parts == 1 && comp == Compression::None {
                max_100 = r;
            }
            rows.push((
                format!(
                    "durable append, {size} B records, {parts} partition(s), {}",
                    comp.name()
                ),
                format!(
                    "{:.2} M/s ({:.0} MB/s), {:.2} M/CPU-s",
                    r / 1e6,
                    r * size as f64 / 1e6,
                    r * wall / cpu.max(0.01) / 1e6
                ),
            ));
        }
        s.create_topic("prod", topic(1, Compression::None)).await?;
        let (r, wall, cpu) = measured(producer_rate(&s, "prod", 100, secs)).await?;
        rows.push((
            "durable Producer.send, 100 B records, 1 partition".into(),
            format!(
                "{:.2} M/s, {:.2} M/CPU-s",
                r / 1e6,
                r * wall / cpu.max(0.01) / 1e6
            ),
        ));
        for t in ["a100-1-none", "a100-1-lz4", "a100-1-zstd"] {
            let ((r, n), wall, cpu) = measured(consume_rate(&s, t)).await?;
            rows.push((
                format!("consume {t} ({n} records)"),
                format!(
                    "{:.2} M/s, {:.2} M/CPU-s",
                    r / 1e6,
                    r * wall / cpu.max(0.01) / 1e6
                ),
            ));
        }
        s.create_topic("lat", topic(1, Compression::None)).await?;
        let rate = max_100 / 2.0;
        let (p50, p99) = latency(&s, "lat", rate, secs).await?;
        rows.push((
            format!(
                "end-to-end latency at {:.2} M rec/s, fsync on: p50 / p99 (ms)",
                rate / 1e6
            ),
            format!("{p50:.2} / {p99:.2}"),
        ));
        s.shutdown().await;
        R::Ok(())
    })?;
    drop(s);
    drop(rt);
    let (took, bytes) = recovery(&base.join("recovery"))?;
    rows.push((
        format!(
            "recovery (open + full validation) of a {:.2} GiB active segment (s)",
            bytes as f64 / (1u64 << 30) as f64
        ),
        format!("{took:.2}"),
    ));
    let _ = std::fs::remove_dir_all(&base);
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(10);
    println!("| {:w$} | {:>40} |", "figure", "value");
    println!("|{}|{}|", "-".repeat(w + 2), "-".repeat(42));
    for (k, v) in rows {
        println!("| {k:w$} | {v:>40} |");
    }
    Ok(())
}
