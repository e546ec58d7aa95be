//! Measures the agent library's own footprint: runs full collection passes at a fixed
//! interval and prints peak RSS and the CPU share used.
//!
//! `cargo run --release -p bongsu-agent --example footprint -- [passes] [interval_ms]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bongsu_agent::{AgentConfig, Collector, SystemClock};

fn self_cpu_seconds() -> f64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let passes: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(30);
    let interval_ms: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let mut c = match Collector::new(&AgentConfig::default(), Arc::new(SystemClock)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot build the collector: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let cpu0 = self_cpu_seconds();
    let mut samples = 0;
    for i in 0..passes {
        samples = c.collect().len();
        let next = Duration::from_millis(interval_ms * u64::from(i + 1));
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = self_cpu_seconds() - cpu0;
    println!(
        "passes={passes} interval_ms={interval_ms} samples_per_pass={samples} \
         cpu_seconds={cpu:.3} cpu_share_of_one_core={:.4}% cpu_ms_per_pass={:.2} \
         rss_kib={} peak_rss_kib={}",
        100.0 * cpu / wall,
        1000.0 * cpu / f64::from(passes),
        status_kib("VmRSS:"),
        status_kib("VmHWM:")
    );
}
