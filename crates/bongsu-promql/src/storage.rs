//! The small storage trait the engine evaluates over, and an in-memory implementation.

use std::sync::RwLock;

use bongsu_model::{Labels, Sample};
use regex::Regex;

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

/// What the engine needs from a time-series store.
pub trait Storage: Send + Sync {
    /// Returns every series that all `matchers` accept, with its samples whose timestamps
    /// lie in `hints.start_ms..=hints.end_ms` (staleness markers included), in timestamp
    /// order. Series without samples in the range may be left out.
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<Series>>;
}

/// An in-memory [`Storage`], for tests and small embedded uses.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    series: RwLock<Vec<Series>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends samples to the series with `labels`, creating it when new. Samples are
    /// kept sorted by timestamp; a sample at an existing timestamp replaces the old one.
    pub fn add(&self, labels: Labels, samples: impl IntoIterator<Item = Sample>) {
        let mut all = match self.series.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let idx = match all.iter().position(|s| s.labels == labels) {
            Some(i) => i,
            None => {
                all.push(Series {
                    labels,
                    samples: Vec::new(),
                });
                all.len() - 1
            }
        };
        let s = &mut all[idx].samples;
        for sample in samples {
            match s.binary_search_by_key(&sample.timestamp_ms, |x| x.timestamp_ms) {
                Ok(i) => s[i] = sample,
                Err(i) => s.insert(i, sample),
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

impl Storage for MemoryStorage {
    fn select(&self, matchers: &[Matcher], hints: &SelectHints) -> Result<Vec<Series>> {
        let all = match self.series.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut out = Vec::new();
        for s in all.iter() {
            if !Matcher::all_match(matchers, &s.labels) {
                continue;
            }
            let lo = s
                .samples
                .partition_point(|x| x.timestamp_ms < hints.start_ms);
            let hi = s
                .samples
                .partition_point(|x| x.timestamp_ms <= hints.end_ms);
            if lo >= hi {
                continue;
            }
            out.push(Series {
                labels: s.labels.clone(),
                samples: s.samples[lo..hi].to_vec(),
            });
        }
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
}
