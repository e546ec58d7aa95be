//! From discovered target groups to scrape targets: Prometheus's label population, target
//! relabeling and URL building.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use bongsu_model::{Label, Labels};

use crate::config::{JobConfig, TargetGroup};
use crate::duration::{format_duration, parse_duration};
use crate::relabel::relabel;

pub(crate) const ADDRESS: &str = "__address__";
const SCHEME: &str = "__scheme__";
const METRICS_PATH: &str = "__metrics_path__";
const SCRAPE_INTERVAL: &str = "__scrape_interval__";
const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
const PARAM_PREFIX: &str = "__param_";
const META_PREFIX: &str = "__meta_";

/// One target to scrape: its public labels (`job`, `instance` and the rest, no `__` labels)
/// and where and how often to scrape it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Labels attached to every series scraped from the target.
    pub labels: Labels,
    /// The URL scraped, with query parameters.
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// A stable identity of the target: its labels and URL.
    pub fn key(&self) -> String {
        format!("{}|{}", self.labels, self.url)
    }

    /// Where in each interval this target is scraped: a fixed offset from the target's hash,
    /// spreading targets evenly while keeping each one's phase stable.
    pub(crate) fn offset(&self) -> Duration {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.key().hash(&mut h);
        let ms = u64::try_from(self.interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(h.finish() % ms)
    }
}

/// Why a discovered target was not used (logged; the other targets are unaffected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TargetError(pub(crate) String);

/// Builds the targets of a group. Targets dropped by `relabel_configs` are left out;
/// invalid ones are reported in the second list.
pub(crate) fn targets_from_group(
    job: &JobConfig,
    group: &TargetGroup,
    meta: &[(String, String)],
) -> (Vec<Target>, Vec<TargetError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for addr in &group.targets {
        let mut pairs: BTreeMap<String, String> = group.labels.clone();
        for (k, v) in meta {
            pairs.insert(k.clone(), v.clone());
        }
        pairs.insert(ADDRESS.to_owned(), addr.clone());
        match populate(job, pairs) {
            Ok(Some(t)) => out.push(t),
            Ok(None) => {}
            Err(e) => errors.push(TargetError(format!(
                "target {addr:?} of {}: {e}",
                group.source
            ))),
        }
    }
    (out, errors)
}

/// Prometheus's `PopulateLabels`: job defaults, relabeling, address and interval checks,
/// `instance` defaulting to the address, `__` labels removed.
pub(crate) fn populate(
    job: &JobConfig,
    mut pairs: BTreeMap<String, String>,
) -> Result<Option<Target>, String> {
    for (k, v) in [
        ("job", job.job_name.clone()),
        (SCRAPE_INTERVAL, format_duration(job.scrape_interval)),
        (SCRAPE_TIMEOUT, format_duration(job.scrape_timeout)),
        (METRICS_PATH, job.metrics_path.clone()),
        (SCHEME, job.scheme.as_str().to_owned()),
    ] {
        let e = pairs.entry(k.to_owned()).or_default();
        if e.is_empty() {
            *e = v;
        }
    }
    for (k, v) in &job.params {
        if let Some(first) = v.first() {
            pairs.insert(format!("{PARAM_PREFIX}{k}"), first.clone());
        }
    }
    let mut labels = Labels::new(pairs.into_iter().map(|(k, v)| Label::new(k, v)).collect())
        .map_err(|e| e.to_string())?;
    if !relabel(&mut labels, &job.relabel_configs) {
        return Ok(None);
    }
    let Some(addr) = labels.get(ADDRESS).map(str::to_owned) else {
        return Err("no __address__ label after relabeling".to_owned());
    };
    let scheme = labels.get(SCHEME).unwrap_or("").to_owned();
    let addr = if has_port(&addr) {
        addr
    } else {
        match scheme.as_str() {
            "http" => format!("{addr}:80"),
            "https" => format!("{addr}:443"),
            _ => return Err(format!("invalid scheme {scheme:?}: use http or https")),
        }
    };
    if addr.contains('/') {
        return Err(format!(
            "{addr:?} is not a valid address: write host:port without a scheme or path"
        ));
    }
    if scheme != "http" && scheme != "https" {
        return Err(format!("invalid scheme {scheme:?}: use http or https"));
    }
    let interval = parse_duration(labels.get(SCRAPE_INTERVAL).unwrap_or(""))
        .map_err(|e| format!("__scrape_interval__: {e}"))?;
    let timeout = parse_duration(labels.get(SCRAPE_TIMEOUT).unwrap_or(""))
        .map_err(|e| format!("__scrape_timeout__: {e}"))?;
    if interval.is_zero() || timeout.is_zero() {
        return Err("scrape interval and timeout must be positive".to_owned());
    }
    if timeout > interval {
        return Err("scrape timeout cannot be greater than scrape interval".to_owned());
    }
    let path = labels.get(METRICS_PATH).unwrap_or("").to_owned();
    // Query: the job's params, with the first value of each replaced by `__param_<name>`.
    let mut query: BTreeMap<String, Vec<String>> = job.params.clone();
    for l in labels.iter() {
        if let Some(name) = l.name.strip_prefix(PARAM_PREFIX) {
            let vals = query.entry(name.to_owned()).or_default();
            if vals.is_empty() {
                vals.push(l.value.clone());
            } else {
                vals[0] = l.value.clone();
            }
        }
    }
    let mut url = format!("{scheme}://{addr}{path}");
    let mut first = true;
    for (k, vals) in &query {
        for v in vals {
            url.push(if first { '?' } else { '&' });
            first = false;
            url.push_str(&percent_encode(k));
            url.push('=');
            url.push_str(&percent_encode(v));
        }
    }
    if labels.get("instance").is_none() {
        labels.set("instance", &addr);
    }
    let public: Vec<Label> = labels
        .into_vec()
        .into_iter()
        .filter(|l| !l.name.starts_with("__"))
        .collect();
    debug_assert!(public.iter().all(|l| !l.name.starts_with(META_PREFIX)));
    let labels = Labels::new(public).map_err(|e| e.to_string())?;
    Ok(Some(Target {
        labels,
        url,
        interval,
        timeout,
    }))
}

/// Whether `host:port` (or `[v6]:port`) carries a port.
fn has_port(addr: &str) -> bool {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split_once("]:").is_some_and(|(_, p)| !p.is_empty());
    }
    match addr.rsplit_once(':') {
        Some((host, port)) => !host.contains(':') && !port.is_empty(),
        None => false,
    }
}

/// Encodes a query component (RFC 3986 unreserved characters stay as they are).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScrapeConfig;
    use std::path::Path;

    fn job(yaml: &str) -> JobConfig {
        ScrapeConfig::parse(yaml, Path::new("/"))
            .unwrap()
            .jobs
            .remove(0)
    }

    fn targets(j: &JobConfig) -> (Vec<Target>, Vec<TargetError>) {
        targets_from_group(j, &j.static_configs[0], &[])
    }

    #[test]
    fn job_instance_and_static_labels() {
        let j = job("scrape_configs:\n  - job_name: node\n    scrape_interval: 15s\n    static_configs: [{targets: ['h1:9100', 'h2'], labels: {env: prod}}]\n");
        let (t, errs) = targets(&j);
        assert!(errs.is_empty());
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].labels,
            Labels::from_pairs([("env", "prod"), ("instance", "h1:9100"), ("job", "node")])
                .unwrap()
        );
        assert_eq!(t[0].url, "http://h1:9100/metrics");
        assert_eq!(t[0].interval, Duration::from_secs(15));
        // Without a port, the scheme's default port is added (Prometheus 2.x).
        assert_eq!(t[1].labels.get("instance"), Some("h2:80"));
        assert_eq!(t[1].url, "http://h2:80/metrics");
    }

    #[test]
    fn relabeling_sets_address_path_params_and_interval() {
        let j = job(r#"
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params: {module: [http_2xx], extra: [a b]}
    static_configs: [{targets: ['example.org', 'skip.me']}]
    relabel_configs:
      - source_labels: [__address__]
        regex: skip.*
        action: drop
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:9115
      - target_label: __scrape_interval__
        replacement: 30s
"#);
        let (t, errs) = targets(&j);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[0].url,
            "http://127.0.0.1:9115/probe?extra=a%20b&module=http_2xx&target=example.org"
        );
        assert_eq!(t[0].labels.get("instance"), Some("example.org"));
        assert_eq!(t[0].labels.get("__param_target"), None);
        assert_eq!(t[0].interval, Duration::from_secs(30));
    }

    #[test]
    fn meta_labels_are_usable_then_removed() {
        let j = job("scrape_configs:\n  - job_name: f\n    static_configs: [{targets: ['a:1']}]\n    relabel_configs: [{source_labels: [__meta_filepath], regex: '.*/(.*)\\.json', target_label: file}]\n");
        let meta = [("__meta_filepath".to_owned(), "/sd/web.json".to_owned())];
        let (t, _) = targets_from_group(&j, &j.static_configs[0], &meta);
        assert_eq!(t[0].labels.get("file"), Some("web"));
        assert!(t[0].labels.iter().all(|l| !l.name.starts_with("__")));
    }

    #[test]
    fn invalid_targets_are_reported() {
        let j = job("scrape_configs:\n  - job_name: x\n    static_configs: [{targets: ['http://a:1/x', 'ok:1']}]\n    relabel_configs: [{target_label: __scrape_timeout__, replacement: 2m}]\n");
        let (t, errs) = targets(&j);
        assert!(t.is_empty());
        assert_eq!(errs.len(), 2);
        assert!(errs[0].0.contains("not a valid address"), "{errs:?}");
        assert!(
            errs[1].0.contains("greater than scrape interval"),
            "{errs:?}"
        );
        let j = job("scrape_configs:\n  - job_name: x\n    static_configs: [{targets: ['a:1']}]\n    relabel_configs: [{regex: __address__, action: labeldrop}]\n");
        assert!(targets(&j).1[0].0.contains("no __address__"));
    }

    #[test]
    fn ports_and_offsets() {
        assert!(has_port("a:1"));
        assert!(has_port("[::1]:9100"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("host"));
        assert!(!has_port("::1"));
        let j = job("scrape_configs:\n  - job_name: x\n    scrape_interval: 10s\n    static_configs: [{targets: ['a:1', 'b:1']}]\n");
        let (t, _) = targets(&j);
        assert!(t.iter().all(|t| t.offset() < Duration::from_secs(10)));
        assert_eq!(t[0].offset(), t[0].clone().offset());
        assert_ne!(t[0].key(), t[1].key());
    }
}
