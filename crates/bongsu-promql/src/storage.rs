//! The small storage trait the engine evaluates over, and an in-memory implementation.

use std::sync::RwLock;

use bongsu_model::{Labels, Sample};
use regex::Regex;

use crate::native::{CounterResetHint, FloatHistogram};
use crate::{Error, Result};

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    /// The value matches the fully anchored regular expression.
    RegexMatch,
    /// The value does not match the fully anchored regular expression.
    RegexNoMatch,
}

/// One label matcher of a selector. An absent label has the empty value.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher; regular expressions are anchored at both ends as in PromQL.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                Some(Regex::new(&format!("^(?s:{value})$")).map_err(|e| {
                    Error::Eval(format!(
                        "invalid regular expression {value:?} in matcher: {e}"
                    ))
                })?)
            }
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// Whether `value` (empty when the label is absent) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => self.value == value,
            (MatchOp::NotEqual, _) => self.value != value,
            (MatchOp::RegexMatch, Some(r)) => r.is_match(value),
            (MatchOp::RegexNoMatch, Some(r)) => !r.is_match(value),
            // Regex ops always carry a compiled regex (see `new`).
            (_, None) => false,
        }
    }

    /// Whether every matcher accepts `labels`.
    pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
        matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }
}

/// What the engine will do with the selected data; storages may use it to serve
/// pre-aggregated rollups or to skip work. Samples must still cover `start_ms..=end_ms`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectHints {
    /// First timestamp needed, inclusive.
    pub start_ms: i64,
    /// Last timestamp needed, inclusive.
    pub end_ms: i64,
    /// Evaluation step of the query (0 for an instant query).
    pub step_ms: i64,
    /// The function the selected data is passed to, if any (`rate`, `max_over_time`, ...).
    pub func: Option<String>,
    /// The range of the range selector (0 for an instant vector selector).
    pub range_ms: i64,
}

/// One series: its labels and its samples in timestamp order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// One native histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub timestamp_ms: i64,
    pub histogram: FloatHistogram,
}

/// The native histogram samples of one series, in timestamp order.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSeries {
    pub labels: Labels,
    pub samples: Vec<HistogramSample>,
}

/// What the engine needs from a time-series store.
pub trait Storage: Send + Sync {
    /// Returns every series that all `matchers` accept, with its samples whose timestamps
    /// lie in `hints.start_ms..=hints.end_ms` (staleness markers included), in timestamp
    /// order. Series without samples in the range may be left out.
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<Series>>;

    /// Like [`Storage::select`], for native histogram samples. A series may hold float
    /// and histogram samples (never both at one timestamp); the engine merges the two
    /// answers by labels. Stores without native histograms keep this default.
    ///
    /// A store should return the counter reset hint Prometheus's TSDB returns: `Gauge`
    /// for gauge histograms, `CounterReset` where a reset happened (or was declared),
    /// `NotCounterReset` for a sample continuing the previous one without a reset, and
    /// `Unknown` for the first histogram of a run.
    fn select_histograms(
        &self,
        _matchers: &[Matcher],
        _hints: &SelectHints,
    ) -> Result<Vec<HistogramSeries>> {
        Ok(Vec::new())
    }
}

#[derive(Debug, Clone)]
enum Stored {
    Float(f64),
    Hist(Box<FloatHistogram>),
}

#[derive(Debug, Clone)]
struct StoredSeries {
    labels: Labels,
    points: Vec<(i64, Stored)>,
}

/// An in-memory [`Storage`], for tests and small embedded uses.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    series: RwLock<Vec<StoredSeries>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends samples to the series with `labels`, creating it when new. Samples are
    /// kept sorted by timestamp; a sample at an existing timestamp replaces the old one.
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        self.insert(
            labels,
            samples
                .into_iter()
                .map(|s| (s.timestamp_ms, Stored::Float(s.value))),
        );
    }

    /// Appends native histogram samples to the series with `labels` (see [`MemoryStorage::add`]).
    pub fn add_histograms(
        &self,
        labels: Labels,
        samples: impl IntoIterator<Item = HistogramSample>,
    ) {
        self.insert(
            labels,
            samples
                .into_iter()
                .map(|s| (s.timestamp_ms, Stored::Hist(Box::new(s.histogram)))),
        );
    }

    fn insert(&self, labels: Labels, points: impl Iterator<Item = (i64, Stored)>) {
        let mut all = match self.series.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let idx = match all.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                all.push(StoredSeries {
                    labels,
                    points: Vec::new(),
                });
                all.len() - 1
            }
        };
        let s = &mut all[idx].points;
        for p in points {
            match s.binary_search_by_key(&p.0, |x| x.0) {
                Ok(i) => s[i] = p,
                Err(i) => s.insert(i, p),
            }
        }
    }

    /// Drops every series.
    pub fn clear(&self) {
        match self.series.write() {
            Ok(mut g) => g.clear(),
            Err(p) => p.into_inner().clear(),
        }
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        match self.series.read() {
            Ok(g) => g.len(),
            Err(p) => p.into_inner().len(),
        }
    }
}

/// The counter reset hints Prometheus's TSDB reports on read: gauges stay gauges, a
/// declared reset stays `CounterReset`, the first histogram of a run (at the start,
/// after a float or after a detected reset) is `Unknown`, later ones `NotCounterReset`.
fn read_back_hint(points: &[(i64, Stored)], i: usize) -> Option<CounterResetHint> {
    let Stored::Hist(h) = &points[i].1 else {
        return None;
    };
    let prev = match i.checked_sub(1).map(|j| &points[j].1) {
        Some(Stored::Hist(p)) => Some(p),
        _ => None,
    };
    Some(match (h.counter_reset_hint, prev) {
        (CounterResetHint::Gauge, _) => CounterResetHint::Gauge,
        (CounterResetHint::CounterReset, _) => CounterResetHint::CounterReset,
        (_, None) => CounterResetHint::Unknown,
        (_, Some(p)) if p.counter_reset_hint == CounterResetHint::Gauge => {
            CounterResetHint::Unknown
        }
        // A detected reset starts a new chunk whose first sample reads back as
        // `Unknown` in Prometheus's TSDB, not as `CounterReset`.
        (_, Some(p)) if h.detect_reset_ignoring_hint(p) => CounterResetHint::Unknown,
        _ => CounterResetHint::NotCounterReset,
    })
}

impl MemoryStorage {
    fn each_match(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
        mut f: impl FnMut(&StoredSeries, usize, usize),
    ) {
        let all = match self.series.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for s in all.iter() {
            if !Matcher::all_match(matchers, &s.labels) {
                continue;
            }
            let lo = s.points.partition_point(|x| x.0 < hints.start_ms);
            let hi = s.points.partition_point(|x| x.0 <= hints.end_ms);
            if lo < hi {
                f(s, lo, hi);
            }
        }
    }
}

impl Storage for MemoryStorage {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<Series>> {
        let mut out = Vec::new();
        self.each_match(matchers, hints, |s, lo, hi| {
            let samples: Vec<Sample> = s.points[lo..hi]
                .iter()
                .filter_map(|(t, p)| match p {
                    Stored::Float(v) => Some(Sample::new(*t, *v)),
                    Stored::Hist(_) => None,
                })
                .collect();
            if !samples.is_empty() {
                out.push(Series {
                    labels: s.labels.clone(),
                    samples,
                });
            }
        });
        Ok(out)
    }

    fn select_histograms(
        &self,
        matchers: &[Matcher],
        hints: &SelectHints,
    ) -> Result<Vec<HistogramSeries>> {
        let mut out = Vec::new();
        self.each_match(matchers, hints, |s, lo, hi| {
            if !s.points[lo..hi]
                .iter()
                .any(|p| matches!(p.1, Stored::Hist(_)))
            {
                return;
            }
            let samples: Vec<HistogramSample> = (lo..hi)
                .filter_map(|i| match (&s.points[i].1, read_back_hint(&s.points, i)) {
                    (Stored::Hist(h), Some(hint)) => {
                        let mut histogram = (**h).clone();
                        histogram.counter_reset_hint = hint;
                        Some(HistogramSample {
                            timestamp_ms: s.points[i].0,
                            histogram,
                        })
                    }
                    _ => None,
                })
                .collect();
            out.push(HistogramSeries {
                labels: s.labels.clone(),
                samples,
            });
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn matchers_treat_absent_as_empty() {
        let l = labels(&[("__name__", "up"), ("job", "api")]);
        let eq = Matcher::new(MatchOp::Equal, "job", "api").unwrap();
        let absent = Matcher::new(MatchOp::Equal, "zone", "").unwrap();
        let re = Matcher::new(MatchOp::RegexMatch, "job", "a.*").unwrap();
        let nre = Matcher::new(MatchOp::RegexNoMatch, "job", "a").unwrap();
        assert!(Matcher::all_match(&[eq, absent, re, nre], &l));
        let anchored = Matcher::new(MatchOp::RegexMatch, "job", "p").unwrap();
        assert!(!anchored.matches("api"));
        assert!(Matcher::new(MatchOp::RegexMatch, "job", "(").is_err());
    }

    #[test]
    fn memory_storage_selects_by_matchers_and_range() {
        let st = MemoryStorage::new();
        st.add(
            labels(&[("__name__", "a")]),
            (0..10).map(|i| Sample::new(i * 10, i as f64)),
        );
        st.add(labels(&[("__name__", "b")]), [Sample::new(5, 1.0)]);
        st.add(labels(&[("__name__", "a")]), [Sample::new(30, 99.0)]);
        let m = [Matcher::new(MatchOp::Equal, "__name__", "a").unwrap()];
        let hints = SelectHints {
            start_ms: 20,
            end_ms: 40,
            ..SelectHints::default()
        };
        let got = st.select(&m, &hints).unwrap();
        assert_eq!(got.len(), 1);
        let vals: Vec<f64> = got[0].samples.iter().map(|s| s.value).collect();
        assert_eq!(vals, [2.0, 99.0, 4.0]);
        assert_eq!(st.series_count(), 2);
        st.clear();
        assert_eq!(st.series_count(), 0);
    }

    #[test]
    fn histograms_read_back_with_tsdb_hints() {
        use crate::native::parse_histogram_literal;
        let st = MemoryStorage::new();
        let l = labels(&[("__name__", "h")]);
        let h = |s: &str, t: i64| HistogramSample {
            timestamp_ms: t,
            histogram: parse_histogram_literal(s).unwrap(),
        };
        st.add_histograms(
            l.clone(),
            [
                h("{{count:1 sum:1}}", 0),
                h("{{count:2 sum:2}}", 10),
                h("{{count:1 sum:1}}", 20),
                h("{{count:3 sum:3 counter_reset_hint:reset}}", 40),
                h("{{count:3 sum:3 counter_reset_hint:gauge}}", 50),
            ],
        );
        st.add(l.clone(), [Sample::new(30, 7.0)]);
        let m = [Matcher::new(MatchOp::Equal, "__name__", "h").unwrap()];
        let all = SelectHints {
            start_ms: 0,
            end_ms: 100,
            ..SelectHints::default()
        };
        let hs = st.select_histograms(&m, &all).unwrap();
        let hints: Vec<CounterResetHint> = hs[0]
            .samples
            .iter()
            .map(|s| s.histogram.counter_reset_hint)
            .collect();
        use CounterResetHint::*;
        assert_eq!(
            hints,
            [Unknown, NotCounterReset, Unknown, CounterReset, Gauge]
        );
        let floats = st.select(&m, &all).unwrap();
        assert_eq!(floats[0].samples, vec![Sample::new(30, 7.0)]);
        // A window holding only the float answers no histogram series.
        let narrow = SelectHints {
            start_ms: 25,
            end_ms: 35,
            ..SelectHints::default()
        };
        assert!(st.select_histograms(&m, &narrow).unwrap().is_empty());
        // A float-only storage needs no histogram method.
        struct FloatsOnly;
        impl Storage for FloatsOnly {
            fn select(&self, _: &[Matcher], _: &SelectHints) -> Result<Vec<Series>> {
                Ok(Vec::new())
            }
        }
        assert!(FloatsOnly.select_histograms(&m, &all).unwrap().is_empty());
    }
}
