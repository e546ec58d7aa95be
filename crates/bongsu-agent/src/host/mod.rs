//! Host collectors with node_exporter 1.5's metric names, labels, units and HELP texts.

mod basic;
mod cpu;
mod diskstats;
mod filesystem;
mod hwmon;
mod netdev;
mod timex;

use regex::Regex;

use crate::config::CollectorsConfig;
use crate::metrics::Metrics;
use crate::paths::HostPaths;
use crate::{Error, Result};

/// The names of the host collectors, as used in `collectors.disabled` and in the
/// `collector` label of `node_scrape_collector_success`.
pub const HOST_COLLECTORS: &[&str] = &[
    "cpu",
    "diskstats",
    "entropy",
    "filesystem",
    "hwmon",
    "loadavg",
    "meminfo",
    "netdev",
    "pressure",
    "stat",
    "time",
    "timex",
    "uname",
];

/// Runs the enabled host collectors over `/proc` and `/sys` under [`HostPaths`].
#[derive(Debug)]
pub struct HostCollector {
    paths: HostPaths,
    enabled: Vec<&'static str>,
    mount_exclude: Regex,
    fs_type_exclude: Regex,
    disk_exclude: Regex,
    netdev_exclude: Option<Regex>,
    stuck_mounts: filesystem::StuckMounts,
}

impl HostCollector {
    pub fn new(paths: HostPaths, config: &CollectorsConfig) -> Result<Self> {
        for name in &config.disabled {
            if !HOST_COLLECTORS.contains(&name.as_str()) {
                return Err(Error::Config(format!(
                    "unknown collector {name:?} in collectors.disabled: use one of {}",
                    HOST_COLLECTORS.join(", ")
                )));
            }
        }
        let enabled = HOST_COLLECTORS
            .iter()
            .copied()
            .filter(|c| !config.disabled.iter().any(|d| d == c))
            .collect();
        let re = |field: &'static str, pattern: &str| {
            Regex::new(pattern).map_err(|source| Error::Regex {
                field,
                pattern: pattern.to_owned(),
                source,
            })
        };
        Ok(Self {
            enabled,
            mount_exclude: re(
                "collectors.filesystem_mount_points_exclude",
                &config.filesystem_mount_points_exclude,
            )?,
            fs_type_exclude: re(
                "collectors.filesystem_fs_types_exclude",
                &config.filesystem_fs_types_exclude,
            )?,
            disk_exclude: re(
                "collectors.diskstats_device_exclude",
                &config.diskstats_device_exclude,
            )?,
            netdev_exclude: if config.netdev_device_exclude.is_empty() {
                None
            } else {
                Some(re(
                    "collectors.netdev_device_exclude",
                    &config.netdev_device_exclude,
                )?)
            },
            stuck_mounts: Default::default(),
            paths,
        })
    }

    pub fn paths(&self) -> &HostPaths {
        &self.paths
    }

    /// One pass of every enabled collector into `out`. A collector that fails reports
    /// `node_scrape_collector_success{collector} 0` and the pass goes on.
    pub fn collect(&self, out: &mut Metrics) {
        for name in &self.enabled {
            let ok = self.run(name, out).is_ok();
            out.gauge(
                "node_scrape_collector_success",
                "node_exporter: Whether a collector succeeded.",
                &[("collector", name)],
                if ok { 1.0 } else { 0.0 },
            );
        }
    }

    fn run(&self, name: &str, out: &mut Metrics) -> Result<()> {
        let p = &self.paths;
        match name {
            "cpu" => cpu::collect_cpu(p, out),
            "stat" => cpu::collect_stat(p, out),
            "meminfo" => basic::collect_meminfo(p, out),
            "loadavg" => basic::collect_loadavg(p, out),
            "pressure" => basic::collect_pressure(p, out),
            "entropy" => basic::collect_entropy(p, out),
            "time" => {
                basic::collect_time(out);
                Ok(())
            }
            "timex" => timex::collect(out),
            "uname" => basic::collect_uname(out),
            "filesystem" => filesystem::collect(
                p,
                &self.mount_exclude,
                &self.fs_type_exclude,
                &self.stuck_mounts,
                out,
            ),
            "diskstats" => diskstats::collect(p, &self.disk_exclude, out),
            "netdev" => netdev::collect(p, self.netdev_exclude.as_ref(), out),
            "hwmon" => hwmon::collect(p, out),
            _ => Ok(()),
        }
    }
}

/// Clock ticks per second of /proc CPU times (USER_HZ).
pub(crate) fn cpu_ticks_per_second() -> f64 {
    cpu::USER_HZ
}

/// The host's boot time (seconds since the epoch) from /proc/stat.
pub(crate) fn boot_time(paths: &HostPaths) -> Result<f64> {
    let path = paths.proc("stat");
    cpu::parse_stat(&crate::paths::read_to_string(&path)?)
        .boot_time
        .ok_or_else(|| Error::parse("/proc/stat", path, "no btime line"))
}

/// node_exporter's defaults for the filesystem and diskstats ignore lists (version 1.5).
pub(crate) mod defaults {
    pub(crate) const MOUNT_POINTS_EXCLUDE: &str =
        "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
    pub(crate) const FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";
    pub(crate) const DISK_DEVICE_EXCLUDE: &str =
        "^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";
}
