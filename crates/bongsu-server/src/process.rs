//! Process metrics read from `/proc/self`, with the names Prometheus client libraries use.
//! On systems without `/proc` the families are left out.

use crate::metrics::{MetricKind, MetricsSource, MetricsWriter};

/// Linux reports CPU times in clock ticks of `USER_HZ`, which is 100 on every Linux ABI.
const USER_HZ: f64 = 100.0;

/// Writes `process_*` metrics for this process.
#[derive(Debug, Default)]
pub struct ProcessMetrics;

/// What one read of `/proc` found.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<f64>,
    pub(crate) virtual_bytes: Option<f64>,
    pub(crate) open_fds: Option<f64>,
    pub(crate) max_fds: Option<f64>,
}

impl ProcessStats {
    pub(crate) fn read() -> ProcessStats {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let status = std::fs::read_to_string("/proc/self/status").ok();
        let boot = std::fs::read_to_string("/proc/stat").ok();
        let limits = std::fs::read_to_string("/proc/self/limits").ok();
        let fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as f64);
        let parsed_stat = stat.as_deref().and_then(parse_stat);
        let btime = boot.as_deref().and_then(parse_btime);
        ProcessStats {
            cpu_seconds: parsed_stat.map(|s| (s.utime + s.stime) as f64 / USER_HZ),
            start_time_seconds: match (parsed_stat, btime) {
                (Some(s), Some(b)) => Some(b as f64 + s.starttime as f64 / USER_HZ),
                _ => None,
            },
            resident_bytes: status
                .as_deref()
                .and_then(|s| status_kib(s, "VmRSS:"))
                .map(|k| k * 1024.0),
            virtual_bytes: status
                .as_deref()
                .and_then(|s| status_kib(s, "VmSize:"))
                .map(|k| k * 1024.0),
            // read_dir's own descriptor is open while counting.
            open_fds: fds.map(|n| (n - 1.0).max(0.0)),
            max_fds: limits.as_deref().and_then(parse_max_open_files),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stat {
    pub(crate) utime: u64,
    pub(crate) stime: u64,
    pub(crate) starttime: u64,
}

/// Parses `/proc/self/stat`. The command name (field 2) is in parentheses and may contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is f[n - 3].
    Some(Stat {
        utime: f.get(14 - 3)?.parse().ok()?,
        stime: f.get(15 - 3)?.parse().ok()?,
        starttime: f.get(22 - 3)?.parse().ok()?,
    })
}

fn parse_btime(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn status_kib(s: &str, key: &str) -> Option<f64> {
    let line = s.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

fn parse_max_open_files(s: &str) -> Option<f64> {
    let line = s.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    let soft = line.split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(f64::INFINITY);
    }
    soft.parse().ok()
}

impl MetricsSource for ProcessMetrics {
    fn collect(&self, out: &mut MetricsWriter) {
        let s = ProcessStats::read();
        let families: [(&str, &str, MetricKind, Option<f64>); 6] = [
            (
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                MetricKind::Counter,
                s.cpu_seconds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                MetricKind::Gauge,
                s.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                MetricKind::Gauge,
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                MetricKind::Gauge,
                s.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                MetricKind::Gauge,
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                MetricKind::Gauge,
                s.max_fds,
            ),
        ];
        for (name, help, kind, value) in families {
            if let Some(v) = value {
                out.family(name, help, kind);
                out.sample(name, &[], v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let line = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 \
                    98765 12345678 900 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                utime: 250,
                stime: 50,
                starttime: 98765
            }
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_status_limits_and_btime() {
        let status = "Name:\tbongsu\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(123_456.0));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 1048576              files\n";
        assert_eq!(parse_max_open_files(limits), Some(1024.0));
        assert_eq!(
            parse_btime("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn reads_this_process_on_linux() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        let s = ProcessStats::read();
        assert!(s.resident_bytes.unwrap() > 0.0);
        assert!(s.open_fds.unwrap() >= 3.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "{start}"
        );
    }
}
