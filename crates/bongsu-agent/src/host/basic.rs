//! Small collectors: meminfo, loadavg, pressure (PSI), entropy, time, uname.

use std::sync::OnceLock;

use regex::Regex;

use crate::clock::{Clock, SystemClock};
use crate::metrics::Metrics;
use crate::paths::{read_to_string, HostPaths};
use crate::{Error, Result};

/// `/proc/meminfo` as node_exporter names it: `Active(anon)` becomes `Active_anon`, and
/// fields with a `kB` unit get `_bytes` appended and are multiplied by 1024.
pub(crate) fn parse_meminfo(text: &str) -> Vec<(String, f64)> {
    static PARENS: OnceLock<Option<Regex>> = OnceLock::new();
    let parens = PARENS.get_or_init(|| Regex::new(r"\((.*)\)").ok());
    let mut out = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 2 {
            continue;
        }
        let Some(key) = parts[0].strip_suffix(':') else {
            continue;
        };
        let Ok(mut v) = parts[1].parse::<f64>() else {
            continue;
        };
        let mut key = match parens {
            Some(re) => re.replace_all(key, "_${1}").into_owned(),
            None => key.to_owned(),
        };
        if parts.len() == 3 {
            v *= 1024.0;
            key.push_str("_bytes");
        }
        out.push((key, v));
    }
    out
}

pub(crate) fn collect_meminfo(paths: &HostPaths, out: &mut Metrics) -> Result<()> {
    let path = paths.proc("meminfo");
    let fields = parse_meminfo(&read_to_string(&path)?);
    if fields.is_empty() {
        return Err(Error::parse("/proc/meminfo", path, "no fields"));
    }
    for (k, v) in fields {
        out.gauge(
            &format!("node_memory_{k}"),
            &format!("Memory information field {k}."),
            &[],
            v,
        );
    }
    Ok(())
}

pub(crate) fn collect_loadavg(paths: &HostPaths, out: &mut Metrics) -> Result<()> {
    let path = paths.proc("loadavg");
    let text = read_to_string(&path)?;
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() != 3 {
        return Err(Error::parse(
            "/proc/loadavg",
            path,
            "expected three load averages",
        ));
    }
    out.gauge("node_load1", "1m load average.", &[], v[0]);
    out.gauge("node_load5", "5m load average.", &[], v[1]);
    out.gauge("node_load15", "15m load average.", &[], v[2]);
    Ok(())
}

/// The `total=` field (microseconds) of the `some` and `full` lines of a PSI file.
pub(crate) fn parse_psi(text: &str) -> (Option<f64>, Option<f64>) {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let kind = f.next();
        let total = f
            .find_map(|x| x.strip_prefix("total="))
            .and_then(|x| x.parse::<f64>().ok());
        match kind {
            Some("some") => some = total,
            Some("full") => full = total,
            _ => {}
        }
    }
    (some, full)
}

pub(crate) fn collect_pressure(paths: &HostPaths, out: &mut Metrics) -> Result<()> {
    let cpu = paths.proc("pressure/cpu");
    let (some, _) = parse_psi(&read_to_string(&cpu)?);
    if let Some(v) = some {
        out.counter(
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
            &[],
            v / 1e6,
        );
    }
    let (some, full) = parse_psi(&read_to_string(&paths.proc("pressure/io"))?);
    if let Some(v) = some {
        out.counter(
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
            &[],
            v / 1e6,
        );
    }
    if let Some(v) = full {
        out.counter(
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
            &[],
            v / 1e6,
        );
    }
    let (some, full) = parse_psi(&read_to_string(&paths.proc("pressure/memory"))?);
    if let Some(v) = some {
        out.counter(
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
            &[],
            v / 1e6,
        );
    }
    if let Some(v) = full {
        out.counter(
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
            &[],
            v / 1e6,
        );
    }
    Ok(())
}

fn read_number(path: &std::path::Path) -> Result<f64> {
    let text = read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|_| Error::parse("number", path, format!("{:?}", text.trim())))
}

pub(crate) fn collect_entropy(paths: &HostPaths, out: &mut Metrics) -> Result<()> {
    let avail = read_number(&paths.proc("sys/kernel/random/entropy_avail"))?;
    out.gauge(
        "node_entropy_available_bits",
        "Bits of available entropy.",
        &[],
        avail,
    );
    let pool = read_number(&paths.proc("sys/kernel/random/poolsize"))?;
    out.gauge(
        "node_entropy_pool_size_bits",
        "Bits of entropy pool.",
        &[],
        pool,
    );
    Ok(())
}

pub(crate) fn collect_time(out: &mut Metrics) {
    let now = SystemClock.now_ns() as f64 / 1e9;
    out.gauge(
        "node_time_seconds",
        "System time in seconds since epoch (1970).",
        &[],
        now,
    );
}

pub(crate) fn collect_uname(out: &mut Metrics) -> Result<()> {
    let u = rustix::system::uname();
    let s = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
    let (sysname, nodename, release, version, machine, domainname) = (
        s(u.sysname()),
        s(u.nodename()),
        s(u.release()),
        s(u.version()),
        s(u.machine()),
        s(u.domainname()),
    );
    out.gauge(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
        &[
            ("sysname", &sysname),
            ("release", &release),
            ("version", &version),
            ("machine", &machine),
            ("nodename", &nodename),
            ("domainname", &domainname),
        ],
        1.0,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_names_like_node_exporter() {
        let m = parse_meminfo(
            "MemTotal:       16000 kB\nActive(anon):     10 kB\nHugePages_Total:       0\nbogus\n",
        );
        assert_eq!(
            m,
            vec![
                ("MemTotal_bytes".to_string(), 16000.0 * 1024.0),
                ("Active_anon_bytes".to_string(), 10240.0),
                ("HugePages_Total".to_string(), 0.0),
            ]
        );
    }

    #[test]
    fn psi_totals() {
        let (s, f) = parse_psi(
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=99\n",
        );
        assert_eq!((s, f), (Some(1234.0), Some(99.0)));
    }
}
