//! Measures the log store's figures on generated realistic mixed logs:
//! bytes stored as a fraction of raw, scan speed where no filter helps, rare-token latency.
//!
//! `cargo run --release -p bongsu-logstore --example measure -- [MiB of raw text, default 1024]`

use std::time::Instant;

use bongsu_logstore::{Config, Direction, LogStore};
use bongsu_model::{Labels, LogEntry};

const T0: i64 = 1_700_000_000_000_000_000;

fn line(i: u64, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i >> 7);
    let ip = |o: &mut String| {
        write!(
            o,
            "10.{}.{}.{}",
            (h >> 8) & 0xff,
            (h >> 16) & 0xff,
            (h >> 24) & 0xff
        )
    };
    let _ = match i % 4 {
        0 => {
            let _ = ip(out);
            write!(
                out,
                " - - [14/Nov/2023:22:{:02}:{:02} +0000] \"GET /api/v1/items/{} HTTP/1.1\" {} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
                (i / 60) % 60,
                i % 60,
                h % 5000,
                [200, 200, 200, 404, 500][(h % 5) as usize],
                h % 20000
            )
        }
        1 => write!(
            out,
            "ts=2023-11-14T22:13:{:02}.{:03}Z level={} msg=\"request handled\" req_id=req-{:016x} duration={}ms user=u{}",
            i % 60,
            i % 1000,
            ["info", "info", "warn", "error"][(h % 4) as usize],
            h,
            h % 900,
            h % 1000
        ),
        2 => write!(
            out,
            "{{\"level\":\"info\",\"trace\":\"{:016x}\",\"path\":\"/orders/{}\",\"status\":{},\"latency_ms\":{}}}",
            h.rotate_left(17),
            h % 10000,
            [200, 201, 429, 503][(h % 4) as usize],
            h % 3000
        ),
        _ => {
            let _ = write!(out, "worker {} processed batch {} of tenant t{} in {}ms from ", h % 8, i, h % 50, h % 700);
            ip(out)
        }
    };
}

fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let target = mib << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = Config {
        flush_bytes: 256 << 20,
        ..Config::default()
    };
    let mut st = LogStore::open(dir.path(), cfg).expect("open");
    let streams: Vec<Labels> = (0..8)
        .map(|s| {
            Labels::from_pairs([("app", format!("svc{s}")), ("env", "prod".into())])
                .expect("labels")
        })
        .collect();
    let mut raw = 0u64;
    let mut i = 0u64;
    let mut buf = String::new();
    let t = Instant::now();
    let mut batch: Vec<Vec<LogEntry>> = vec![Vec::new(); streams.len()];
    let mut offset = 0u64;
    while raw < target {
        line(i, &mut buf);
        raw += buf.len() as u64 + 1;
        let s = (i % 8) as usize;
        batch[s].push(LogEntry::new(T0 + i as i64 * 100_000, buf.clone()));
        if batch[s].len() == 1000 {
            st.append(0, offset, &streams[s], &batch[s])
                .expect("append");
            offset += 1;
            batch[s].clear();
        }
        if i & 0xf_ffff == 0 {
            st.maintain().expect("maintain");
        }
        i += 1;
    }
    for (s, b) in batch.iter().enumerate() {
        if !b.is_empty() {
            st.append(0, offset, &streams[s], b).expect("append");
            offset += 1;
        }
    }
    st.flush().expect("flush");
    let ingest = t.elapsed();
    let stats = st.stats();
    println!("lines: {i}, raw text: {:.1} MiB", raw as f64 / 1048576.0);
    println!(
        "ingest (append + chunk + compress + filter + write): {:.2} s, {:.0} lines/s, {:.0} MiB/s",
        ingest.as_secs_f64(),
        i as f64 / ingest.as_secs_f64(),
        raw as f64 / 1048576.0 / ingest.as_secs_f64()
    );
    println!(
        "stored: {:.1} MiB in {} segments, {} chunks = {:.2}% of raw (filters and index included)",
        stats.segment_bytes as f64 / 1048576.0,
        stats.segments,
        stats.chunks,
        stats.segment_bytes as f64 * 100.0 / raw as f64
    );
    let all = r#"{env="prod"}"#;
    let run = |q: &str| {
        let mut best = f64::MAX;
        let mut r = None;
        for _ in 0..3 {
            let t = Instant::now();
            let res = st
                .query_range(q, 0, i64::MAX, 1, 100, Direction::Forward)
                .expect("query");
            best = best.min(t.elapsed().as_secs_f64());
            r = Some(res);
        }
        (best, r.expect("ran"))
    };
    for q in [
        format!("{all} |~ \"zzq[0-9]+x\""),
        format!("{all} |= \"no such text here\""),
    ] {
        let (secs, r) = run(&q);
        println!(
            "scan {q}: {:.3} s, {:.2} GB/s of raw text on one core ({} chunks scanned)",
            secs,
            r.stats.bytes_scanned as f64 / secs / 1e9,
            r.stats.chunks_scanned
        );
    }
    let needle_i = i / 2 + 1; // a logfmt line (i % 4 == 1)
    let needle_i = needle_i - (needle_i % 4) + 1;
    line(needle_i, &mut buf);
    let id = buf
        .split_whitespace()
        .find_map(|w| w.strip_prefix("req_id="))
        .expect("req id")
        .to_owned();
    for q in [
        format!("{all} |~ \"\\\\b{id}\\\\b\""),
        format!("{all} |= \" req_id={id} \""),
    ] {
        let (secs, r) = run(&q);
        let n: usize = match &r.data {
            bongsu_logstore::ResultData::Streams(s) => s.iter().map(|s| s.entries.len()).sum(),
            _ => 0,
        };
        println!(
            "rare token {q}: {:.2} ms, {} hits, {} of {} chunks scanned",
            secs * 1e3,
            n,
            r.stats.chunks_scanned,
            r.stats.chunks_total
        );
    }
}
