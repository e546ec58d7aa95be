//! Ingests every `*.log` file of a directory (one stream per file, one entry per line) into a
//! fresh log store with compaction off, and prints the lines, the bytes and the CPU seconds
//! this took. Run under `perf stat -e instructions:u` to compare builds of the ingest path on
//! a busy machine, where instruction counts stay steady and times do not.
//!
//! `cargo run --release -p bongsu-logstore --example ingest_files -- LOG_DIR STORE_DIR`
//! (`bongsu-loggen --bytes 200M files LOG_DIR` writes such a directory).

use std::time::Instant;

use bongsu_logstore::{Config, LogStore};
use bongsu_model::{Labels, LogEntry};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_secs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(logs), Some(store_dir)) = (args.first(), args.get(1)) else {
        return Err("usage: ingest_files LOG_DIR STORE_DIR".into());
    };
    let mut files: Vec<_> = std::fs::read_dir(logs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    // Read everything first: the figures are the store's alone.
    let mut streams = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f)?;
        let name = f
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned());
        let labels = Labels::from_pairs([("file", name.as_str())])?;
        let base = 1_700_000_000_000_000_000i64 + i as i64;
        let entries: Vec<LogEntry> = text
            .lines()
            .enumerate()
            .map(|(n, l)| LogEntry::new(base + n as i64 * 1_000_000, l))
            .collect();
        streams.push((labels, entries));
    }
    let config = Config {
        compaction: false,
        ..Config::default()
    };
    let mut store = LogStore::open(std::path::Path::new(store_dir), config)?;
    let (c0, t0) = (cpu_secs(), Instant::now());
    let (mut lines, mut bytes, mut offset) = (0u64, 0u64, 0u64);
    // Interleave the streams in batches of 1000 lines, as a consumer sees them.
    let mut at = vec![0usize; streams.len()];
    loop {
        let mut any = false;
        for (s, (labels, entries)) in streams.iter().enumerate() {
            let batch = &entries[at[s]..(at[s] + 1000).min(entries.len())];
            if batch.is_empty() {
                continue;
            }
            any = true;
            at[s] += batch.len();
            lines += batch.len() as u64;
            bytes += batch.iter().map(|e| e.line.len() as u64 + 1).sum::<u64>();
            store.append(0, offset, labels, batch)?;
            offset += 1;
        }
        if !any {
            break;
        }
    }
    store.flush()?;
    let (cpu, wall) = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
    println!(
        "{lines} lines, {bytes} bytes: {cpu:.2} s CPU ({:.0} lines/s per core), {wall:.2} s wall",
        lines as f64 / cpu.max(0.01)
    );
    Ok(())
}
