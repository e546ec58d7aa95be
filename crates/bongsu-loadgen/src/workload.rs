//! The generated workload: node_exporter-like series per host with realistic value patterns,
//! computed in closed form from (seed, series, timestamp) so any time range can be generated
//! in any order and regenerated identically.

use std::f64::consts::TAU;

use bongsu_ingest::prompb;

use crate::error::{Error, Result};

/// One day in seconds: the period of the diurnal pattern.
const DAY_S: f64 = 86_400.0;

/// Settings of a generated workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Everything is derived from this seed.
    pub seed: u64,
    /// Number of hosts; each has [`SERIES_PER_HOST`] series (fewer with `max_series_per_host`).
    pub hosts: usize,
    /// Scrape interval in milliseconds (15 s by default).
    pub interval_ms: i64,
    /// Keep only the first N series of each host (for long-history workloads).
    pub max_series_per_host: Option<usize>,
    /// Value of the `job` label.
    pub job: String,
}

/// Series per host of the full workload.
pub const SERIES_PER_HOST: usize = 344;

impl Default for Workload {
    fn default() -> Self {
        Self {
            seed: 1,
            hosts: 1,
            interval_ms: 15_000,
            max_series_per_host: None,
            job: "node".to_owned(),
        }
    }
}

/// How one series' values evolve with time.
#[derive(Debug, Clone, PartialEq)]
enum Model {
    /// A value that never changes (sizes, totals, info-like series).
    Const(f64),
    /// A monotonic counter with a diurnal rate, per-scrape jitter and periodic resets.
    Counter(Counter),
    /// A classic histogram bucket: `floor(count * frac)` of the histogram's event counter.
    Bucket { counter: Counter, frac: f64 },
    /// A classic histogram `_sum`: the event counter times the mean observation.
    HistSum { counter: Counter, mean: f64 },
    /// A gauge: base + diurnal wave + linear trend + noise, clamped and quantized.
    Gauge(Gauge),
    /// Falls linearly from `hi` to `lo` over `period_ms`, then jumps back (a filling disk
    /// that is cleaned up).
    Sawtooth {
        hi: f64,
        lo: f64,
        period_ms: i64,
        phase_ms: i64,
        quantum: f64,
    },
    /// The start of the current reset period, in seconds (`node_boot_time_seconds`).
    BootTime { period_ms: i64, phase_ms: i64 },
    /// The sample's own timestamp in seconds (`node_time_seconds`).
    Time,
}

#[derive(Debug, Clone, PartialEq)]
struct Counter {
    /// Mean increase per second.
    rate: f64,
    /// Relative amplitude of the day/night rate change, `0..0.6`.
    diurnal: f64,
    /// Per-scrape jitter as a fraction of the smallest increase, `0..1`.
    jitter: f64,
    /// Values are multiples of this (1 for packet counts, 0.01 for CPU seconds).
    quantum: f64,
    /// The counter restarts from zero every `reset_period_ms` (a reboot, a restart).
    reset_period_ms: i64,
    reset_phase_ms: i64,
    /// Start value after each reset.
    start: f64,
    key: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Gauge {
    base: f64,
    amp: f64,
    phase: f64,
    /// Change per day.
    trend_per_day: f64,
    noise: f64,
    lo: f64,
    hi: f64,
    quantum: f64,
    key: u64,
}

/// One generated series: its label set (sorted by name, `__name__` included) and its model.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesDef {
    labels: Vec<(String, String)>,
    model: Model,
    /// Offset of this series' host's scrapes within the interval.
    offset_ms: i64,
}

impl SeriesDef {
    /// The label pairs, sorted by name.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The metric name.
    pub fn name(&self) -> &str {
        self.labels
            .iter()
            .find(|(n, _)| n == "__name__")
            .map_or("", |(_, v)| v.as_str())
    }

    /// The value of this series at `t_ms` (any millisecond, not only scrape times).
    pub fn value_at(&self, t_ms: i64, interval_ms: i64) -> f64 {
        let step = t_ms.div_euclid(interval_ms.max(1));
        match &self.model {
            Model::Const(v) => *v,
            Model::Counter(c) => quantize(c.raw(t_ms, step, interval_ms), c.quantum),
            Model::Bucket { counter, frac } => {
                (counter.raw(t_ms, step, interval_ms) * frac).floor()
            }
            Model::HistSum { counter, mean } => {
                (counter.raw(t_ms, step, interval_ms) * mean * 1000.0).round() / 1000.0
            }
            Model::Gauge(g) => g.value(t_ms, step),
            Model::Sawtooth {
                hi,
                lo,
                period_ms,
                phase_ms,
                quantum,
            } => {
                let p = (t_ms + phase_ms).rem_euclid(*period_ms) as f64 / *period_ms as f64;
                quantize(hi - (hi - lo) * p, *quantum)
            }
            Model::BootTime {
                period_ms,
                phase_ms,
            } => (epoch_start(t_ms, *period_ms, *phase_ms) / 1000) as f64,
            Model::Time => t_ms as f64 / 1000.0,
        }
    }

    /// Scrape timestamps of this series in `start_ms..end_ms`.
    pub fn timestamps(
        &self,
        start_ms: i64,
        end_ms: i64,
        interval_ms: i64,
    ) -> impl Iterator<Item = i64> {
        let first = ceil_div(start_ms - self.offset_ms, interval_ms) * interval_ms + self.offset_ms;
        (0..)
            .map(move |i| first + i * interval_ms)
            .take_while(move |t| *t < end_ms)
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

fn quantize(v: f64, q: f64) -> f64 {
    if q > 0.0 {
        let n = (v / q).floor();
        // Multiply by the inverse when it is exact-ish to keep decimal-looking values.
        if q < 1.0 {
            n / (1.0 / q).round()
        } else {
            n * q
        }
    } else {
        v
    }
}

fn epoch_start(t_ms: i64, period_ms: i64, phase_ms: i64) -> i64 {
    (t_ms + phase_ms).div_euclid(period_ms) * period_ms - phase_ms
}

/// splitmix64: a fast, well-mixed hash of one word.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in `0..1` from a key and a step.
fn unit(key: u64, step: i64) -> f64 {
    (mix(key ^ mix(step as u64)) >> 11) as f64 / (1u64 << 53) as f64
}

impl Counter {
    /// Integral of the rate from the epoch origin to `t_s` seconds.
    fn integral(&self, t_s: f64) -> f64 {
        self.rate * (t_s - self.diurnal * DAY_S / TAU * (TAU * t_s / DAY_S).cos())
    }

    /// The unquantized counter value: monotonic within a reset period, because the jitter
    /// term never exceeds the smallest increase between two scrapes.
    fn raw(&self, t_ms: i64, step: i64, interval_ms: i64) -> f64 {
        let e = epoch_start(t_ms, self.reset_period_ms, self.reset_phase_ms);
        let since = self.integral(t_ms as f64 / 1000.0) - self.integral(e as f64 / 1000.0);
        let min_inc = self.rate * (1.0 - self.diurnal) * interval_ms as f64 / 1000.0;
        (self.start + since + self.jitter * min_inc * unit(self.key, step)).max(0.0)
    }
}

impl Gauge {
    fn value(&self, t_ms: i64, step: i64) -> f64 {
        let t_s = t_ms as f64 / 1000.0;
        let v = self.base
            + self.amp * (TAU * t_s / DAY_S + self.phase).sin()
            + self.trend_per_day * ((t_s / DAY_S) % 30.0)
            + self.noise * (unit(self.key, step) - 0.5);
        quantize(v.clamp(self.lo, self.hi), self.quantum)
    }
}

/// Draws deterministic parameters for one series.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn f(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn i(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Builds the series of one host.
struct HostBuilder<'a> {
    w: &'a Workload,
    host: usize,
    instance: String,
    rng: Rng,
    offset_ms: i64,
    /// Reboot period and phase: node counters reset together.
    boot: (i64, i64),
    /// Process restart period and phase: the exporter's own and the app's counters.
    restart: (i64, i64),
    out: Vec<SeriesDef>,
}

impl HostBuilder<'_> {
    fn push(&mut self, name: &str, extra: &[(&str, &str)], model: Model) {
        let mut labels: Vec<(String, String)> = vec![
            ("__name__".to_owned(), name.to_owned()),
            ("instance".to_owned(), self.instance.clone()),
            ("job".to_owned(), self.w.job.clone()),
        ];
        labels.extend(
            extra
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
        );
        labels.sort();
        self.out.push(SeriesDef {
            labels,
            model,
            offset_ms: self.offset_ms,
        });
    }

    fn counter(&mut self, rate: f64, quantum: f64, restart: bool) -> Counter {
        let (p, ph) = if restart { self.restart } else { self.boot };
        let start = if restart {
            0.0
        } else {
            quantize(rate * self.rng.f(1_000.0, 200_000.0), quantum)
        };
        Counter {
            rate,
            diurnal: self.rng.f(0.0, 0.5),
            jitter: self.rng.f(0.2, 0.9),
            quantum,
            reset_period_ms: p,
            reset_phase_ms: ph,
            start,
            key: self.rng.next(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gauge(
        &mut self,
        base: f64,
        amp: f64,
        trend: f64,
        noise: f64,
        lo: f64,
        hi: f64,
        q: f64,
    ) -> Model {
        Model::Gauge(Gauge {
            base,
            amp,
            phase: self.rng.f(0.0, TAU),
            trend_per_day: trend,
            noise,
            lo,
            hi,
            quantum: q,
            key: self.rng.next(),
        })
    }

    fn build(mut self) -> Vec<SeriesDef> {
        let cpus = 4;
        let busy = self.rng.f(0.05, 0.7);
        // CPU: 4 cores x 8 modes.
        let modes: [(&str, f64); 8] = [
            ("idle", 1.0 - busy),
            ("user", busy * 0.6),
            ("system", busy * 0.25),
            ("iowait", busy * 0.08),
            ("irq", busy * 0.01),
            ("softirq", busy * 0.04),
            ("steal", busy * 0.01),
            ("nice", busy * 0.01),
        ];
        for c in 0..cpus {
            let cpu = c.to_string();
            for (mode, share) in modes {
                let r = share * self.rng.f(0.8, 1.2);
                let k = self.counter(r, 0.01, false);
                self.push(
                    "node_cpu_seconds_total",
                    &[("cpu", &cpu), ("mode", mode)],
                    Model::Counter(k),
                );
            }
            for mode in ["user", "nice"] {
                let k = self.counter(busy * 0.001, 0.01, false);
                self.push(
                    "node_cpu_guest_seconds_total",
                    &[("cpu", &cpu), ("mode", mode)],
                    Model::Counter(k),
                );
            }
            let f = self.gauge(2.4e9, 6e8, 0.0, 4e8, 8e8, 3.6e9, 1e6);
            self.push("node_cpu_scaling_frequency_hertz", &[("cpu", &cpu)], f);
        }
        // Load averages follow the busy share.
        for (name, noise) in [
            ("node_load1", 1.0),
            ("node_load5", 0.4),
            ("node_load15", 0.15),
        ] {
            let g = self.gauge(busy * 4.0, busy * 2.0, 0.0, noise, 0.0, 64.0, 0.01);
            self.push(name, &[], g);
        }
        // Memory.
        let total = (self.rng.i(4, 65) as f64) * 1024.0 * 1024.0 * 1024.0;
        self.push("node_memory_MemTotal_bytes", &[], Model::Const(total));
        self.push(
            "node_memory_SwapTotal_bytes",
            &[],
            Model::Const(total / 4.0),
        );
        for (name, share, amp) in [
            ("node_memory_MemFree_bytes", 0.15, 0.05),
            ("node_memory_MemAvailable_bytes", 0.45, 0.1),
            ("node_memory_Buffers_bytes", 0.02, 0.005),
            ("node_memory_Cached_bytes", 0.3, 0.05),
            ("node_memory_SwapFree_bytes", 0.24, 0.005),
            ("node_memory_Active_bytes", 0.4, 0.08),
            ("node_memory_Inactive_bytes", 0.2, 0.04),
            ("node_memory_Dirty_bytes", 0.001, 0.0005),
            ("node_memory_Slab_bytes", 0.03, 0.002),
            ("node_memory_Shmem_bytes", 0.01, 0.001),
        ] {
            let g = self.gauge(
                total * share,
                total * amp,
                total * 0.002,
                total * amp * 0.2,
                0.0,
                total,
                4096.0,
            );
            self.push(name, &[], g);
        }
        // Filesystems.
        for (dev, fstype, mp) in [
            ("/dev/vda1", "ext4", "/"),
            ("/dev/vdb1", "xfs", "/var/lib/data"),
            ("tmpfs", "tmpfs", "/run"),
            ("/dev/vda15", "vfat", "/boot/efi"),
        ] {
            let size = (self.rng.i(1, 2000) as f64) * 1024.0 * 1024.0 * 1024.0;
            let l = [("device", dev), ("fstype", fstype), ("mountpoint", mp)];
            self.push("node_filesystem_size_bytes", &l, Model::Const(size));
            let saw = Model::Sawtooth {
                hi: size * self.rng.f(0.5, 0.9),
                lo: size * self.rng.f(0.02, 0.3),
                period_ms: self.rng.i(2 * HOUR_MS, 20 * DAY_MS),
                phase_ms: self.rng.i(0, 20 * DAY_MS),
                quantum: 4096.0,
            };
            self.push("node_filesystem_avail_bytes", &l, saw.clone());
            let free = match saw {
                Model::Sawtooth {
                    hi,
                    lo,
                    period_ms,
                    phase_ms,
                    quantum,
                } => Model::Sawtooth {
                    hi: hi + size * 0.05,
                    lo: lo + size * 0.05,
                    period_ms,
                    phase_ms,
                    quantum,
                },
                other => other,
            };
            self.push("node_filesystem_free_bytes", &l, free);
            let files = (size / 16384.0).floor();
            self.push("node_filesystem_files", &l, Model::Const(files));
            let ff = self.gauge(
                files * 0.9,
                0.0,
                -files * 0.0001,
                files * 0.0001,
                0.0,
                files,
                1.0,
            );
            self.push("node_filesystem_files_free", &l, ff);
            self.push("node_filesystem_readonly", &l, Model::Const(0.0));
            self.push("node_filesystem_device_error", &l, Model::Const(0.0));
        }
        // Disks.
        for dev in ["vda", "vdb", "sr0"] {
            let scale = if dev == "sr0" {
                0.001
            } else {
                self.rng.f(0.1, 10.0)
            };
            for (name, rate, q) in [
                ("node_disk_reads_completed_total", 20.0, 1.0),
                ("node_disk_writes_completed_total", 60.0, 1.0),
                ("node_disk_read_bytes_total", 20.0 * 16384.0, 512.0),
                ("node_disk_written_bytes_total", 60.0 * 8192.0, 512.0),
                ("node_disk_io_time_seconds_total", 0.05, 0.001),
                ("node_disk_read_time_seconds_total", 0.02, 0.001),
                ("node_disk_write_time_seconds_total", 0.08, 0.001),
                ("node_disk_reads_merged_total", 2.0, 1.0),
                ("node_disk_writes_merged_total", 10.0, 1.0),
            ] {
                let k = self.counter(rate * scale, q, false);
                self.push(name, &[("device", dev)], Model::Counter(k));
            }
            let g = self.gauge(0.0, 0.0, 0.0, 2.0 * scale.min(1.0), 0.0, 64.0, 1.0);
            self.push("node_disk_io_now", &[("device", dev)], g);
        }
        // Network.
        for dev in ["eth0", "eth1", "lo"] {
            let scale = self.rng.f(0.01, 5.0);
            for (name, rate, q) in [
                ("node_network_receive_bytes_total", 1e5, 1.0),
                ("node_network_transmit_bytes_total", 6e4, 1.0),
                ("node_network_receive_packets_total", 150.0, 1.0),
                ("node_network_transmit_packets_total", 120.0, 1.0),
                ("node_network_receive_errs_total", 0.001, 1.0),
                ("node_network_transmit_errs_total", 0.0005, 1.0),
                ("node_network_receive_drop_total", 0.01, 1.0),
                ("node_network_transmit_drop_total", 0.002, 1.0),
            ] {
                let k = self.counter(rate * scale, q, false);
                self.push(name, &[("device", dev)], Model::Counter(k));
            }
            self.push("node_network_up", &[("device", dev)], Model::Const(1.0));
            let mtu = if dev == "lo" { 65536.0 } else { 1500.0 };
            self.push(
                "node_network_mtu_bytes",
                &[("device", dev)],
                Model::Const(mtu),
            );
        }
        // An application behind the exporter: requests and a classic latency histogram.
        const LE: [&str; 11] = [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
        ];
        for handler in ["/api/v1/query", "/api/v1/write", "/login", "/static"] {
            let rps = self.rng.f(0.5, 80.0);
            let reqs = self.counter(rps, 1.0, true);
            // A log-normal-ish latency: median m, the cdf evaluated at each bucket bound.
            let median = self.rng.f(0.01, 0.4);
            for le in LE {
                let bound: f64 = le.parse().unwrap_or(f64::INFINITY);
                let frac = if bound.is_infinite() {
                    1.0
                } else {
                    let z = (bound / median).ln() / 0.9;
                    0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2))
                };
                self.push(
                    "http_request_duration_seconds_bucket",
                    &[("handler", handler), ("le", le)],
                    Model::Bucket {
                        counter: reqs.clone(),
                        frac,
                    },
                );
            }
            self.push(
                "http_request_duration_seconds_count",
                &[("handler", handler)],
                Model::Bucket {
                    counter: reqs.clone(),
                    frac: 1.0,
                },
            );
            self.push(
                "http_request_duration_seconds_sum",
                &[("handler", handler)],
                Model::HistSum {
                    counter: reqs.clone(),
                    mean: median * 1.5,
                },
            );
            for (code, share) in [("200", 0.95), ("404", 0.04), ("500", 0.01)] {
                let mut k = reqs.clone();
                k.rate *= share;
                k.key = self.rng.next();
                self.push(
                    "http_requests_total",
                    &[("code", code), ("handler", handler)],
                    Model::Counter(k),
                );
            }
        }
        // Kernel and process counters.
        for (name, rate, q, restart) in [
            ("node_context_switches_total", 3000.0, 1.0, false),
            ("node_intr_total", 2000.0, 1.0, false),
            ("node_forks_total", 5.0, 1.0, false),
            ("process_cpu_seconds_total", 0.01, 0.01, true),
        ] {
            let r = rate * self.rng.f(0.5, 2.0);
            let k = self.counter(r, q, restart);
            self.push(name, &[], Model::Counter(k));
        }
        for (name, base, noise) in [
            ("node_procs_running", 2.0, 3.0),
            ("node_procs_blocked", 0.0, 1.0),
            ("process_open_fds", 10.0, 2.0),
            ("node_entropy_available_bits", 256.0, 10.0),
            ("node_filefd_allocated", 2000.0, 50.0),
        ] {
            let g = self.gauge(base, 0.0, 0.0, noise, 0.0, 1e9, 1.0);
            self.push(name, &[], g);
        }
        let rss = self.gauge(2e7, 1e6, 1e5, 1e6, 1e6, 1e9, 4096.0);
        self.push("process_resident_memory_bytes", &[], rss);
        self.push(
            "node_filefd_maximum",
            &[],
            Model::Const(9.223_372_036_854_776e18),
        );
        let boot = Model::BootTime {
            period_ms: self.boot.0,
            phase_ms: self.boot.1,
        };
        self.push("node_boot_time_seconds", &[], boot);
        self.push("node_time_seconds", &[], Model::Time);
        self.push("up", &[], Model::Const(1.0));
        self.push(
            "node_uname_info",
            &[
                ("machine", "x86_64"),
                ("nodename", &format!("host-{}", self.host)),
                ("release", "6.1.0-13-amd64"),
                ("sysname", "Linux"),
            ],
            Model::Const(1.0),
        );
        // vmstat / netstat / sockstat counters and gauges.
        for (i, name) in [
            "node_vmstat_pgfault",
            "node_vmstat_pgmajfault",
            "node_vmstat_pgpgin",
            "node_vmstat_pgpgout",
            "node_vmstat_pswpin",
            "node_vmstat_pswpout",
            "node_vmstat_oom_kill",
            "node_netstat_Tcp_ActiveOpens",
            "node_netstat_Tcp_PassiveOpens",
            "node_netstat_Tcp_RetransSegs",
            "node_netstat_Tcp_InSegs",
            "node_netstat_Tcp_OutSegs",
            "node_netstat_Udp_InDatagrams",
            "node_netstat_Udp_OutDatagrams",
            "node_netstat_TcpExt_ListenDrops",
            "node_netstat_TcpExt_SyncookiesSent",
        ]
        .into_iter()
        .enumerate()
        {
            let rate = 10f64.powf(self.rng.f(-3.0, 3.5)) * if i % 7 == 6 { 1e-4 } else { 1.0 };
            let k = self.counter(rate, 1.0, false);
            self.push(name, &[], Model::Counter(k));
        }
        for name in [
            "node_sockstat_TCP_inuse",
            "node_sockstat_TCP_tw",
            "node_sockstat_UDP_inuse",
            "node_sockstat_sockets_used",
            "node_nf_conntrack_entries",
            "node_timex_offset_seconds",
        ] {
            let base = self.rng.f(5.0, 500.0);
            let g = self.gauge(base, base * 0.3, 0.0, base * 0.1, 0.0, 1e9, 1.0);
            self.push(name, &[], g);
        }
        // Temperatures.
        for (chip, sensor) in [
            ("platform_coretemp_0", "temp1"),
            ("platform_coretemp_0", "temp2"),
            ("platform_coretemp_0", "temp3"),
            ("platform_coretemp_0", "temp4"),
            ("pci0000:00_0000:00:03_0", "temp1"),
            ("thermal_thermal_zone0", "temp0"),
        ] {
            let base = self.rng.f(35.0, 60.0);
            let g = self.gauge(base, 6.0, 0.0, 3.0, 20.0, 105.0, 1.0);
            self.push(
                "node_hwmon_temp_celsius",
                &[("chip", chip), ("sensor", sensor)],
                g,
            );
        }
        // The exporter's self-report per collector.
        for collector in [
            "arp",
            "bcache",
            "bonding",
            "btrfs",
            "conntrack",
            "cpu",
            "cpufreq",
            "diskstats",
            "dmi",
            "edac",
            "entropy",
            "fibrechannel",
            "filefd",
            "filesystem",
            "hwmon",
            "infiniband",
            "ipvs",
            "loadavg",
            "mdadm",
            "meminfo",
            "netclass",
            "netdev",
            "netstat",
            "nfs",
            "nfsd",
            "nvme",
            "os",
            "powersupplyclass",
            "pressure",
            "rapl",
            "schedstat",
            "selinux",
            "sockstat",
            "softnet",
            "stat",
            "tapestats",
            "textfile",
            "thermal_zone",
            "time",
            "timex",
            "udp_queues",
            "uname",
            "vmstat",
            "xfs",
            "zfs",
        ] {
            let g = self.gauge(0.002, 0.0, 0.0, 0.004, 0.0, 10.0, 1e-6);
            self.push(
                "node_scrape_collector_duration_seconds",
                &[("collector", collector)],
                g,
            );
            self.push(
                "node_scrape_collector_success",
                &[("collector", collector)],
                Model::Const(1.0),
            );
        }
        self.out
    }
}

/// The error function (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7): enough for bucket shares.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

impl Workload {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.interval_ms <= 0 {
            return Err(Error::Config(format!(
                "interval must be positive (got {} ms)",
                self.interval_ms
            )));
        }
        if self.hosts == 0 {
            return Err(Error::Config("hosts must be at least 1".to_owned()));
        }
        Ok(())
    }

    /// The series of host number `host` (0-based).
    pub fn host_series(&self, host: usize) -> Vec<SeriesDef> {
        let mut rng = Rng(mix(self.seed ^ mix(host as u64 + 1)));
        let interval = self.interval_ms.max(1);
        let offset_ms = rng.i(0, interval);
        let boot = (rng.i(3 * DAY_MS, 30 * DAY_MS), rng.i(0, 30 * DAY_MS));
        // A third of the hosts restart their application every 20-40 minutes, so short
        // windows see counter resets; the others every few days.
        let restart = if host.is_multiple_of(3) {
            (rng.i(20 * MIN_MS, 40 * MIN_MS), rng.i(0, HOUR_MS))
        } else {
            (rng.i(2 * DAY_MS, 10 * DAY_MS), rng.i(0, 10 * DAY_MS))
        };
        let b = HostBuilder {
            w: self,
            host,
            instance: format!("host-{host:05}:9100"),
            rng,
            offset_ms,
            boot,
            restart,
            out: Vec::with_capacity(SERIES_PER_HOST),
        };
        let mut s = b.build();
        if let Some(n) = self.max_series_per_host {
            s.truncate(n);
        }
        s
    }

    /// Every series of the workload, host by host.
    pub fn series(&self) -> Vec<SeriesDef> {
        (0..self.hosts).flat_map(|h| self.host_series(h)).collect()
    }

    /// Number of series of the workload.
    pub fn series_count(&self) -> usize {
        let per = self.host_series(0).len();
        per * self.hosts
    }

    /// The remote_write requests that carry every sample in `start_ms..end_ms`, in time
    /// order: each request holds `hosts_per_request` hosts' series over `steps_per_request`
    /// scrape intervals, so a receiver that only accepts recent samples (Prometheus's head)
    /// sees time advance steadily.
    pub fn requests(
        &self,
        start_ms: i64,
        end_ms: i64,
        hosts_per_request: usize,
        steps_per_request: usize,
    ) -> Requests<'_> {
        Requests {
            w: self,
            hosts: (0..self.hosts).map(|h| self.host_series(h)).collect(),
            start_ms,
            end_ms,
            hosts_per_request: hosts_per_request.max(1),
            window_ms: self.interval_ms.max(1) * steps_per_request.max(1) as i64,
            next_window: start_ms,
            next_host: 0,
        }
    }
}

/// Iterator over the remote_write requests of a time range (see [`Workload::requests`]).
pub struct Requests<'a> {
    w: &'a Workload,
    hosts: Vec<Vec<SeriesDef>>,
    start_ms: i64,
    end_ms: i64,
    hosts_per_request: usize,
    window_ms: i64,
    next_window: i64,
    next_host: usize,
}

impl Requests<'_> {
    /// How many requests the iterator yields in total.
    pub fn len_hint(&self) -> usize {
        let windows = ceil_div(self.end_ms - self.start_ms, self.window_ms).max(0) as usize;
        windows * self.hosts.len().div_ceil(self.hosts_per_request)
    }
}

impl Requests<'_> {
    /// The next request with its lane: the index of its group of hosts. Requests of one
    /// lane carry the same series, so they must reach a receiver in order.
    pub fn next_with_lane(&mut self) -> Option<(usize, prompb::WriteRequest)> {
        loop {
            let lane = self.next_host / self.hosts_per_request;
            let req = self.next_raw()?;
            if let Some(r) = req {
                return Some((lane, r));
            }
        }
    }

    fn next_raw(&mut self) -> Option<Option<prompb::WriteRequest>> {
        if self.next_window >= self.end_ms {
            return None;
        }
        let w0 = self.next_window;
        let w1 = (w0 + self.window_ms).min(self.end_ms);
        let h0 = self.next_host;
        let h1 = (h0 + self.hosts_per_request).min(self.hosts.len());
        if h1 >= self.hosts.len() {
            self.next_host = 0;
            self.next_window = w1;
        } else {
            self.next_host = h1;
        }
        let mut req = prompb::WriteRequest::default();
        for series in &self.hosts[h0..h1] {
            for s in series {
                let samples: Vec<prompb::Sample> = s
                    .timestamps(w0, w1, self.w.interval_ms)
                    .map(|t| prompb::Sample {
                        value: s.value_at(t, self.w.interval_ms),
                        timestamp: t,
                    })
                    .collect();
                if samples.is_empty() {
                    continue;
                }
                req.timeseries.push(prompb::TimeSeries {
                    labels: s
                        .labels
                        .iter()
                        .map(|(n, v)| prompb::Label {
                            name: n.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    samples,
                    exemplars: Vec::new(),
                    histograms: Vec::new(),
                });
            }
        }
        Some((!req.timeseries.is_empty()).then_some(req))
    }
}

impl Iterator for Requests<'_> {
    type Item = prompb::WriteRequest;

    fn next(&mut self) -> Option<prompb::WriteRequest> {
        self.next_with_lane().map(|(_, r)| r)
    }
}

/// Encodes a request as a remote_write 1.0 body: protobuf, then snappy block format.
pub fn encode_body(req: &prompb::WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(req);
    // Compressing a Vec we own cannot fail except for inputs over snappy's 4 GiB limit,
    // which a request of this generator never reaches; fall back to an empty body.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Number of samples in a request.
pub fn sample_count(req: &prompb::WriteRequest) -> usize {
    req.timeseries.iter().map(|t| t.samples.len()).sum()
}
