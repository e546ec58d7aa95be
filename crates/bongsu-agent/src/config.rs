//! The `[agent]` section of `agent.toml`; every key is documented in `docs/agent.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::host::defaults;
use crate::paths::HostPaths;
use crate::{Error, Result};

/// The `[agent]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Seconds between metric collection passes.
    pub interval_seconds: u64,
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
    pub collectors: CollectorsConfig,
    pub processes: ProcessesConfig,
    pub ports: PortsConfig,
    pub inventory: InventoryConfig,
    pub tailer: TailerConfig,
    pub logs: Vec<LogSourceConfig>,
    pub journal: JournalConfig,
    pub checks: Vec<CheckConfig>,
    pub shipping: ShippingConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let p = HostPaths::host();
        Self {
            interval_seconds: 10,
            procfs: p.procfs,
            sysfs: p.sysfs,
            rootfs: p.rootfs,
            collectors: CollectorsConfig::default(),
            processes: ProcessesConfig::default(),
            ports: PortsConfig::default(),
            inventory: InventoryConfig::default(),
            tailer: TailerConfig::default(),
            logs: Vec::new(),
            journal: JournalConfig::default(),
            checks: Vec::new(),
            shipping: ShippingConfig::default(),
        }
    }
}

impl AgentConfig {
    /// Parses the `[agent]` table of an `agent.toml` document (other top-level tables
    /// belong to other parts of bongsu and are left alone), then validates it.
    pub fn from_toml(text: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            agent: AgentConfig,
        }
        let doc: Doc = toml::from_str(text)?;
        doc.agent.validate()?;
        Ok(doc.agent)
    }

    pub fn host_paths(&self) -> HostPaths {
        HostPaths {
            procfs: self.procfs.clone(),
            sysfs: self.sysfs.clone(),
            rootfs: self.rootfs.clone(),
        }
    }

    /// Checks what serde cannot: value ranges, exactly one matcher per watch, valid regexes.
    pub fn validate(&self) -> Result<()> {
        if self.interval_seconds == 0 {
            return Err(Error::Config(
                "agent.interval_seconds must be at least 1".into(),
            ));
        }
        let s = &self.shipping;
        if s.queue_segment_bytes == 0 || s.queue_segment_bytes.saturating_mul(2) > s.queue_max_bytes
        {
            return Err(Error::Config(
                "agent.shipping.queue_segment_bytes must be at least 1 and at most half of queue_max_bytes".into(),
            ));
        }
        if s.max_batch_bytes == 0
            || s.backoff_min_ms == 0
            || s.backoff_max_ms < s.backoff_min_ms
            || !(1..=64).contains(&s.max_inflight)
        {
            return Err(Error::Config(
                "agent.shipping: max_batch_bytes and backoff_min_ms must be at least 1, backoff_max_ms at least backoff_min_ms, max_inflight 1 to 64".into(),
            ));
        }
        for w in &self.processes.watch {
            let n = [
                w.comm.is_some(),
                w.cmdline_regex.is_some(),
                w.pid_file.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                return Err(Error::Config(format!(
                    "process watch {:?} needs exactly one of comm, cmdline_regex, pid_file",
                    w.name
                )));
            }
        }
        for l in &self.logs {
            if l.paths.is_empty() {
                return Err(Error::Config(
                    "every [[agent.logs]] needs at least one path glob".into(),
                ));
            }
            if l.max_line_bytes < 16 {
                return Err(Error::Config(
                    "agent.logs.max_line_bytes must be at least 16".into(),
                ));
            }
        }
        for c in &self.checks {
            let n = [c.tcp.is_some(), c.http.is_some(), c.dns.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if n != 1 {
                return Err(Error::Config(format!(
                    "check {:?} needs exactly one of tcp, http, dns",
                    c.name
                )));
            }
        }
        Ok(())
    }
}

/// `[agent.shipping]`: the disk queue and the shipper.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShippingConfig {
    /// Directory of the on-disk queue.
    pub queue_dir: PathBuf,
    /// Most bytes the queue keeps; beyond it the oldest batches are dropped and counted.
    pub queue_max_bytes: u64,
    /// Size of one queue segment file.
    pub queue_segment_bytes: u64,
    /// A batch is queued once its log lines reach this many bytes (keep it well under the
    /// server's `stream.max_message_bytes`).
    pub max_batch_bytes: usize,
    /// Log lines wait at most this long before they are queued.
    pub linger_ms: u64,
    /// First retry delay after a failed push; doubles up to `backoff_max_ms`, with jitter.
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Time limit of one push.
    pub timeout_ms: u64,
    /// zstd level of batch bodies.
    pub compression_level: i32,
    /// Most pushes in flight at once; each after the first names the batch it follows, and
    /// the server applies them in order. `1` ships one batch at a time.
    pub max_inflight: usize,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            queue_dir: PathBuf::from("/var/lib/bongsu/agent/queue"),
            queue_max_bytes: 256 << 20,
            queue_segment_bytes: 16 << 20,
            max_batch_bytes: 512 << 10,
            linger_ms: 1000,
            backoff_min_ms: 500,
            backoff_max_ms: 30_000,
            timeout_ms: 30_000,
            compression_level: 1,
            max_inflight: 4,
        }
    }
}

/// `[agent.collectors]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorsConfig {
    /// Host collectors to skip, by name (`cpu`, `diskstats`, …).
    pub disabled: Vec<String>,
    pub filesystem_mount_points_exclude: String,
    pub filesystem_fs_types_exclude: String,
    pub diskstats_device_exclude: String,
    /// Regex of network devices to skip; empty skips none (node_exporter's default).
    pub netdev_device_exclude: String,
}

impl Default for CollectorsConfig {
    fn default() -> Self {
        Self {
            disabled: Vec::new(),
            filesystem_mount_points_exclude: defaults::MOUNT_POINTS_EXCLUDE.into(),
            filesystem_fs_types_exclude: defaults::FS_TYPES_EXCLUDE.into(),
            diskstats_device_exclude: defaults::DISK_DEVICE_EXCLUDE.into(),
            netdev_device_exclude: String::new(),
        }
    }
}

/// `[agent.processes]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessesConfig {
    /// How many processes, ranked by CPU used since the previous pass, get their own series.
    pub top_n: usize,
    pub watch: Vec<ProcessWatch>,
}

impl Default for ProcessesConfig {
    fn default() -> Self {
        Self {
            top_n: 10,
            watch: Vec::new(),
        }
    }
}

/// `[[agent.processes.watch]]`: one watched process, matched by exactly one of `comm`
/// (the kernel's process name, exact), `cmdline_regex`, or `pid_file`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessWatch {
    pub name: String,
    pub comm: Option<String>,
    pub cmdline_regex: Option<String>,
    pub pid_file: Option<PathBuf>,
}

/// `[agent.ports]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortsConfig {
    /// Report every listening socket as `bongsu_port_listening`.
    pub listening: bool,
    pub watch: Vec<PortWatch>,
}

impl Default for PortsConfig {
    fn default() -> Self {
        Self {
            listening: true,
            watch: Vec::new(),
        }
    }
}

/// Transport protocol of a watched port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProto {
    Tcp,
    Udp,
}

/// `[[agent.ports.watch]]`: up when something listens on `port` (IPv4 or IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortWatch {
    pub name: String,
    pub proto: PortProto,
    pub port: u16,
}

/// `[agent.inventory]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    pub enabled: bool,
    /// List installed packages (dpkg status file; `rpm -qa` when `rpm` exists).
    pub packages: bool,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            packages: true,
        }
    }
}

/// Where to start in a file the tailer has no checkpoint for, at its first scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// `[agent.tailer]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailerConfig {
    pub checkpoint_path: PathBuf,
    pub poll_interval_ms: u64,
    /// For files present at the very first scan with no checkpoint; files that appear
    /// later are always read from their beginning.
    pub read_from: ReadFrom,
    /// Bytes hashed at the start of a file to recognise it across renames and restarts.
    pub fingerprint_bytes: u32,
    /// Upper bound on bytes read from one file per poll (keeps memory bounded).
    pub max_read_bytes_per_poll: usize,
}

impl Default for TailerConfig {
    fn default() -> Self {
        Self {
            checkpoint_path: PathBuf::from("/var/lib/bongsu/agent/tail.checkpoint"),
            poll_interval_ms: 250,
            read_from: ReadFrom::Beginning,
            fingerprint_bytes: 256,
            max_read_bytes_per_poll: 1 << 20,
        }
    }
}

/// `[[agent.logs]]`: one log source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSourceConfig {
    /// Absolute path globs (`*`, `?` and `[...]` within a path component).
    pub paths: Vec<String>,
    /// Globs of files to leave out (e.g. `*.gz`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Stream labels for every line of this source (`filename` is added).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// Longer lines are cut to this many bytes and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
}

fn default_max_line_bytes() -> usize {
    256 * 1024
}

/// `[agent.journal]`: the systemd journal through `journalctl` when it exists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    pub enabled: bool,
    /// Only these units (`journalctl --unit`); empty means all.
    pub units: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Where the last shipped entry's cursor is kept.
    pub cursor_path: PathBuf,
    /// Where to start without a saved cursor.
    pub read_from: ReadFrom,
    pub max_line_bytes: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            units: Vec::new(),
            labels: BTreeMap::new(),
            cursor_path: PathBuf::from("/var/lib/bongsu/agent/journal.cursor"),
            read_from: ReadFrom::End,
            max_line_bytes: default_max_line_bytes(),
        }
    }
}

/// Joins continuation lines to the line that starts an event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// A line matching this regex starts a new event; others continue the current one.
    pub start_pattern: String,
    /// An event with no new line for this long is emitted as it is.
    #[serde(default = "default_flush_ms")]
    pub flush_timeout_ms: u64,
    /// An event is emitted once it has this many lines.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
}

fn default_flush_ms() -> u64 {
    1000
}

fn default_max_lines() -> usize {
    500
}

/// `[[agent.checks]]`: one service check; exactly one of `tcp`, `http`, `dns`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub name: String,
    #[serde(default = "default_check_interval")]
    pub interval_seconds: u64,
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u64,
    pub tcp: Option<TcpCheck>,
    pub http: Option<HttpCheck>,
    pub dns: Option<DnsCheck>,
}

fn default_check_interval() -> u64 {
    30
}

fn default_check_timeout() -> u64 {
    5000
}

/// TCP connect to `target` (`host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpCheck {
    pub target: String,
}

/// An HTTP(S) request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Accepted status codes; empty means any 2xx.
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    /// The body must match this regex.
    #[serde(default)]
    pub body_regex: Option<String>,
    /// The body must not match this regex.
    #[serde(default)]
    pub body_not_regex: Option<String>,
    /// A PEM file with extra trusted CA certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    #[serde(default = "default_follow")]
    pub follow_redirects: bool,
    /// Bodies beyond this size fail the check.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

fn default_method() -> String {
    "GET".into()
}

fn default_follow() -> bool {
    true
}

fn default_max_body() -> usize {
    1 << 20
}

/// Resolves `name` with the host's resolver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCheck {
    pub name: String,
    /// `ipv4`, `ipv6` or `any` answers count.
    #[serde(default)]
    pub family: DnsFamily,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DnsFamily {
    #[default]
    Any,
    Ipv4,
    Ipv6,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_section() {
        let text = r#"
[server]
url = "ignored by the agent"

[agent]
interval_seconds = 15
procfs = "/host/proc"

[agent.collectors]
disabled = ["hwmon"]

[agent.processes]
top_n = 5
[[agent.processes.watch]]
name = "sshd"
comm = "sshd"

[[agent.ports.watch]]
name = "ssh"
proto = "tcp"
port = 22

[agent.tailer]
checkpoint_path = "/tmp/cp"
read_from = "end"

[[agent.logs]]
paths = ["/var/log/app/*.log"]
labels = { app = "shop" }
multiline = { start_pattern = '^\d{4}-', flush_timeout_ms = 500 }

[[agent.checks]]
name = "web"
http = { url = "http://127.0.0.1:8080/", body_regex = "ok" }
"#;
        let c = AgentConfig::from_toml(text).unwrap();
        assert_eq!(c.interval_seconds, 15);
        assert_eq!(c.procfs, PathBuf::from("/host/proc"));
        assert_eq!(c.sysfs, PathBuf::from("/sys"));
        assert_eq!(c.processes.watch[0].comm.as_deref(), Some("sshd"));
        assert_eq!(c.ports.watch[0].proto, PortProto::Tcp);
        assert_eq!(c.tailer.read_from, ReadFrom::End);
        assert_eq!(c.logs[0].max_line_bytes, 256 * 1024);
        assert_eq!(c.logs[0].multiline.as_ref().unwrap().max_lines, 500);
        assert_eq!(c.checks[0].timeout_ms, 5000);
        assert_eq!(c.checks[0].http.as_ref().unwrap().method, "GET");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_combinations() {
        assert!(AgentConfig::from_toml("[agent]\nintervall = 3\n").is_err());
        assert!(AgentConfig::from_toml("[agent]\ninterval_seconds = 0\n").is_err());
        let two =
            "[[agent.processes.watch]]\nname = \"x\"\ncomm = \"x\"\npid_file = \"/run/x.pid\"\n";
        assert!(AgentConfig::from_toml(two).is_err());
        let none = "[[agent.checks]]\nname = \"x\"\n";
        assert!(AgentConfig::from_toml(none).is_err());
        assert_eq!(AgentConfig::from_toml("").unwrap(), AgentConfig::default());
    }
}
