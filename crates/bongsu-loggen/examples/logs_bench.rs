//! The log store's figures on generated logs, for `bench/logs.sh`: generates `--bytes` of raw
//! logs into `DIR/raw` (one file per stream) while a second thread ingests the same lines into
//! a log store in `DIR/store`, then runs the queries. Prints Markdown table rows and writes the
//! searched needles to `DIR/needles` for the ripgrep anchor.
//!
//! `cargo run --release -p bongsu-loggen --example logs_bench -- DIR BYTES [REPEATS]`

use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bongsu_loggen::{parse_size, Config, FileSink, Generator, Line};
use bongsu_logstore::{Config as StoreConfig, Direction, LogStore, QueryResult, ResultData};
use bongsu_model::LogEntry;

/// CPU seconds the calling thread has used (from /proc, 10 ms resolution): the figures are per
/// core even on a busy machine.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Debug, Clone, Copy, Default)]
struct Bytes {
    line: u64,
    chunks: u64,
    tokens: u64,
    grams: u64,
}

/// Storage per `source` label (syslog, access, app: JSON, Java and Python logs by `app`).
fn by_source(st: &LogStore) -> std::collections::BTreeMap<String, Bytes> {
    let mut m = std::collections::BTreeMap::<String, Bytes>::new();
    for s in st.storage_by_stream() {
        let src = s.labels.get("source").unwrap_or("?");
        let key = match s.labels.get("app") {
            Some(app) if src == "app" => format!("{src}/{app}"),
            _ => src.to_owned(),
        };
        let b = m.entry(key).or_default();
        b.line += s.line_bytes;
        b.chunks += s.chunk_bytes;
        b.tokens += s.token_filter_bytes;
        b.grams += s.gram_filter_bytes;
    }
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

const BATCH_LINES: usize = 1_000;

struct Ingested {
    store: LogStore,
    lines: u64,
    raw: u64,
    cpu: f64,
    wall: f64,
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(bytes)) = (args.first(), args.get(1)) else {
        bail!("usage: logs_bench DIR BYTES [REPEATS]");
    };
    let dir = std::path::PathBuf::from(dir);
    let target = parse_size(bytes)?;
    let repeats: usize = args.get(2).map_or(Ok(3), |r| r.parse())?;
    let raw_dir = dir.join("raw");
    let store_dir = dir.join("store");

    let mut g = Generator::new(Config::default());
    let streams = g.streams().to_vec();
    let labels: Vec<_> = streams.iter().map(|s| s.labels.clone()).collect();
    let (tx, rx) = sync_channel::<(usize, Vec<LogEntry>)>(64);
    // Compaction runs after ingest, timed on its own (a server runs it off the ingest path).
    let store_cfg = StoreConfig {
        max_head_bytes: 512 << 20,
        flush_bytes: 256 << 20,
        compaction: false,
        ..StoreConfig::default()
    };
    let ingest = std::thread::spawn(move || -> Result<Ingested> {
        let mut store = LogStore::open(&store_dir, store_cfg)?;
        let c0 = cpu_secs();
        let t0 = Instant::now();
        let (mut lines, mut raw, mut offset) = (0u64, 0u64, 0u64);
        for (s, batch) in rx {
            lines += batch.len() as u64;
            raw += batch.iter().map(|e| e.line.len() as u64 + 1).sum::<u64>();
            store.append(0, offset, &labels[s], &batch)?;
            offset += 1;
            if offset % 256 == 0 {
                store.maintain()?;
            }
        }
        store.flush()?;
        Ok(Ingested {
            store,
            lines,
            raw,
            cpu: cpu_secs() - c0,
            wall: t0.elapsed().as_secs_f64(),
        })
    });

    let mut sink = FileSink::new(&raw_dir, &streams)?;
    let mut batches: Vec<Vec<LogEntry>> = vec![Vec::new(); streams.len()];
    let mut line = Line::default();
    let c0 = cpu_secs();
    let mut present = String::new();
    while sink.bytes() < target {
        g.next_line(&mut line);
        sink.write(&streams, &line)?;
        let b = &mut batches[line.stream];
        b.push(LogEntry::new(line.ts_ns, line.text.as_str()));
        if b.len() == BATCH_LINES {
            let full = std::mem::replace(b, Vec::with_capacity(BATCH_LINES));
            if tx.send((line.stream, full)).is_err() {
                break;
            }
        }
        // A rare id from the middle of the run: it occurs in one to three lines.
        if present.is_empty() && sink.bytes() >= target / 2 && !g.last_rare_token().is_empty() {
            present = g.last_rare_token().to_owned();
        }
    }
    for (s, b) in batches.into_iter().enumerate() {
        if !b.is_empty() && tx.send((s, b)).is_err() {
            break;
        }
    }
    drop(tx);
    let gen_bytes = sink.finish()?;
    let gen_cpu = cpu_secs() - c0;
    let mut ing = match ingest.join() {
        Ok(r) => r.context("ingest")?,
        Err(_) => bail!("the ingest thread panicked"),
    };
    let before = ing.store.stats();
    let by_source_before = by_source(&ing.store);
    let c0 = cpu_secs();
    let t0 = Instant::now();
    let mut steps = 0;
    while ing.store.compact()? {
        steps += 1;
    }
    let (compact_cpu, compact_wall) = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
    let absent = "5d41402a-bc4b-4a76-b971-9d911017c592".to_owned();
    let scan_re = "qx[0-9]+zv";
    std::fs::write(
        dir.join("needles"),
        format!("PRESENT={present}\nABSENT={absent}\nSCAN_RE={scan_re}\n"),
    )?;

    let st = &ing.store;
    let stats = st.stats();
    let gb = ing.raw as f64 / 1e9;
    println!("| what | figure | goal |");
    println!("|---|---|---|");
    println!(
        "| generated raw logs | {:.2} GB, {} lines in {} streams ({:.1} MB/s, {:.0} lines/s per core) | ≥ 10 GB |",
        gen_bytes as f64 / 1e9,
        ing.lines,
        streams.len(),
        gen_bytes as f64 / gen_cpu.max(0.01) / 1e6,
        ing.lines as f64 / gen_cpu.max(0.01)
    );
    println!(
        "| ingest, library (append + cut + compress + token filter + segment write) | {:.0} lines/s, {:.1} MB/s per core ({:.1} s CPU, {:.1} s wall) | ≥ 300k lines/s end to end |",
        ing.lines as f64 / ing.cpu.max(0.01),
        ing.raw as f64 / ing.cpu.max(0.01) / 1e6,
        ing.cpu,
        ing.wall
    );
    println!(
        "| stored / raw as ingested (1 MiB chunks, zstd 1, token filters) | {:.2} % ({:.1} MB in {} segments, {} chunks; filters and index included) | |",
        before.segment_bytes as f64 * 100.0 / ing.raw as f64,
        before.segment_bytes as f64 / 1e6,
        before.segments,
        before.chunks
    );
    println!(
        "| compaction (merge to 4 MiB chunks, zstd 9, token filters rebuilt, substring filters built) | {:.1} MB/s of raw per core ({} steps, {:.1} s CPU, {:.1} s wall) | off the ingest path |",
        ing.raw as f64 / compact_cpu.max(0.01) / 1e6,
        steps,
        compact_cpu,
        compact_wall
    );
    println!(
        "| stored / raw after compaction | {:.2} % ({:.1} MB in {} segments, {} chunks; filters and index included) | ≤ 10 % |",
        stats.segment_bytes as f64 * 100.0 / ing.raw as f64,
        stats.segment_bytes as f64 / 1e6,
        stats.segments,
        stats.chunks
    );
    let after = by_source(st);
    for (src, a) in &after {
        let b = by_source_before.get(src).copied().unwrap_or_default();
        let pct = |x: u64| x as f64 * 100.0 / a.line.max(1) as f64;
        println!(
            "| stored / line text, `{src}` ({:.0} % of the text) | chunks {:.2} % (as ingested {:.2} %), token filters {:.2} %, substring filters {:.2} % | |",
            a.line as f64 * 100.0 / ing.raw as f64,
            pct(a.chunks),
            b.chunks as f64 * 100.0 / b.line.max(1) as f64,
            pct(a.tokens),
            pct(a.grams)
        );
    }

    // Queries: median of `repeats`, wall and thread CPU.
    let run = |q: &str, limit: usize, dir: Direction| -> Result<(f64, f64, QueryResult)> {
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            let c = cpu_secs();
            let r = st.query_range(q, 0, i64::MAX, 1, limit, dir)?;
            cpus.push(cpu_secs() - c);
            walls.push(t.elapsed().as_secs_f64());
            last = Some(r);
        }
        let last = last.context("no query run")?;
        Ok((median(walls), median(cpus), last))
    };
    let hits = |r: &QueryResult| -> usize {
        match &r.data {
            ResultData::Streams(s) => s.iter().map(|s| s.entries.len()).sum(),
            _ => 0,
        }
    };
    let all = r#"{source=~".+"}"#;
    let q = format!("{all} |~ \"{scan_re}\"");
    let (wall, cpu, r) = run(&q, 100, Direction::Backward)?;
    println!(
        "| scan, regex matching nothing `{q}` | {:.2} GB/s per core ({:.2} GB in {:.2} s CPU, {:.2} s wall; {} hits) | ≥ 1 GB/s per core |",
        r.stats.bytes_scanned as f64 / cpu.max(0.01) / 1e9,
        r.stats.bytes_scanned as f64 / 1e9,
        cpu,
        wall,
        hits(&r)
    );
    // The same kind of scan where the regex requires a literal of at least 11 token bytes: the
    // substring filter skips chunks before decompression (not brute force: reported apart).
    let q = format!("{all} |~ \"timeout-qxzv[0-9]+-exceeded\"");
    let (wall, cpu, r) = run(&q, 100, Direction::Backward)?;
    println!(
        "| scan, regex with a required literal, matching nothing `{q}` (chunks skipped by the substring filter, not brute force) | {:.1} ms wall, {:.1} ms CPU ({} of {} chunks scanned; {} hits) | |",
        wall * 1e3,
        cpu * 1e3,
        r.stats.chunks_scanned,
        r.stats.chunks_total,
        hits(&r)
    );
    // `|=` is a substring match: the id's first and last groups may be parts of longer tokens
    // in a line, so the token filter requires only its inner groups; the substring filter
    // requires its winnowed grams. `\b…\b` makes the whole id a required token.
    for (what, q) in [
        ("present once", format!("{all} |= \"{present}\"")),
        ("absent", format!("{all} |= \"{absent}\"")),
        (
            "present once, whole token",
            format!("{all} |~ \"\\\\b{present}\\\\b\""),
        ),
        (
            "absent, whole token",
            format!("{all} |~ \"\\\\b{absent}\\\\b\""),
        ),
    ] {
        let (wall, _, r) = run(&q, 100, Direction::Backward)?;
        println!(
            "| rare-token search over {gb:.1} GB, {what}: `{q}` | {:.1} ms ({} hits; {} of {} chunks scanned) | ≤ 100 ms over 10 GB |",
            wall * 1e3,
            hits(&r),
            r.stats.chunks_scanned,
            r.stats.chunks_total
        );
    }
    // False positives of the filters: absent random ids, each query's chunk reads counted.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (what, n) in [
        ("UUID", 36usize),
        ("16 hex digits", 16),
        ("12 hex digits", 12),
    ] {
        let (mut read, mut total) = (0usize, 0usize);
        for _ in 0..20 {
            let (a, b) = (next(), next());
            let id = if n == 36 {
                format!(
                    "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                    a >> 32,
                    (a >> 16) & 0xffff,
                    a & 0xffff,
                    b >> 48,
                    b & 0xffff_ffff_ffff
                )
            } else {
                format!("{a:016x}")[..n].to_owned()
            };
            let r = st.query_range(
                &format!("{all} |= \"{id}\""),
                0,
                i64::MAX,
                1,
                100,
                Direction::Backward,
            )?;
            read += r.stats.chunks_scanned;
            total += r.stats.chunks_total;
        }
        println!(
            "| filter false positives, `|=` 20 absent random ids of {what} | {:.3} % of chunks read ({read} of {total}) | |",
            read as f64 * 100.0 / total.max(1) as f64
        );
    }
    for q in [r#"{host="web-01", source="access"}"#, r#"{app="sshd"}"#] {
        let (wall, _, r) = run(q, 100, Direction::Backward)?;
        println!(
            "| label-only query, newest 100 lines: `{q}` | {:.2} ms ({} lines; {} of {} chunks scanned) | |",
            wall * 1e3,
            hits(&r),
            r.stats.chunks_scanned,
            r.stats.chunks_total
        );
    }
    let mut walls = Vec::new();
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        let v = st.label_values("host", 0, i64::MAX, None)?;
        walls.push(t.elapsed().as_secs_f64());
        if v.len() != 10 {
            bail!("expected 10 hosts, got {}", v.len());
        }
    }
    println!(
        "| label values of `host` | {:.3} ms | |",
        median(walls) * 1e3
    );
    eprintln!("logs_bench: {gb:.2} GB raw, store in {}", dir.display());
    Ok(())
}
