//! Runs LogQL log queries against an existing log store directory (read only; for example the
//! store `logs_bench` built) and prints the median wall time and the chunks scanned.
//!
//! `cargo run --release -p bongsu-loggen --example query_store -- STORE_DIR REPEATS QUERY...`

use std::time::Instant;

use anyhow::{bail, Result};
use bongsu_logstore::{Config, Direction, LogStore, ResultData};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(repeats)) = (args.first(), args.get(1)) else {
        bail!("usage: query_store STORE_DIR REPEATS QUERY...");
    };
    let repeats: usize = repeats.parse()?;
    let t = Instant::now();
    let st = LogStore::open(dir, Config::default())?;
    println!(
        "opened {dir} in {:.1} ms: {:?}",
        t.elapsed().as_secs_f64() * 1e3,
        st.stats()
    );
    for q in &args[2..] {
        let mut walls = Vec::new();
        let mut last = None;
        for _ in 0..repeats.max(1) {
            let t = Instant::now();
            let r = st.query_range(q, 0, i64::MAX, 1, 100, Direction::Backward)?;
            walls.push(t.elapsed().as_secs_f64());
            last = Some(r);
        }
        walls.sort_by(f64::total_cmp);
        let Some(r) = last else { continue };
        let hits: usize = match &r.data {
            ResultData::Streams(s) => s.iter().map(|s| s.entries.len()).sum(),
            _ => 0,
        };
        println!(
            "| `{q}` | {:.1} ms median of {} ({} hits; {} of {} chunks scanned) |",
            walls[walls.len() / 2] * 1e3,
            walls.len(),
            hits,
            r.stats.chunks_scanned,
            r.stats.chunks_total
        );
    }
    Ok(())
}
