//! Figures for a node_exporter-like workload: bytes per sample on disk after compaction
//! (index included) and head memory per active series.
//!
//! Run: `cargo bench -p bongsu-tsdb --bench figures` (env FIGURES_SERIES, FIGURES_HOURS).

use std::time::Instant;

use bongsu_model::{Labels, Sample};
use bongsu_tsdb::{Options, Tsdb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INTERVAL_MS: i64 = 15_000;

/// How a generated series evolves; the mix follows a node_exporter scrape, where most
/// series are constant or slow counters.
enum Kind {
    Constant(f64),
    SlowCounter { v: f64, p: f64 },
    CpuSeconds { v: f64, rate: f64 },
    ByteCounter { v: f64, rate: f64 },
    MemGauge { v: f64 },
    Load { v: f64 },
}

impl Kind {
    fn new(i: usize, rng: &mut StdRng) -> Self {
        match i % 20 {
            0..=7 => Kind::Constant(f64::from(rng.gen_range(0u32..1 << 20)) * 4096.0),
            8..=12 => Kind::SlowCounter {
                v: f64::from(rng.gen_range(0u32..10_000)),
                p: rng.gen_range(0.001..0.2),
            },
            13..=15 => Kind::CpuSeconds {
                v: rng.gen_range(1e3..1e6_f64).round(),
                rate: rng.gen_range(0.001..0.9),
            },
            16..=17 => Kind::ByteCounter {
                v: f64::from(rng.gen_range(0u32..u32::MAX)),
                rate: rng.gen_range(10.0..1e5),
            },
            18 => Kind::MemGauge {
                v: f64::from(rng.gen_range(1u32..1 << 20)) * 4096.0,
            },
            _ => Kind::Load {
                v: rng.gen_range(0.0..4.0),
            },
        }
    }

    fn next(&mut self, rng: &mut StdRng) -> f64 {
        match self {
            Kind::Constant(v) => *v,
            Kind::SlowCounter { v, p } => {
                if rng.gen_bool(*p) {
                    *v += f64::from(rng.gen_range(1u32..4));
                }
                *v
            }
            Kind::CpuSeconds { v, rate } => {
                // node_cpu_seconds_total has 2 decimals
                *v = ((*v + 15.0 * *rate * rng.gen_range(0.5..1.5)) * 100.0).round() / 100.0;
                *v
            }
            Kind::ByteCounter { v, rate } => {
                *v += (15.0 * *rate * rng.gen_range(0.3..1.7)).round();
                *v
            }
            Kind::MemGauge { v } => {
                *v = (*v + f64::from(rng.gen_range(-64i32..64)) * 4096.0).max(0.0);
                *v
            }
            Kind::Load { v } => {
                *v = ((*v + rng.gen_range(-0.05..0.05f64)).max(0.0) * 100.0).round() / 100.0;
                *v
            }
        }
    }
}

fn labels(i: usize) -> Labels {
    let host = i / 500;
    Labels::from_pairs([
        ("__name__", format!("node_metric_{}", i % 500 / 5)),
        (
            "instance",
            format!("10.0.{}.{}:9100", host / 250, host % 250),
        ),
        ("job", "node".to_string()),
        ("cpu", format!("{}", i % 5)),
    ])
    .unwrap_or_default()
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    let n: usize = std::env::var("FIGURES_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let hours: i64 = std::env::var("FIGURES_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let db = Tsdb::open(dir.path(), Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = StdRng::seed_from_u64(1);
    let mut kinds: Vec<Kind> = (0..n).map(|i| Kind::new(i, &mut rng)).collect();
    let all_labels: Vec<Labels> = (0..n).map(labels).collect();
    let steps = hours * 3_600_000 / INTERVAL_MS;
    let t0 = 1_700_006_400_000i64; // a day boundary
    let rss0 = rss_bytes();
    let start = Instant::now();
    let mut head_peak = (bongsu_tsdb::HeadMemory::default(), 0u64);
    for step in 0..steps {
        let scrape = t0 + step * INTERVAL_MS;
        // each target's scrape jitters by a few milliseconds; all series of one scrape
        // share its timestamp, as with Prometheus or bongsu's agent
        let jitter: Vec<i64> = (0..n.div_ceil(500)).map(|_| rng.gen_range(0..5)).collect();
        for (i, k) in kinds.iter_mut().enumerate() {
            let t = scrape + jitter[i / 500];
            let v = k.next(&mut rng);
            db.append(&all_labels[i], &[Sample::new(t, v)])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // maintenance every 10 minutes, as the background compactor would; the head is
        // measured before each pass, so the peak is the head at its fullest (just before a
        // cut, about 2 h 10 min of samples)
        if step % 40 == 39 {
            let mem = db.head_memory();
            if mem.total() > head_peak.0.total() {
                head_peak = (mem, rss_bytes().saturating_sub(rss0));
            }
            db.compact_now().unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let ingest = start.elapsed();
    db.flush().unwrap_or_else(|e| panic!("{e}"));
    db.compact_now().unwrap_or_else(|e| panic!("{e}"));
    let u = db.disk_usage();
    let samples = n as u64 * steps as u64;
    println!("workload: {n} series, {hours} h at 15 s = {samples} samples, appended in {:.1} s ({:.0} samples/s incl. cuts and compaction)",
        ingest.as_secs_f64(), samples as f64 / ingest.as_secs_f64());
    println!(
        "raw blocks: {} ({} samples), {} bytes = {:.3} bytes/sample (meta + index + data)",
        u.raw_blocks,
        u.raw_samples,
        u.raw_bytes,
        u.raw_bytes as f64 / u.raw_samples.max(1) as f64
    );
    println!(
        "compacted raw blocks: {} samples, {} bytes = {:.3} bytes/sample (meta + index + data)",
        u.compacted_samples,
        u.compacted_bytes,
        u.compacted_bytes as f64 / u.compacted_samples.max(1) as f64
    );
    println!(
        "rollup blocks: {}, {} bytes = {:.3} bytes/raw sample",
        u.rollup_blocks,
        u.rollup_bytes,
        u.rollup_bytes as f64 / u.raw_samples.max(1) as f64
    );
    let (mem, rss) = head_peak;
    println!(
        "head at its peak: {} series, {:.0} B/series accounted (chunks {:.0}, series {:.0}, postings {:.0}, symbols {:.0}); process RSS growth {:.0} B/series (includes block indexes and allocator slack)",
        mem.series,
        mem.per_series(),
        mem.chunk_bytes as f64 / mem.series.max(1) as f64,
        mem.series_bytes as f64 / mem.series.max(1) as f64,
        mem.index_bytes as f64 / mem.series.max(1) as f64,
        mem.symbol_bytes as f64 / mem.series.max(1) as f64,
        rss as f64 / mem.series.max(1) as f64
    );
}
