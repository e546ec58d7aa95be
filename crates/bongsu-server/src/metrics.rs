//! A small self-metrics registry and a writer for the Prometheus text exposition format 0.0.4.
//!
//! Anything that has numbers to show implements [`MetricsSource`]; the server holds a list of
//! sources and asks each to write into one [`MetricsWriter`] per scrape. [`CounterVec`],
//! [`GaugeVec`] and [`HistogramVec`] are sources themselves; other crates (the stream) add
//! their own source that reads their internal counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The content type of the text exposition format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that contributes metric families to a scrape.
pub trait MetricsSource: Send + Sync {
    /// Writes this source's families. Called on a blocking thread once per scrape.
    fn collect(&self, out: &mut MetricsWriter);
}

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (resets on restart).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Bucketed observations with `_bucket`, `_sum` and `_count` series.
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Builds one exposition. Write a family header with [`family`](Self::family), then its
/// samples with [`sample`](Self::sample). Names that are not valid metric or label names are
/// skipped (and flagged in debug builds), so a scrape never emits unparsable text.
#[derive(Debug, Default)]
pub struct MetricsWriter {
    buf: String,
    family: Option<String>,
}

impl MetricsWriter {
    /// An empty writer.
    pub fn new() -> MetricsWriter {
        MetricsWriter::default()
    }

    /// Starts a family: writes its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricKind) {
        let valid = valid_metric_name(name);
        debug_assert!(valid, "invalid metric name {name:?}");
        if !valid {
            self.family = None;
            return;
        }
        self.family = Some(name.to_owned());
        let _ = write!(self.buf, "# HELP {name} ");
        escape_help(&mut self.buf, help);
        let _ = writeln!(self.buf, "\n# TYPE {name} {}", kind.as_str());
    }

    /// Writes one sample line. `name` is the family name or, for histograms, the family name
    /// plus `_bucket`, `_sum` or `_count`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let in_family = self.family.as_deref().is_some_and(|f| {
            name.strip_prefix(f)
                .is_some_and(|s| matches!(s, "" | "_bucket" | "_sum" | "_count"))
        });
        debug_assert!(in_family, "sample {name:?} outside its family");
        let labels_ok = labels.iter().all(|(k, _)| valid_label_name(k));
        debug_assert!(labels_ok, "invalid label name in {labels:?}");
        if !in_family || !labels_ok {
            return;
        }
        self.buf.push_str(name);
        if !labels.is_empty() {
            self.buf.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.buf.push(',');
                }
                self.buf.push_str(k);
                self.buf.push_str("=\"");
                escape_label_value(&mut self.buf, v);
                self.buf.push('"');
            }
            self.buf.push('}');
        }
        self.buf.push(' ');
        write_value(&mut self.buf, value);
        self.buf.push('\n');
    }

    /// The exposition text.
    pub fn finish(self) -> String {
        self.buf
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn valid_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
fn valid_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    !s.starts_with("__")
        && matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// HELP text: backslash and newline are escaped.
fn escape_help(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Label values: backslash, double quote and newline are escaped.
fn escape_label_value(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// An `f64` that can be added to from many threads.
#[derive(Debug, Default)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn add(&self, v: f64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }
}

/// Shared parts of the labelled metric types.
#[derive(Debug)]
struct Desc {
    name: String,
    help: String,
    label_names: Vec<String>,
}

impl Desc {
    fn new(name: &str, help: &str, label_names: &[&str]) -> Desc {
        debug_assert!(valid_metric_name(name), "invalid metric name {name:?}");
        debug_assert!(label_names.iter().all(|l| valid_label_name(l)));
        Desc {
            name: name.to_owned(),
            help: help.to_owned(),
            label_names: label_names.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn pairs<'a>(&'a self, values: &'a [String]) -> Vec<(&'a str, &'a str)> {
        self.label_names
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str))
            .collect()
    }

    fn key(&self, values: &[&str]) -> Vec<String> {
        debug_assert_eq!(values.len(), self.label_names.len(), "{}", self.name);
        values.iter().map(|s| (*s).to_owned()).collect()
    }
}

/// A counter family with labels. Children are created on first use and kept forever, so use
/// it only for labels with few values (routes, status codes).
#[derive(Debug)]
pub struct CounterVec {
    desc: Desc,
    children: Mutex<BTreeMap<Vec<String>, Arc<AtomicF64>>>,
}

/// One labelled counter.
#[derive(Debug, Clone)]
pub struct Counter(Arc<AtomicF64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.add(1.0);
    }
    /// Adds `v`; negative values are ignored (counters never go down).
    pub fn inc_by(&self, v: f64) {
        if v >= 0.0 {
            self.0.add(v);
        }
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl CounterVec {
    /// A new family. `name` should end in `_total`.
    pub fn new(name: &str, help: &str, label_names: &[&str]) -> CounterVec {
        CounterVec {
            desc: Desc::new(name, help, label_names),
            children: Mutex::new(BTreeMap::new()),
        }
    }

    /// The counter for these label values (in the order of the label names).
    pub fn with(&self, values: &[&str]) -> Counter {
        let key = self.desc.key(values);
        let mut map = self.children.lock().unwrap_or_else(|p| p.into_inner());
        Counter(map.entry(key).or_default().clone())
    }
}

impl MetricsSource for CounterVec {
    fn collect(&self, out: &mut MetricsWriter) {
        out.family(&self.desc.name, &self.desc.help, MetricKind::Counter);
        let map = self.children.lock().unwrap_or_else(|p| p.into_inner());
        for (values, v) in map.iter() {
            out.sample(&self.desc.name, &self.desc.pairs(values), v.get());
        }
    }
}

/// A gauge family with labels.
#[derive(Debug)]
pub struct GaugeVec {
    desc: Desc,
    children: Mutex<BTreeMap<Vec<String>, Arc<AtomicF64>>>,
}

/// One labelled gauge.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<AtomicF64>);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.set(v);
    }
    /// Adds `v` (may be negative).
    pub fn add(&self, v: f64) {
        self.0.add(v);
    }
    /// The current value.
    pub fn get(&self) -> f64 {
        self.0.get()
    }
}

impl GaugeVec {
    /// A new family.
    pub fn new(name: &str, help: &str, label_names: &[&str]) -> GaugeVec {
        GaugeVec {
            desc: Desc::new(name, help, label_names),
            children: Mutex::new(BTreeMap::new()),
        }
    }

    /// The gauge for these label values.
    pub fn with(&self, values: &[&str]) -> Gauge {
        let key = self.desc.key(values);
        let mut map = self.children.lock().unwrap_or_else(|p| p.into_inner());
        Gauge(map.entry(key).or_default().clone())
    }
}

impl MetricsSource for GaugeVec {
    fn collect(&self, out: &mut MetricsWriter) {
        out.family(&self.desc.name, &self.desc.help, MetricKind::Gauge);
        let map = self.children.lock().unwrap_or_else(|p| p.into_inner());
        for (values, v) in map.iter() {
            out.sample(&self.desc.name, &self.desc.pairs(values), v.get());
        }
    }
}

/// Default buckets for request durations in seconds.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram family with labels.
#[derive(Debug)]
pub struct HistogramVec {
    desc: Desc,
    bounds: Vec<f64>,
    children: Mutex<BTreeMap<Vec<String>, Arc<HistogramCore>>>,
}

#[derive(Debug)]
struct HistogramCore {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: Vec<AtomicU64>,
    sum: AtomicF64,
    count: AtomicU64,
}

/// One labelled histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    core: Arc<HistogramCore>,
    bounds: Arc<[f64]>,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        if let Some(b) = self.core.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.core.sum.add(v);
        self.core.count.fetch_add(1, Ordering::Relaxed);
    }
}

impl HistogramVec {
    /// A new family with the given upper bounds (sorted ascending, `+Inf` is implied).
    pub fn new(name: &str, help: &str, label_names: &[&str], bounds: &[f64]) -> HistogramVec {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        HistogramVec {
            desc: Desc::new(name, help, label_names),
            bounds,
            children: Mutex::new(BTreeMap::new()),
        }
    }

    /// The histogram for these label values.
    pub fn with(&self, values: &[&str]) -> Histogram {
        let key = self.desc.key(values);
        let n = self.bounds.len() + 1;
        let mut map = self.children.lock().unwrap_or_else(|p| p.into_inner());
        let core = map
            .entry(key)
            .or_insert_with(|| {
                Arc::new(HistogramCore {
                    buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
                    sum: AtomicF64::default(),
                    count: AtomicU64::new(0),
                })
            })
            .clone();
        Histogram {
            core,
            bounds: self.bounds.clone().into(),
        }
    }
}

impl MetricsSource for HistogramVec {
    fn collect(&self, out: &mut MetricsWriter) {
        let name = &self.desc.name;
        out.family(name, &self.desc.help, MetricKind::Histogram);
        let bucket = format!("{name}_bucket");
        let sum = format!("{name}_sum");
        let count = format!("{name}_count");
        let map = self.children.lock().unwrap_or_else(|p| p.into_inner());
        for (values, h) in map.iter() {
            let base = self.desc.pairs(values);
            let mut cumulative = 0u64;
            for (i, b) in h.buckets.iter().enumerate() {
                cumulative += b.load(Ordering::Relaxed);
                let le = match self.bounds.get(i) {
                    Some(bound) => {
                        let mut s = String::new();
                        write_value(&mut s, *bound);
                        s
                    }
                    None => "+Inf".to_owned(),
                };
                let mut labels = base.clone();
                labels.push(("le", &le));
                out.sample(&bucket, &labels, cumulative as f64);
            }
            out.sample(&sum, &base, h.sum.get());
            out.sample(&count, &base, h.count.load(Ordering::Relaxed) as f64);
        }
    }
}

/// `bongsu_build_info{version="..."} 1`.
#[derive(Debug, Default)]
pub struct BuildInfo;

impl MetricsSource for BuildInfo {
    fn collect(&self, out: &mut MetricsWriter) {
        out.family(
            "bongsu_build_info",
            "Build information of the running bongsu: always 1.",
            MetricKind::Gauge,
        );
        out.sample(
            "bongsu_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    }
}

/// Collects every source into one exposition.
pub fn render(sources: &[Arc<dyn MetricsSource>]) -> String {
    let mut w = MetricsWriter::new();
    for s in sources {
        s.collect(&mut w);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counters_write_help_type_and_escaped_labels() {
        let c = CounterVec::new("x_requests_total", "Requests.\nBy path \\ code.", &["path"]);
        c.with(&["/a\"b\\c\nd"]).inc();
        c.with(&["/a\"b\\c\nd"]).inc_by(2.0);
        c.with(&["/z"]).inc_by(-5.0);
        let mut w = MetricsWriter::new();
        c.collect(&mut w);
        assert_eq!(
            w.finish(),
            "# HELP x_requests_total Requests.\\nBy path \\\\ code.\n\
             # TYPE x_requests_total counter\n\
             x_requests_total{path=\"/a\\\"b\\\\c\\nd\"} 3\n\
             x_requests_total{path=\"/z\"} 0\n"
        );
    }

    #[test]
    fn gauges_and_special_values() {
        let g = GaugeVec::new("g", "G.", &[]);
        let mut w = MetricsWriter::new();
        g.with(&[]).set(f64::NAN);
        g.collect(&mut w);
        assert!(w.finish().ends_with("\ng NaN\n"));
        let mut s = String::new();
        for v in [f64::INFINITY, f64::NEG_INFINITY, 0.5, -2.0, 1e21] {
            write_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "+Inf -Inf 0.5 -2 1000000000000000000000 ");
        let g2 = g.with(&[]);
        g2.set(1.0);
        g2.add(-3.0);
        assert_eq!(g.with(&[]).get(), -2.0);
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let h = HistogramVec::new("d_seconds", "D.", &["route"], &[0.1, 1.0]);
        let x = h.with(&["/"]);
        for v in [0.0625, 0.25, 0.5, 3.0] {
            x.observe(v);
        }
        let mut w = MetricsWriter::new();
        h.collect(&mut w);
        let text = w.finish();
        assert!(text.contains("# TYPE d_seconds histogram\n"), "{text}");
        assert!(
            text.contains("d_seconds_bucket{route=\"/\",le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{route=\"/\",le=\"1\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{route=\"/\",le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_sum{route=\"/\"} 3.8125\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_count{route=\"/\"} 4\n"), "{text}");
    }

    #[test]
    fn invalid_names_are_never_written() {
        assert!(valid_metric_name("a:b_c1"));
        assert!(!valid_metric_name("1a"));
        assert!(!valid_metric_name("a-b"));
        assert!(!valid_metric_name(""));
        assert!(valid_label_name("le"));
        assert!(!valid_label_name("__name__"));
        assert!(!valid_label_name("a:b"));
    }

    #[test]
    fn build_info_is_one() {
        let text = render(&[Arc::new(BuildInfo)]);
        assert!(text.contains("# TYPE bongsu_build_info gauge\n"));
        assert!(text.contains(&format!(
            "bongsu_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    /// Reverses label-value escaping, as a scraper would.
    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(c) => out.push(c),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_label_value_stays_on_one_line_and_round_trips(v in any::<String>()) {
            let c = CounterVec::new("p_total", "P.", &["v"]);
            c.with(&[&v]).inc();
            let mut w = MetricsWriter::new();
            c.collect(&mut w);
            let text = w.finish();
            let line = text.lines().nth(2).unwrap();
            prop_assert_eq!(text.lines().count(), 3);
            let inner = line
                .strip_prefix("p_total{v=\"")
                .and_then(|s| s.strip_suffix("\"} 1"))
                .unwrap();
            prop_assert_eq!(unescape(inner), v);
        }
    }
}
