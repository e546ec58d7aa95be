use std::collections::BTreeMap;
use std::fmt::Write as _;

use bongsu_model::{Labels, Sample, METRIC_NAME};

/// Whether a metric only goes up (a counter) or goes up and down (a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// A metric family's metadata: its type and HELP text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricMeta {
    pub kind: MetricKind,
    pub help: String,
}

/// The result of one collection pass: samples, all at one timestamp, and the
/// metadata of every family that appears.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    timestamp_ms: i64,
    samples: Vec<(Labels, Sample)>,
    meta: BTreeMap<String, MetricMeta>,
}

impl Metrics {
    pub fn new(timestamp_ms: i64) -> Self {
        Self {
            timestamp_ms,
            samples: Vec::new(),
            meta: BTreeMap::new(),
        }
    }

    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    pub fn samples(&self) -> &[(Labels, Sample)] {
        &self.samples
    }

    pub fn into_samples(self) -> Vec<(Labels, Sample)> {
        self.samples
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Metadata of the family `name`, if any sample of it was collected.
    pub fn meta(&self, name: &str) -> Option<&MetricMeta> {
        self.meta.get(name)
    }

    /// The first sample of `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(l, _)| {
                l.metric_name() == Some(name) && labels.iter().all(|(k, v)| l.get(k) == Some(*v))
            })
            .map(|(_, s)| s.value)
    }

    /// All samples of the family `name`.
    pub fn family<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a (Labels, Sample)> + 'a {
        self.samples
            .iter()
            .filter(move |(l, _)| l.metric_name() == Some(name))
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.push(MetricKind::Gauge, name, help, labels, value);
    }

    pub(crate) fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.push(MetricKind::Counter, name, help, labels, value);
    }

    pub(crate) fn push(
        &mut self,
        kind: MetricKind,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let pairs = std::iter::once((METRIC_NAME, name)).chain(labels.iter().copied());
        // Label names come from this crate's code, never from input, so a bad set is a bug.
        let Ok(set) = Labels::from_pairs(pairs) else {
            debug_assert!(false, "bad label set for {name}: {labels:?}");
            return;
        };
        if !self.meta.contains_key(name) {
            self.meta.insert(
                name.to_owned(),
                MetricMeta {
                    kind,
                    help: help.to_owned(),
                },
            );
        }
        self.samples
            .push((set, Sample::new(self.timestamp_ms, value)));
    }

    /// The samples as a `MetricsRecord` (one series per sample) with the families' metadata.
    pub fn to_record(&self) -> bongsu_model::MetricsRecord {
        use bongsu_model::{MetricKind as K, MetricMetadata, Series};
        bongsu_model::MetricsRecord {
            series: self
                .samples
                .iter()
                .map(|(l, s)| Series {
                    labels: l.clone(),
                    samples: vec![*s],
                })
                .collect(),
            metadata: self
                .meta
                .iter()
                .map(|(name, m)| MetricMetadata {
                    family: name.clone(),
                    kind: match m.kind {
                        MetricKind::Counter => K::Counter,
                        MetricKind::Gauge => K::Gauge,
                    },
                    help: m.help.clone(),
                    unit: String::new(),
                })
                .collect(),
        }
    }

    /// Adds all samples and metadata of `other` (its timestamps are kept).
    pub fn extend(&mut self, other: Metrics) {
        for (k, v) in other.meta {
            self.meta.entry(k).or_insert(v);
        }
        self.samples.extend(other.samples);
    }

    /// Prometheus text exposition format 0.0.4, families in name order, without timestamps.
    pub fn to_exposition(&self) -> String {
        let mut by_family: BTreeMap<&str, Vec<&(Labels, Sample)>> = BTreeMap::new();
        for s in &self.samples {
            if let Some(n) = s.0.metric_name() {
                by_family.entry(n).or_default().push(s);
            }
        }
        let mut out = String::new();
        for (name, samples) in by_family {
            if let Some(m) = self.meta.get(name) {
                let help = m.help.replace('\\', "\\\\").replace('\n', "\\n");
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {}", m.kind.as_str());
            }
            for (labels, sample) in samples {
                let _ = writeln!(
                    out,
                    "{} {}",
                    exposition_series(labels),
                    format_value(sample.value)
                );
            }
        }
        out
    }
}

fn exposition_series(labels: &Labels) -> String {
    let mut s = labels.metric_name().unwrap_or_default().to_owned();
    let rest: Vec<_> = labels.iter().filter(|l| l.name != METRIC_NAME).collect();
    if !rest.is_empty() {
        s.push('{');
        for (i, l) in rest.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let v = l
                .value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(s, "{}=\"{}\"", l.name, v);
        }
        s.push('}');
    }
    s
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
