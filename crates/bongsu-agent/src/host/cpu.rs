//! `/proc/stat`: the cpu collector (per-CPU mode times) and the stat collector.

use crate::metrics::Metrics;
use crate::paths::{read_to_string, HostPaths};
use crate::{Error, Result};

/// Linux reports CPU times in USER_HZ ticks, which is 100 on every supported platform
/// (node_exporter's procfs library makes the same assumption).
pub(crate) const USER_HZ: f64 = 100.0;

const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// One `cpuN` line of /proc/stat, in ticks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CpuLine {
    pub(crate) cpu: String,
    /// user nice system idle iowait irq softirq steal guest guest_nice (missing = 0)
    pub(crate) ticks: [f64; 10],
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Stat {
    pub(crate) cpus: Vec<CpuLine>,
    pub(crate) boot_time: Option<f64>,
    pub(crate) ctxt: Option<f64>,
    pub(crate) intr: Option<f64>,
    pub(crate) processes: Option<f64>,
    pub(crate) procs_running: Option<f64>,
    pub(crate) procs_blocked: Option<f64>,
}

pub(crate) fn parse_stat(text: &str) -> Stat {
    let mut st = Stat::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let first = f.clone().next().and_then(|v| v.parse::<f64>().ok());
        match key {
            "cpu" => {}
            k if k.starts_with("cpu") => {
                let mut ticks = [0.0; 10];
                for (slot, v) in ticks.iter_mut().zip(f) {
                    *slot = v.parse().unwrap_or(0.0);
                }
                st.cpus.push(CpuLine {
                    cpu: k[3..].to_owned(),
                    ticks,
                });
            }
            "btime" => st.boot_time = first,
            "ctxt" => st.ctxt = first,
            "intr" => st.intr = first,
            "processes" => st.processes = first,
            "procs_running" => st.procs_running = first,
            "procs_blocked" => st.procs_blocked = first,
            _ => {}
        }
    }
    st
}

fn read_stat(paths: &HostPaths) -> Result<Stat> {
    let path = paths.proc("stat");
    let st = parse_stat(&read_to_string(&path)?);
    if st.cpus.is_empty() {
        return Err(Error::parse("/proc/stat", path, "no cpuN lines"));
    }
    Ok(st)
}

pub(crate) fn collect_cpu(paths: &HostPaths, out: &mut Metrics) -> Result<()> {
    let st = read_stat(paths)?;
    for c in &st.cpus {
        for (i, mode) in CPU_MODES.iter().enumerate() {
            out.counter(
                "node_cpu_seconds_total",
                "Seconds the CPUs spent in each mode.",
                &[("cpu", &c.cpu), ("mode", mode)],
                c.ticks[i] / USER_HZ,
            );
        }
        for (i, mode) in [(8, "user"), (9, "nice")] {
            out.counter(
                "node_cpu_guest_seconds_total",
                "Seconds the CPUs spent in guests (VMs) for each mode.",
                &[("cpu", &c.cpu), ("mode", mode)],
                c.ticks[i] / USER_HZ,
            );
        }
    }
    Ok(())
}

pub(crate) fn collect_stat(paths: &HostPaths, out: &mut Metrics) -> Result<()> {
    let st = read_stat(paths)?;
    let rows: [(&str, &str, Option<f64>, bool); 6] = [
        (
            "node_intr_total",
            "Total number of interrupts serviced.",
            st.intr,
            true,
        ),
        (
            "node_context_switches_total",
            "Total number of context switches.",
            st.ctxt,
            true,
        ),
        (
            "node_forks_total",
            "Total number of forks.",
            st.processes,
            true,
        ),
        (
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            st.boot_time,
            false,
        ),
        (
            "node_procs_running",
            "Number of processes in runnable state.",
            st.procs_running,
            false,
        ),
        (
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            st.procs_blocked,
            false,
        ),
    ];
    for (name, help, v, counter) in rows {
        if let Some(v) = v {
            if counter {
                out.counter(name, help, &[], v);
            } else {
                out.gauge(name, help, &[], v);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 2 30 4000 5 0 6 0 0 0\n\
cpu0 50 1 15 2000 3 0 3 0 7 1\n\
cpu1 50 1 15 2000 2 0 3 0\n\
intr 12345 1 2 3\n\
ctxt 999\n\
btime 1700000000\n\
processes 4242\n\
procs_running 3\n\
procs_blocked 1\n";

    #[test]
    fn parses_fixture() {
        let st = parse_stat(STAT);
        assert_eq!(st.cpus.len(), 2);
        assert_eq!(st.cpus[0].cpu, "0");
        assert_eq!(st.cpus[0].ticks[3], 2000.0);
        assert_eq!(st.cpus[0].ticks[8], 7.0);
        assert_eq!(st.cpus[1].ticks[9], 0.0);
        assert_eq!(st.intr, Some(12345.0));
        assert_eq!(st.boot_time, Some(1_700_000_000.0));
        assert_eq!(st.procs_blocked, Some(1.0));
    }
}
