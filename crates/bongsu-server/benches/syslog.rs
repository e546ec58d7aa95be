//! Syslog TCP ingest through the receiver: lines written on one loopback connection until the
//! in-memory stream acknowledged them all (framing, parsing, batching, encoding, append).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bongsu_ingest::Limits;
use bongsu_server::{render_metrics, SyslogReceiver, SyslogSettings, SystemClock};
use bongsu_stream::{MemoryStream, Stream, StreamOptions, TopicConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LINES: usize = 20_000;

fn stored(r: &SyslogReceiver) -> u64 {
    let text = render_metrics(&[r.metrics_source()]);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("bongsu_syslog_lines_total{transport=\"tcp\",outcome=\"stored\"} ")
        })
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A mix of RFC 5424 (octet-counted, with structured data) and RFC 3164 (newline) messages.
fn wire() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..LINES {
        if i % 2 == 0 {
            let m = format!(
                "<134>1 2026-11-22T00:42:22.{:06}+00:00 web{} nginx 1234 - [req@1 id=\"{i}\"] GET /api/v1/items/{i} HTTP/1.1 200 512 0.003",
                i % 1_000_000,
                i % 8
            );
            out.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
        } else {
            out.extend_from_slice(
                format!(
                    "<30>Nov 22 00:42:22 db{} postgres[77]: checkpoint complete: wrote {i} buffers (0.1%)\n",
                    i % 4
                )
                .as_bytes(),
            );
        }
    }
    out
}

fn bench_tcp(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stream = MemoryStream::new(StreamOptions::default());
    let receiver = rt.block_on(async {
        stream
            .create_topic(
                "logs",
                TopicConfig {
                    partitions: 2,
                    max_message_bytes: 1 << 20,
                    ..TopicConfig::default()
                },
            )
            .await
            .unwrap();
        let settings = SyslogSettings {
            tcp_listen: "127.0.0.1:0".into(),
            ..SyslogSettings::default()
        };
        SyslogReceiver::start(
            &settings,
            &Limits::default(),
            stream.clone(),
            Arc::new(SystemClock),
        )
        .await
        .unwrap()
        .unwrap()
    });
    let addr = receiver.tcp_addr().unwrap();
    let wire = wire();
    let mut g = c.benchmark_group("syslog_tcp");
    g.throughput(Throughput::Elements(LINES as u64));
    g.sample_size(10);
    g.bench_function("mixed_5424_3164_lines", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let target = stored(&receiver) + LINES as u64;
                let start = Instant::now();
                rt.block_on(async {
                    let mut conn = TcpStream::connect(addr).await.unwrap();
                    conn.write_all(&wire).await.unwrap();
                    conn.shutdown().await.unwrap();
                    while stored(&receiver) < target {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                });
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
    rt.block_on(receiver.shutdown());
}

criterion_group!(benches, bench_tcp);
criterion_main!(benches);
