//! The scrape configuration: Prometheus's `prometheus.yml` format (the `global` and
//! `scrape_configs` parts), validated and resolved into [`ScrapeConfig`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bongsu_model::Labels;
use serde::{Deserialize, Deserializer};

use crate::duration::{parse_bytes, parse_duration};
use crate::error::{Error, Result};
use crate::relabel::{compile, is_label_name, RawRelabel, RelabelRule};

/// Prometheus's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(300);

/// A duration in Prometheus notation.
#[derive(Debug, Clone, Copy)]
struct PromDuration(Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(PromDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    global: RawGlobal,
    #[serde(default)]
    scrape_configs: Vec<RawScrapeConfig>,
    // Parts of prometheus.yml that scraping does not use: accepted so that an existing file
    // loads unchanged, and reported as ignored.
    rule_files: Option<serde_yaml_ng::Value>,
    alerting: Option<serde_yaml_ng::Value>,
    remote_write: Option<serde_yaml_ng::Value>,
    remote_read: Option<serde_yaml_ng::Value>,
    storage: Option<serde_yaml_ng::Value>,
    tracing: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGlobal {
    scrape_interval: Option<PromDuration>,
    scrape_timeout: Option<PromDuration>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    evaluation_interval: Option<serde_yaml_ng::Value>,
    query_log_file: Option<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrapeConfig {
    job_name: String,
    scrape_interval: Option<PromDuration>,
    scrape_timeout: Option<PromDuration>,
    metrics_path: Option<String>,
    scheme: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    honor_labels: bool,
    honor_timestamps: Option<bool>,
    #[serde(default)]
    static_configs: Vec<RawStaticConfig>,
    #[serde(default)]
    file_sd_configs: Vec<RawFileSd>,
    #[serde(default)]
    relabel_configs: Vec<RawRelabel>,
    #[serde(default)]
    metric_relabel_configs: Vec<RawRelabel>,
    #[serde(default)]
    sample_limit: u64,
    body_size_limit: Option<String>,
    basic_auth: Option<RawBasicAuth>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticConfig {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSd {
    files: Vec<String>,
    refresh_interval: Option<PromDuration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: String,
    password: Option<String>,
    password_file: Option<String>,
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Credentials sent with each scrape.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// HTTP basic authentication; the password is read from the file at each scrape when
    /// given as a file.
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <secret>)"),
            Auth::Bearer(_) => f.write_str("Bearer(<secret>)"),
        }
    }
}

/// A secret given inline or as a file to read at each use.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

/// A group of targets with common labels (a `static_configs` entry or an entry of a file
/// discovered by `file_sd_configs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels added to every target of the group.
    pub labels: BTreeMap<String, String>,
    /// Where the group came from (a file path for file discovery), for messages.
    pub source: String,
}

/// A `file_sd_configs` entry: file patterns (a `*` allowed in the last path element only),
/// resolved against the scrape config's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSdConfig {
    pub files: Vec<PathBuf>,
    pub refresh_interval: Duration,
}

/// One resolved `scrape_configs` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: Scheme,
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub static_configs: Vec<TargetGroup>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RelabelRule>,
    pub metric_relabel_configs: Vec<RelabelRule>,
    /// Most samples a scrape may keep after metric relabeling; 0 = no limit.
    pub sample_limit: usize,
    /// Largest uncompressed body; 0 = the scraper's default (`ingest.max_body_bytes`).
    pub body_size_limit: usize,
    pub auth: Option<Auth>,
}

/// A loaded scrape configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScrapeConfig {
    pub jobs: Vec<JobConfig>,
    /// `global.external_labels`: added to every scraped series that lacks them.
    pub external_labels: Labels,
    /// Keys of the file that bongsu accepts but does not use (`rule_files`, `alerting`…).
    pub ignored: Vec<String>,
}

impl ScrapeConfig {
    /// Reads and validates a file in Prometheus's format. Relative paths in it (file
    /// discovery, password and token files) are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<ScrapeConfig> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        ScrapeConfig::parse(&text, dir).map_err(|e| e.with_path(path))
    }

    /// Parses and validates YAML text; relative paths are resolved against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<ScrapeConfig> {
        let raw: RawFile = if text.trim().is_empty() {
            RawFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| Error::config(e.to_string()))?
        };
        let mut ignored = Vec::new();
        for (key, present) in [
            ("rule_files", raw.rule_files.is_some()),
            ("alerting", raw.alerting.is_some()),
            ("remote_write", raw.remote_write.is_some()),
            ("remote_read", raw.remote_read.is_some()),
            ("storage", raw.storage.is_some()),
            ("tracing", raw.tracing.is_some()),
            (
                "global.evaluation_interval",
                raw.global.evaluation_interval.is_some(),
            ),
            ("global.query_log_file", raw.global.query_log_file.is_some()),
        ] {
            if present {
                ignored.push(key.to_owned());
            }
        }
        let g_interval = raw.global.scrape_interval.map_or(DEFAULT_INTERVAL, |d| d.0);
        // An unset timeout is the default one capped at the interval, as in Prometheus.
        let g_timeout = raw
            .global
            .scrape_timeout
            .map_or(DEFAULT_TIMEOUT.min(g_interval), |d| d.0);
        if g_interval.is_zero() {
            return Err(Error::config("global.scrape_interval must be positive"));
        }
        if g_timeout > g_interval {
            return Err(Error::config(
                "global.scrape_timeout is greater than global.scrape_interval: lower the timeout",
            ));
        }
        let mut ext = Vec::new();
        for (k, v) in raw.global.external_labels {
            if !is_label_name(&k) || k.starts_with("__") {
                return Err(Error::config(format!(
                    "global.external_labels: invalid label name {k:?}"
                )));
            }
            ext.push((k, v));
        }
        let external_labels =
            Labels::from_pairs(ext).map_err(|e| Error::config(format!("external_labels: {e}")))?;
        let mut jobs: Vec<JobConfig> = Vec::new();
        for (i, sc) in raw.scrape_configs.into_iter().enumerate() {
            let name = sc.job_name.clone();
            let job = resolve_job(sc, g_interval, g_timeout, base_dir).map_err(|e| match e {
                Error::Config { message, .. } => Error::config(format!(
                    "scrape_configs[{i}] (job_name {name:?}): {message}"
                )),
                other => other,
            })?;
            if jobs.iter().any(|j| j.job_name == job.job_name) {
                return Err(Error::config(format!(
                    "job_name {:?} is used twice: job names must be unique",
                    job.job_name
                )));
            }
            jobs.push(job);
        }
        Ok(ScrapeConfig {
            jobs,
            external_labels,
            ignored,
        })
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

/// Prometheus's rule for file discovery patterns: `*` only in the last path element, and a
/// `.json`, `.yml` or `.yaml` extension.
fn valid_sd_pattern(p: &str) -> bool {
    let ext_ok = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
        .iter()
        .any(|e| p.ends_with(e));
    let star_ok = match p.find('*') {
        None => true,
        Some(i) => !p[i..].contains('/') && p[i + 1..].find('*').is_none(),
    };
    ext_ok && star_ok
}

fn resolve_job(
    sc: RawScrapeConfig,
    g_interval: Duration,
    g_timeout: Duration,
    base: &Path,
) -> Result<JobConfig> {
    if sc.job_name.is_empty() {
        return Err(Error::config("job_name is empty"));
    }
    let interval = sc.scrape_interval.map_or(g_interval, |d| d.0);
    if interval.is_zero() {
        return Err(Error::config("scrape_interval must be positive"));
    }
    let timeout = match sc.scrape_timeout {
        Some(t) => t.0,
        None => g_timeout.min(interval),
    };
    if timeout.is_zero() {
        return Err(Error::config("scrape_timeout must be positive"));
    }
    if timeout > interval {
        return Err(Error::config(
            "scrape_timeout is greater than scrape_interval: lower the timeout",
        ));
    }
    let scheme = match sc.scheme.as_deref().unwrap_or("http") {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            return Err(Error::config(format!(
                "scheme {other:?} is not supported: use http or https"
            )))
        }
    };
    let metrics_path = sc.metrics_path.unwrap_or_else(|| "/metrics".to_owned());
    let body_size_limit = match &sc.body_size_limit {
        Some(s) => parse_bytes(s)
            .map_err(|e| Error::config(format!("body_size_limit: {e}")))
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))?,
        None => 0,
    };
    let mut static_configs = Vec::new();
    for (i, g) in sc.static_configs.into_iter().enumerate() {
        for k in g.labels.keys() {
            if !is_label_name(k) {
                return Err(Error::config(format!(
                    "static_configs[{i}].labels: invalid label name {k:?}"
                )));
            }
        }
        static_configs.push(TargetGroup {
            targets: g.targets,
            labels: g.labels,
            source: format!("static_configs[{i}]"),
        });
    }
    let mut file_sd_configs = Vec::new();
    for f in sc.file_sd_configs {
        for p in &f.files {
            if !valid_sd_pattern(p) {
                return Err(Error::config(format!(
                    "file_sd_configs: invalid file pattern {p:?}: use a .json, .yml or .yaml \
                     file, with at most one * in the last path element"
                )));
            }
        }
        let refresh = f.refresh_interval.map_or(DEFAULT_FILE_SD_REFRESH, |d| d.0);
        if refresh.is_zero() {
            return Err(Error::config(
                "file_sd_configs: refresh_interval must be positive",
            ));
        }
        file_sd_configs.push(FileSdConfig {
            files: f.files.iter().map(|p| resolve(base, p)).collect(),
            refresh_interval: refresh,
        });
    }
    let auth = match (sc.basic_auth, sc.bearer_token, sc.bearer_token_file) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(Error::config(
                "basic_auth and bearer_token are mutually exclusive: keep one",
            ))
        }
        (_, Some(_), Some(_)) => {
            return Err(Error::config(
                "bearer_token and bearer_token_file are mutually exclusive: keep one",
            ))
        }
        (Some(b), None, None) => {
            let password = match (b.password, b.password_file) {
                (Some(_), Some(_)) => {
                    return Err(Error::config(
                        "basic_auth: password and password_file are mutually exclusive",
                    ))
                }
                (Some(p), None) => Secret::Inline(p),
                (None, Some(f)) => Secret::File(resolve(base, &f)),
                (None, None) => Secret::Inline(String::new()),
            };
            Some(Auth::Basic {
                username: b.username,
                password,
            })
        }
        (None, Some(t), None) => Some(Auth::Bearer(Secret::Inline(t))),
        (None, None, Some(f)) => Some(Auth::Bearer(Secret::File(resolve(base, &f)))),
        (None, None, None) => None,
    };
    Ok(JobConfig {
        job_name: sc.job_name,
        scrape_interval: interval,
        scrape_timeout: timeout,
        metrics_path,
        scheme,
        params: sc.params,
        honor_labels: sc.honor_labels,
        honor_timestamps: sc.honor_timestamps.unwrap_or(true),
        static_configs,
        file_sd_configs,
        relabel_configs: compile(sc.relabel_configs, "relabel_configs")?,
        metric_relabel_configs: compile(sc.metric_relabel_configs, "metric_relabel_configs")?,
        sample_limit: usize::try_from(sc.sample_limit).unwrap_or(usize::MAX),
        body_size_limit,
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<ScrapeConfig> {
        ScrapeConfig::parse(y, Path::new("/etc/bongsu"))
    }

    #[test]
    fn a_typical_prometheus_yml_loads() {
        let c = parse(
            r#"
global:
  scrape_interval: 15s
  evaluation_interval: 15s
  external_labels:
    cluster: eu1
rule_files: ["rules/*.yml"]
alerting:
  alertmanagers: [{static_configs: [{targets: ["am:9093"]}]}]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["a:9100", "b:9100"]
        labels: {env: prod}
    file_sd_configs:
      - files: ["targets/*.json"]
        refresh_interval: 1m
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
  - job_name: app
    scrape_interval: 5s
    metrics_path: /stats
    scheme: https
    params: {format: [prometheus]}
    honor_labels: true
    honor_timestamps: false
    sample_limit: 1000
    body_size_limit: 5MB
    basic_auth: {username: u, password_file: secret.txt}
"#,
        )
        .unwrap();
        assert_eq!(
            c.ignored,
            ["rule_files", "alerting", "global.evaluation_interval"]
        );
        assert_eq!(c.external_labels.get("cluster"), Some("eu1"));
        let node = &c.jobs[0];
        assert_eq!(node.scrape_interval, Duration::from_secs(15));
        assert_eq!(node.scrape_timeout, Duration::from_secs(10));
        assert_eq!(node.metrics_path, "/metrics");
        assert_eq!(node.scheme, Scheme::Http);
        assert!(node.honor_timestamps && !node.honor_labels);
        assert_eq!(node.static_configs[0].targets, ["a:9100", "b:9100"]);
        assert_eq!(
            node.file_sd_configs[0].files,
            [PathBuf::from("/etc/bongsu/targets/*.json")]
        );
        assert_eq!(
            node.file_sd_configs[0].refresh_interval,
            Duration::from_secs(60)
        );
        assert_eq!(node.metric_relabel_configs.len(), 1);
        let app = &c.jobs[1];
        // Timeout defaults to the global one, capped at the job's interval.
        assert_eq!(app.scrape_timeout, Duration::from_secs(5));
        assert_eq!(app.scheme, Scheme::Https);
        assert_eq!(app.sample_limit, 1000);
        assert_eq!(app.body_size_limit, 5 << 20);
        assert!(app.honor_labels && !app.honor_timestamps);
        assert_eq!(
            app.auth,
            Some(Auth::Basic {
                username: "u".into(),
                password: Secret::File("/etc/bongsu/secret.txt".into())
            })
        );
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let c = parse("scrape_configs:\n  - job_name: x\n").unwrap();
        assert_eq!(c.jobs[0].scrape_interval, Duration::from_secs(60));
        assert_eq!(c.jobs[0].scrape_timeout, Duration::from_secs(10));
        assert!(parse("").unwrap().jobs.is_empty());
        let c = parse("global: {scrape_interval: 2s}\nscrape_configs:\n  - job_name: x\n").unwrap();
        assert_eq!(c.jobs[0].scrape_timeout, Duration::from_secs(2));
        assert!(parse("global: {scrape_interval: 2s, scrape_timeout: 3s}\n").is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = |y: &str| parse(y).unwrap_err().to_string();
        assert!(e("scrape_config: []\n").contains("unknown field `scrape_config`"));
        assert!(e("global: {scrape_intervall: 1s}\n").contains("unknown field `scrape_intervall`"));
        let msg = e("scrape_configs:\n  - job_name: x\n    kubernetes_sd_configs: []\n");
        assert!(
            msg.contains("unknown field `kubernetes_sd_configs`"),
            "{msg}"
        );
        assert!(
            e("scrape_configs:\n  - job_name: x\n    static_configs: [{target: [a]}]\n")
                .contains("unknown field `target`")
        );
        assert!(
            e("scrape_configs:\n  - job_name: x\n    relabel_configs: [{actions: keep}]\n")
                .contains("unknown field `actions`")
        );
    }

    #[test]
    fn invalid_values_are_explained() {
        let e = |y: &str| parse(y).unwrap_err().to_string();
        assert!(e("global: {scrape_interval: 1x}\n").contains("invalid duration \"1x\""));
        assert!(e(
            "scrape_configs:\n  - job_name: x\n    scrape_interval: 5s\n    scrape_timeout: 10s\n"
        )
        .contains("scrape_timeout is greater than scrape_interval"));
        assert!(e("scrape_configs:\n  - job_name: x\n  - job_name: x\n").contains("used twice"));
        assert!(
            e("scrape_configs:\n  - job_name: x\n    scheme: ftp\n").contains("use http or https")
        );
        assert!(e(
            "scrape_configs:\n  - job_name: x\n    file_sd_configs: [{files: ['a/*/b.json']}]\n"
        )
        .contains("invalid file pattern"));
        assert!(
            e("scrape_configs:\n  - job_name: x\n    file_sd_configs: [{files: ['a.txt']}]\n")
                .contains("invalid file pattern")
        );
        assert!(e(
            "scrape_configs:\n  - job_name: x\n    bearer_token: a\n    bearer_token_file: b\n"
        )
        .contains("mutually exclusive"));
        let msg = e("scrape_configs:\n  - job_name: node\n    metric_relabel_configs: [{action: hashmod, target_label: x}]\n");
        assert!(
            msg.contains("job_name \"node\"") && msg.contains("metric_relabel_configs[0]"),
            "{msg}"
        );
        assert!(
            e("scrape_configs:\n  - job_name: x\n    body_size_limit: lots\n")
                .contains("body_size_limit")
        );
    }

    #[test]
    fn file_patterns() {
        assert!(valid_sd_pattern("targets/*.json"));
        assert!(valid_sd_pattern("/a/b/tg_*.yml"));
        assert!(valid_sd_pattern("one.yaml"));
        assert!(!valid_sd_pattern("*/x.json"));
        assert!(!valid_sd_pattern("a*b*.json"));
        assert!(!valid_sd_pattern("x.txt"));
    }
}
