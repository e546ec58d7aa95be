//! Measures the log store's figures on generated realistic mixed logs:
//! bytes stored as a fraction of raw, scan speed where no filter helps, rare-token latency.
//!
//! `cargo run --release -p bongsu-logstore --example measure -- [MiB of raw text, default 1024]`

use std::time::Instant;

use bongsu_logstore::{Config, Direction, LogStore};
use bongsu_model::{Labels, LogEntry};

const T0: i64 = 1_700_000_000_000_000_000;

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_secs;

/// A realistic mixed line. Each request (4 consecutive lines) shares one request id and
/// client: an access log line, a logfmt line, a JSON line and a plain worker line. Clients,
/// paths and users come from bounded pools; numbers from skewed ranges.
fn line(i: u64, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let req = i / 4;
    let h = req.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let r = |n: u64| (h >> (n % 48)) & 0xffff;
    let client = r(3) % 500;
    let ip = format!(
        "10.{}.{}.{}",
        client / 200,
        (client / 10) % 20,
        client % 250
    );
    let path = [
        "/api/v1/items",
        "/api/v1/orders",
        "/api/v1/users",
        "/login",
        "/static/app.js",
        "/health",
    ][(r(5) % 6) as usize];
    let id = r(7) % 200;
    let status = if r(11) % 50 == 0 {
        500
    } else if r(13) % 20 == 0 {
        404
    } else {
        200
    };
    let ms = (r(17) % 60) + if r(19) % 30 == 0 { 900 } else { 0 };
    let secs = 1_700_000_000 + req / 50;
    let _ = match i % 4 {
        0 => write!(
            out,
            "{ip} - - [14/Nov/2023:{:02}:{:02}:{:02} +0000] \"GET {path}/{id} HTTP/1.1\" {status} {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            512 + r(23) % 4096
        ),
        1 => write!(
            out,
            "ts={secs}.{:03} level={} msg=\"request handled\" req_id=req-{h:016x} path={path} duration={ms}ms user=u{}",
            req % 1000,
            if status == 500 { "error" } else if ms > 500 { "warn" } else { "info" },
            r(29) % 1000
        ),
        2 => write!(
            out,
            "{{\"ts\":{secs},\"level\":\"info\",\"trace_id\":\"{h:016x}\",\"path\":\"{path}\",\"status\":{status},\"latency_ms\":{ms}}}"
        ),
        _ => write!(
            out,
            "worker {} finished request req-{h:016x} for tenant t{} in {ms}ms",
            r(31) % 8,
            r(37) % 50
        ),
    };
}

/// Stores the lines of real log files (one stream per file) and prints the stored fraction.
fn real_files(paths: &[String]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut st = LogStore::open(dir.path(), Config::default()).expect("open");
    let mut raw = 0u64;
    for (n, p) in paths.iter().enumerate() {
        let text = std::fs::read(p).expect("read log file");
        let text = String::from_utf8_lossy(&text);
        let l = Labels::from_pairs([("file", format!("f{n}"))]).expect("labels");
        let entries: Vec<LogEntry> = text
            .lines()
            .enumerate()
            .map(|(i, line)| LogEntry::new(T0 + i as i64 * 1_000_000, line))
            .collect();
        raw += entries.iter().map(|e| e.line.len() as u64 + 1).sum::<u64>();
        st.append(0, n as u64, &l, &entries).expect("append");
    }
    st.flush().expect("flush");
    let stats = st.stats();
    println!(
        "real logs {paths:?}: raw {:.1} KiB, stored {:.1} KiB = {:.2}% of raw (filters and index included)",
        raw as f64 / 1024.0,
        stats.segment_bytes as f64 / 1024.0,
        stats.segment_bytes as f64 * 100.0 / raw as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a.parse::<u64>().is_err()) {
        real_files(&args);
        return;
    }
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
    let c0 = cpu_secs();
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
    let ingest_cpu = cpu_secs() - c0;
    let stats = st.stats();
    println!("lines: {i}, raw text: {:.1} MiB", raw as f64 / 1048576.0);
    println!(
        "ingest (generate + append + chunk + compress + filter + write): wall {:.2} s, cpu {:.2} s: {:.0} lines/s, {:.0} MiB/s per core",
        ingest.as_secs_f64(),
        ingest_cpu,
        i as f64 / ingest_cpu,
        raw as f64 / 1048576.0 / ingest_cpu
    );
    println!(
        "stored: {:.1} MiB in {} segments, {} chunks = {:.2}% of raw (filters and index included)",
        stats.segment_bytes as f64 / 1048576.0,
        stats.segments,
        stats.chunks,
        stats.segment_bytes as f64 * 100.0 / raw as f64
    );
    let all = r#"{env="prod"}"#;
    // Best of three, in CPU seconds (and wall seconds) of this thread.
    let run = |q: &str| {
        let mut best = (f64::MAX, f64::MAX);
        let mut r = None;
        for _ in 0..3 {
            let t = Instant::now();
            let c = cpu_secs();
            let res = st
                .query_range(q, 0, i64::MAX, 1, 100, Direction::Forward)
                .expect("query");
            let cpu = cpu_secs() - c;
            best = (best.0.min(cpu), best.1.min(t.elapsed().as_secs_f64()));
            r = Some(res);
        }
        (best, r.expect("ran"))
    };
    for q in [
        format!("{all} |~ \"zzq[0-9]+x\""),
        format!("{all} |= \"zzq\""),
    ] {
        let ((cpu, wall), r) = run(&q);
        println!(
            "scan {q}: cpu {:.3} s (wall {:.3} s), {:.2} GB/s of raw text per core ({} chunks scanned)",
            cpu,
            wall,
            r.stats.bytes_scanned as f64 / cpu.max(0.01) / 1e9,
            r.stats.chunks_scanned
        );
    }
    let needle_i = i / 2 + 1; // a logfmt line (i % 4 == 1)
    let needle_i = needle_i - (needle_i % 4) + 1;
    line(needle_i, &mut buf);
    let id = buf
        .split_whitespace()
        .find_map(|w| w.strip_prefix("req_id="))
        .map(|w| w.trim_end_matches(' '))
        .expect("req id")
        .to_owned();
    for q in [
        format!("{all} |~ \"\\\\b{id}\\\\b\""),
        format!("{all} |= \" req_id={id} \""),
    ] {
        let ((_, secs), r) = run(&q);
        let n: usize = match &r.data {
            bongsu_logstore::ResultData::Streams(s) => s.iter().map(|s| s.entries.len()).sum(),
            _ => 0,
        };
        println!(
            "rare token {q}: wall {:.2} ms, {} hits, {} of {} chunks scanned",
            secs * 1e3,
            n,
            r.stats.chunks_scanned,
            r.stats.chunks_total
        );
    }
}
