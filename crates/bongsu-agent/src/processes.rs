//! Processes: counts by state (node_exporter's processes collector), the top N by CPU,
//! and watched processes with up/down and restart detection.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;

use crate::config::{ProcessWatch, ProcessesConfig};
use crate::host::cpu_ticks_per_second;
use crate::metrics::Metrics;
use crate::paths::{read_to_string, HostPaths};
use crate::{Error, Result};

/// The fields of `/proc/<pid>/stat` the agent uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub(crate) pid: i32,
    pub(crate) comm: String,
    pub(crate) state: char,
    pub(crate) ppid: i32,
    /// user + system time, in clock ticks
    pub(crate) cpu_ticks: u64,
    pub(crate) num_threads: u64,
    /// start time after boot, in clock ticks
    pub(crate) start_ticks: u64,
    pub(crate) rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name sits in parentheses and may
/// itself contain spaces and parentheses, so the fields are split after the last `)`.
pub(crate) fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_owned();
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        pid,
        comm,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        cpu_ticks: num(11)? + num(12)?,
        num_threads: num(17)?,
        start_ticks: num(19)?,
        rss_pages: num(21)?,
    })
}

enum Matcher {
    Comm(String),
    Cmdline(Regex),
    PidFile(std::path::PathBuf),
}

struct Watch {
    name: String,
    matcher: Matcher,
    /// (pid, start ticks) of the main process at the previous pass.
    last: Option<(i32, u64)>,
    seen: bool,
    restarts: u64,
}

/// Collects process metrics; keeps per-process CPU from the previous pass to rank the
/// top N by recent CPU use, and each watch's identity to detect restarts.
pub struct ProcessCollector {
    paths: HostPaths,
    top_n: usize,
    watches: Vec<Watch>,
    prev_cpu: HashMap<(i32, u64), u64>,
    page_size: f64,
}

impl std::fmt::Debug for ProcessCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCollector")
            .field("paths", &self.paths)
            .field("top_n", &self.top_n)
            .field("watches", &self.watches.len())
            .finish()
    }
}

impl ProcessCollector {
    pub fn new(paths: HostPaths, config: &ProcessesConfig) -> Result<Self> {
        let watches = config
            .watch
            .iter()
            .map(|w| {
                Ok(Watch {
                    name: w.name.clone(),
                    matcher: matcher(w)?,
                    last: None,
                    seen: false,
                    restarts: 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            paths,
            top_n: config.top_n,
            watches,
            prev_cpu: HashMap::new(),
            page_size: rustix::param::page_size() as f64,
        })
    }

    fn read_all(&self) -> Result<Vec<ProcStat>> {
        let dir = &self.paths.procfs;
        let entries = std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))?;
        let mut procs = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            // A process may exit between listing and reading: skip it.
            if let Ok(text) = std::fs::read_to_string(e.path().join("stat")) {
                if let Some(st) = parse_proc_stat(&text) {
                    procs.push(st);
                }
            }
        }
        procs.sort_by_key(|p| p.pid);
        Ok(procs)
    }

    fn cmdline(&self, pid: i32) -> String {
        let path = self.paths.procfs.join(pid.to_string()).join("cmdline");
        match std::fs::read(path) {
            Ok(raw) => {
                let parts: Vec<String> = raw
                    .split(|b| *b == 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                parts.join(" ")
            }
            Err(_) => String::new(),
        }
    }

    pub fn collect(&mut self, out: &mut Metrics) -> Result<()> {
        let procs = self.read_all()?;
        let hz = cpu_ticks_per_second();

        let mut states: std::collections::BTreeMap<String, u64> = Default::default();
        let mut threads = 0u64;
        for p in &procs {
            *states.entry(p.state.to_string()).or_default() += 1;
            threads += p.num_threads;
        }
        for (state, n) in &states {
            out.gauge(
                "node_processes_state",
                "Number of processes in each state.",
                &[("state", state)],
                *n as f64,
            );
        }
        out.gauge(
            "node_processes_threads",
            "Allocated threads in system",
            &[],
            threads as f64,
        );
        out.gauge(
            "node_processes_pids",
            "Number of PIDs",
            &[],
            procs.len() as f64,
        );
        if let Ok(v) = read_u64(&self.paths.proc("sys/kernel/pid_max")) {
            out.gauge(
                "node_processes_max_processes",
                "Number of max PIDs limit",
                &[],
                v as f64,
            );
        }
        if let Ok(v) = read_u64(&self.paths.proc("sys/kernel/threads-max")) {
            out.gauge(
                "node_processes_max_threads",
                "Limit of threads in the system",
                &[],
                v as f64,
            );
        }

        // Top N by CPU used since the previous pass (by total CPU on the first pass).
        let mut ranked: Vec<(u64, &ProcStat)> = procs
            .iter()
            .map(|p| {
                let prev = self.prev_cpu.get(&(p.pid, p.start_ticks)).copied();
                // A process new since the previous pass used all its CPU time recently.
                let delta = prev.map_or(p.cpu_ticks, |prev| p.cpu_ticks.saturating_sub(prev));
                (delta, p)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.pid.cmp(&b.1.pid)));
        for (_, p) in ranked.iter().take(self.top_n) {
            let pid = p.pid.to_string();
            let labels = [("pid", pid.as_str()), ("comm", p.comm.as_str())];
            out.counter(
                "bongsu_process_cpu_seconds_total",
                "User and system CPU time of one of the top processes by recent CPU use, in seconds.",
                &labels,
                p.cpu_ticks as f64 / hz,
            );
            out.gauge(
                "bongsu_process_resident_memory_bytes",
                "Resident memory of one of the top processes by recent CPU use, in bytes.",
                &labels,
                p.rss_pages as f64 * self.page_size,
            );
        }
        self.prev_cpu = procs
            .iter()
            .map(|p| ((p.pid, p.start_ticks), p.cpu_ticks))
            .collect();

        // Watched processes.
        let boot_time = crate::host::boot_time(&self.paths).unwrap_or(0.0);
        let needs_cmdline = self
            .watches
            .iter()
            .any(|w| matches!(w.matcher, Matcher::Cmdline(_)));
        let cmdlines: HashMap<i32, String> = if needs_cmdline {
            procs.iter().map(|p| (p.pid, self.cmdline(p.pid))).collect()
        } else {
            HashMap::new()
        };
        let page_size = self.page_size;
        for w in &mut self.watches {
            let matching: Vec<&ProcStat> = match &w.matcher {
                Matcher::Comm(c) => procs.iter().filter(|p| &p.comm == c).collect(),
                Matcher::Cmdline(re) => procs
                    .iter()
                    .filter(|p| cmdlines.get(&p.pid).is_some_and(|c| re.is_match(c)))
                    .collect(),
                Matcher::PidFile(path) => {
                    let pid = std::fs::read_to_string(path)
                        .ok()
                        .and_then(|t| t.trim().parse::<i32>().ok());
                    procs.iter().filter(|p| Some(p.pid) == pid).collect()
                }
            };
            // The main process is the oldest match (a parent starts before its workers).
            let main = matching
                .iter()
                .min_by_key(|p| (p.start_ticks, p.pid))
                .map(|p| (p.pid, p.start_ticks));
            match (w.last, main) {
                (Some(a), Some(b)) if a != b => w.restarts += 1,
                (None, Some(_)) if w.seen => w.restarts += 1,
                _ => {}
            }
            if main.is_some() {
                w.seen = true;
            }
            w.last = main;
            let l = [("name", w.name.as_str())];
            out.gauge(
                "bongsu_process_up",
                "Whether a process matching the watch runs (1) or not (0).",
                &l,
                if main.is_some() { 1.0 } else { 0.0 },
            );
            out.gauge(
                "bongsu_process_instances",
                "Number of processes matching the watch.",
                &l,
                matching.len() as f64,
            );
            out.counter(
                "bongsu_process_restarts_total",
                "Times the watched process was seen to restart (its main process changed) since the agent started.",
                &l,
                w.restarts as f64,
            );
            if let Some((_, start)) = main {
                out.gauge(
                    "bongsu_process_start_time_seconds",
                    "Start time of the watched main process since unix epoch in seconds.",
                    &l,
                    boot_time + start as f64 / hz,
                );
            }
            let cpu: u64 = matching.iter().map(|p| p.cpu_ticks).sum();
            let rss: u64 = matching.iter().map(|p| p.rss_pages).sum();
            out.counter(
                "bongsu_process_watched_cpu_seconds_total",
                "User and system CPU time of all processes matching the watch, in seconds.",
                &l,
                cpu as f64 / hz,
            );
            out.gauge(
                "bongsu_process_watched_resident_memory_bytes",
                "Resident memory of all processes matching the watch, in bytes.",
                &l,
                rss as f64 * page_size,
            );
        }
        Ok(())
    }
}

fn matcher(w: &ProcessWatch) -> Result<Matcher> {
    if let Some(c) = &w.comm {
        return Ok(Matcher::Comm(c.clone()));
    }
    if let Some(p) = &w.pid_file {
        return Ok(Matcher::PidFile(p.clone()));
    }
    if let Some(re) = &w.cmdline_regex {
        return Regex::new(re)
            .map(Matcher::Cmdline)
            .map_err(|source| Error::Regex {
                field: "processes.watch.cmdline_regex",
                pattern: re.clone(),
                source,
            });
    }
    Err(Error::Config(format!(
        "process watch {:?} needs one of comm, cmdline_regex, pid_file",
        w.name
    )))
}

fn read_u64(path: &Path) -> Result<u64> {
    let t = read_to_string(path)?;
    t.trim()
        .parse()
        .map_err(|_| Error::parse("number", path, t.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_tricky_comm() {
        let line = "1234 (my (weird) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 98765 1000000 512 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        let p = parse_proc_stat(line).unwrap();
        assert_eq!(p.pid, 1234);
        assert_eq!(p.comm, "my (weird) proc");
        assert_eq!(p.state, 'S');
        assert_eq!(p.ppid, 1);
        assert_eq!(p.cpu_ticks, 300);
        assert_eq!(p.num_threads, 3);
        assert_eq!(p.start_ticks, 98765);
        assert_eq!(p.rss_pages, 512);
        assert!(parse_proc_stat("garbage").is_none());
        assert!(parse_proc_stat("1 (x) S").is_none());
    }
}
