//! Log volumes: bytes of line text per group of streams in a time range, as Loki's
//! `/index/volume` and `/index/volume_range` answer them.
//!
//! Entries of a stream's head are counted exactly by their timestamps. A chunk (sealed or in a
//! segment) is not read: its metadata (`line_bytes`, `min_ts`, `max_ts`) counts whole when the
//! chunk lies inside a bucket, and prorated by the share of its time span inside the bucket
//! otherwise (entries taken as spread evenly over the span). Loki too answers volumes from index
//! statistics, without reading chunks.

use std::collections::{BTreeMap, HashMap};

use bongsu_model::{Label, Labels};

use crate::error::{Error, Result};
use crate::logql::ast::Matcher;
use crate::store::{LogStore, Source};

/// Loki's default number of series of a volume answer.
pub const DEFAULT_VOLUME_LIMIT: usize = 100;

/// How volumes are grouped (Loki's `aggregateBy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VolumeAggregation {
    /// One series per combination of the aggregation labels' values (`aggregateBy=series`).
    #[default]
    Series,
    /// One series per aggregation label name, its value empty (`aggregateBy=labels`): the bytes
    /// of the streams that have that label.
    Labels,
}

/// What a volume query groups by and how many series it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeQuery {
    /// Labels to aggregate into (Loki's `targetLabels`). Empty: the labels named in the
    /// selector (every label of the stream for the match-all selector `{}`). A target label the
    /// selector does not name selects only streams having it.
    pub target_labels: Vec<String>,
    pub aggregate_by: VolumeAggregation,
    /// Series kept per bucket, the biggest first; at least 1.
    pub limit: usize,
}

impl Default for VolumeQuery {
    fn default() -> Self {
        Self {
            target_labels: Vec::new(),
            aggregate_by: VolumeAggregation::Series,
            limit: DEFAULT_VOLUME_LIMIT,
        }
    }
}

/// One series of a volume answer: its labels (sorted by name; for
/// [`VolumeAggregation::Labels`] one label with an empty value) and `(timestamp ns, bytes)`
/// points in time order, one per bucket where the series is among the `limit` biggest. A
/// point's timestamp is the last nanosecond of its bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSeries {
    pub labels: Vec<Label>,
    pub values: Vec<(i64, u64)>,
}

/// A bucket: the inclusive time range `[lo, hi]` it counts; `hi` is its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    lo: i64,
    hi: i64,
}

/// How a stream's labels turn into the keys its bytes are counted under.
struct Grouping {
    /// Every label of the stream (the match-all selector without target labels).
    all: bool,
    /// Else these label names.
    names: Vec<String>,
    /// Target labels the selector does not name: a stream needs a value for each.
    required: Vec<String>,
    by: VolumeAggregation,
}

impl Grouping {
    fn new(matchers: &[Matcher], match_all: bool, q: &VolumeQuery) -> Self {
        let mut targets: Vec<String> = q.target_labels.clone();
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            let mut names: Vec<String> = matchers.iter().map(|m| m.name.clone()).collect();
            names.sort();
            names.dedup();
            return Self {
                all: match_all,
                names,
                required: Vec::new(),
                by: q.aggregate_by,
            };
        }
        let required = targets
            .iter()
            .filter(|t| !matchers.iter().any(|m| &m.name == *t))
            .cloned()
            .collect();
        Self {
            all: false,
            names: targets,
            required,
            by: q.aggregate_by,
        }
    }

    /// The keys `labels` counts under, or `None` when the stream lacks a required label.
    fn keys(&self, labels: &Labels) -> Option<Vec<Vec<Label>>> {
        if self.required.iter().any(|n| labels.get(n).is_none()) {
            return None;
        }
        let kept: Vec<Label> = labels
            .iter()
            .filter(|l| self.all || self.names.binary_search(&l.name).is_ok())
            .cloned()
            .collect();
        Some(match self.by {
            VolumeAggregation::Series => vec![kept],
            VolumeAggregation::Labels => kept
                .into_iter()
                .map(|l| vec![Label::new(l.name, "")])
                .collect(),
        })
    }
}

impl LogStore {
    /// Volumes of the streams selected by `selector` (label matchers only, or `{}` for every
    /// stream) over `[start_ns, end_ns]`: one point per series, stamped `end_ns`, sorted by
    /// bytes descending then labels, at most `q.limit` series.
    pub fn volume(
        &self,
        selector: &str,
        start_ns: i64,
        end_ns: i64,
        q: &VolumeQuery,
    ) -> Result<Vec<VolumeSeries>> {
        if end_ns < start_ns {
            return Err(Error::Query("end is before start: swap them".into()));
        }
        self.volumes(
            selector,
            &[Bucket {
                lo: start_ns,
                hi: end_ns,
            }],
            q,
        )
    }

    /// Volumes over `[start_ns, end_ns]` in buckets of `step_ns`, aligned to multiples of the
    /// step since the epoch as Loki's are (the first bucket starts at `start_ns`, the last ends
    /// at `end_ns`). Each bucket keeps its `q.limit` biggest series; a series has a point in the
    /// buckets where it is kept. Series are sorted by their first point, biggest first, then
    /// by labels.
    pub fn volume_range(
        &self,
        selector: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        q: &VolumeQuery,
    ) -> Result<Vec<VolumeSeries>> {
        if end_ns < start_ns {
            return Err(Error::Query("end is before start: swap them".into()));
        }
        if step_ns <= 0 {
            return Err(Error::Query(
                "step must be positive: give a step such as 1m".into(),
            ));
        }
        let aligned = start_ns.saturating_sub(start_ns.rem_euclid(step_ns));
        let n = if aligned < end_ns {
            ((i128::from(end_ns) - i128::from(aligned) - 1) / i128::from(step_ns) + 1) as u128
        } else {
            0
        };
        if n > self.cfg.max_steps as u128 {
            return Err(Error::Limit(format!(
                "{n} steps exceed the limit of {}: raise the step or shorten the range",
                self.cfg.max_steps
            )));
        }
        let mut buckets = Vec::with_capacity(n as usize);
        let mut b = aligned;
        while b < end_ns {
            let next = b.saturating_add(step_ns);
            buckets.push(Bucket {
                lo: b.max(start_ns),
                hi: if next >= end_ns { end_ns } else { next - 1 },
            });
            b = next;
        }
        self.volumes(selector, &buckets, q)
    }

    fn volumes(
        &self,
        selector: &str,
        buckets: &[Bucket],
        q: &VolumeQuery,
    ) -> Result<Vec<VolumeSeries>> {
        if q.limit == 0 {
            return Err(Error::Query(
                "limit must be positive: give 1 or more".into(),
            ));
        }
        let selector = selector.trim();
        let match_all = selector == "{}";
        let matchers = if match_all {
            Vec::new()
        } else {
            crate::logql::parser::parse_selector(selector)?
        };
        let grouping = Grouping::new(&matchers, match_all, q);
        let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
            return Ok(Vec::new());
        };
        let (start, end) = (first.lo, last.hi);
        // Per key, per bucket index: bytes (present once the stream had data there).
        let mut acc: HashMap<Vec<Label>, BTreeMap<usize, u64>> = HashMap::new();
        let mut per_stream: BTreeMap<usize, u64> = BTreeMap::new();
        for id in self.select(&matchers) {
            let labels = &self.streams[id].labels;
            let Some(keys) = grouping.keys(labels) else {
                continue;
            };
            per_stream.clear();
            for src in self.sources(id, start, end) {
                match src {
                    Source::Head(h) => {
                        let in_range = h
                            .iter()
                            .skip_while(|e| e.timestamp_ns < start)
                            .take_while(|e| e.timestamp_ns <= end);
                        for e in in_range {
                            let i = bucket_of(buckets, e.timestamp_ns);
                            *per_stream.entry(i).or_default() += e.line.len() as u64;
                        }
                    }
                    other => {
                        if let Some(m) = other.meta() {
                            spread_chunk(buckets, m.min_ts, m.max_ts, m.line_bytes, |i, b| {
                                *per_stream.entry(i).or_default() += b;
                            });
                        }
                    }
                }
            }
            if per_stream.is_empty() {
                continue;
            }
            for key in keys {
                let slot = acc.entry(key).or_default();
                for (&i, &b) in &per_stream {
                    *slot.entry(i).or_default() += b;
                }
            }
        }
        // Rank each bucket, keep its `limit` biggest.
        let mut series: HashMap<&Vec<Label>, Vec<(i64, u64)>> = HashMap::new();
        let mut ranked: Vec<(&Vec<Label>, u64)> = Vec::new();
        for (i, b) in buckets.iter().enumerate() {
            ranked.clear();
            ranked.extend(
                acc.iter()
                    .filter_map(|(k, per)| per.get(&i).map(|&bytes| (k, bytes))),
            );
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            ranked.truncate(q.limit);
            for &(k, bytes) in &ranked {
                series.entry(k).or_default().push((b.hi, bytes));
            }
        }
        let mut out: Vec<VolumeSeries> = series
            .into_iter()
            .map(|(k, values)| VolumeSeries {
                labels: k.clone(),
                values,
            })
            .collect();
        out.sort_by(|a, b| {
            let first = |s: &VolumeSeries| s.values.first().map_or(0, |v| v.1);
            first(b)
                .cmp(&first(a))
                .then_with(|| a.labels.cmp(&b.labels))
        });
        Ok(out)
    }
}

/// Index of the bucket holding `ts` (which lies within the buckets' span).
fn bucket_of(buckets: &[Bucket], ts: i64) -> usize {
    buckets
        .partition_point(|b| b.hi < ts)
        .min(buckets.len() - 1)
}

/// Spreads `bytes` of a chunk spanning `[min_ts, max_ts]` over the buckets it overlaps, in
/// proportion to the overlap, calling `add(bucket index, bytes)`. The shares are cut from the
/// running total, so a chunk wholly inside the buckets adds up to exactly `bytes`.
fn spread_chunk(
    buckets: &[Bucket],
    min_ts: i64,
    max_ts: i64,
    bytes: u64,
    mut add: impl FnMut(usize, u64),
) {
    let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
        return;
    };
    let (min_ts, max_ts) = (min_ts.min(max_ts), max_ts.max(min_ts));
    let lo = min_ts.max(first.lo);
    let hi = max_ts.min(last.hi);
    if lo > hi {
        return;
    }
    let span = i128::from(max_ts) - i128::from(min_ts) + 1;
    // Bytes before nanosecond `x` of the chunk's span (x in [min_ts, max_ts + 1]).
    let upto = |x: i128| -> u64 {
        let part = (x - i128::from(min_ts)).clamp(0, span);
        (i128::from(bytes) * part / span) as u64
    };
    let mut i = bucket_of(buckets, lo);
    while let Some(b) = buckets.get(i) {
        if b.lo > hi {
            break;
        }
        let a = lo.max(b.lo);
        let z = hi.min(b.hi);
        if a <= z {
            add(i, upto(i128::from(z) + 1) - upto(i128::from(a)));
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use bongsu_model::{LogEntry, LogStream};

    use super::*;
    use crate::Config;

    fn stream(pairs: &[(&str, &str)], lines: &[(i64, &str)]) -> LogStream {
        LogStream {
            labels: Labels::from_pairs(pairs.iter().copied()).unwrap(),
            entries: lines.iter().map(|&(t, l)| LogEntry::new(t, l)).collect(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        let mut v: Vec<Label> = pairs.iter().map(|&(n, v)| Label::new(n, v)).collect();
        v.sort();
        v
    }

    /// Each series' labels and points.
    type Flat = Vec<(Vec<Label>, Vec<(i64, u64)>)>;

    fn flat(out: &[VolumeSeries]) -> Flat {
        out.iter()
            .map(|s| (s.labels.clone(), s.values.clone()))
            .collect()
    }

    /// Four streams: job foo/bar × env prod/dev, team alpha for foo, beta for bar.
    fn shop(dir: &std::path::Path) -> LogStore {
        let mut s = LogStore::open(dir, Config::default()).unwrap();
        let rec = vec![
            stream(
                &[("job", "foo"), ("env", "prod"), ("team", "alpha")],
                &[(10, "aaaa"), (20, "bbbbbb")],
            ),
            stream(
                &[("job", "foo"), ("env", "dev"), ("team", "alpha")],
                &[(15, "cc")],
            ),
            stream(
                &[("job", "bar"), ("env", "prod"), ("team", "beta")],
                &[(12, "ddddddddd"), (30, "e")],
            ),
            stream(&[("job", "bar"), ("env", "dev")], &[(25, "fff")]),
        ];
        assert!(s.append_record(0, 0, &rec).unwrap().is_empty());
        s
    }

    #[test]
    fn head_volumes_are_exact_per_selector_labels() {
        let dir = tempfile::tempdir().unwrap();
        let s = shop(dir.path());
        let q = VolumeQuery::default();
        // Grouped by the labels the selector names: job and env.
        let out = s.volume(r#"{job="foo", env=~".+"}"#, 0, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("env", "prod"), ("job", "foo")]), vec![(100, 10)]),
                (labels(&[("env", "dev"), ("job", "foo")]), vec![(100, 2)]),
            ]
        );
        // The range cuts entries exactly: only the line at 20 of foo/prod is in [16, 100].
        let out = s.volume(r#"{job="foo"}"#, 16, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![(labels(&[("job", "foo")]), vec![(100, 6)])]
        );
        // A stream without data in the range is not counted at all.
        assert!(s.volume(r#"{job="foo"}"#, 31, 100, &q).unwrap().is_empty());
        // The match-all selector groups by every label of each stream.
        let out = s.volume("{}", 0, 100, &q).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(
            out[0].labels,
            labels(&[("env", "prod"), ("job", "bar"), ("team", "beta")])
        );
        assert_eq!(out[0].values, vec![(100, 10)]);
        assert!(s.volume(r#"{job="foo"} |= "x""#, 0, 100, &q).is_err());
        assert!(s
            .volume(r#"{job="foo"}"#, 0, 100, &VolumeQuery { limit: 0, ..q })
            .is_err());
    }

    #[test]
    fn target_labels_and_aggregate_by_labels() {
        let dir = tempfile::tempdir().unwrap();
        let s = shop(dir.path());
        // Target labels replace the selector's: team, which only three streams have.
        let q = VolumeQuery {
            target_labels: vec!["team".into()],
            ..VolumeQuery::default()
        };
        let out = s.volume(r#"{env=~"prod|dev"}"#, 0, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("team", "alpha")]), vec![(100, 12)]),
                (labels(&[("team", "beta")]), vec![(100, 10)]),
            ]
        );
        // A target the selector names keeps the selector's matcher: team!="x" matches the
        // stream without team too, counted under no label ...
        let q = VolumeQuery {
            target_labels: vec!["team".into()],
            ..VolumeQuery::default()
        };
        let out = s.volume(r#"{job="bar", team!="x"}"#, 0, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("team", "beta")]), vec![(100, 10)]),
                (labels(&[]), vec![(100, 3)]),
            ]
        );
        // ... while a target it does not name selects only streams having it.
        let out = s.volume(r#"{job="bar"}"#, 0, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![(labels(&[("team", "beta")]), vec![(100, 10)])]
        );
        // By label name: each label a stream has counts the stream's bytes, value "".
        let q = VolumeQuery {
            target_labels: vec!["team".into(), "env".into()],
            aggregate_by: VolumeAggregation::Labels,
            ..VolumeQuery::default()
        };
        let out = s.volume(r#"{job=~"foo|bar"}"#, 0, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("env", "")]), vec![(100, 22)]),
                (labels(&[("team", "")]), vec![(100, 22)]),
            ],
            "team is required (not in the selector): the stream without it is left out; ties by label"
        );
        let q = VolumeQuery {
            aggregate_by: VolumeAggregation::Labels,
            ..VolumeQuery::default()
        };
        let out = s.volume("{}", 0, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("env", "")]), vec![(100, 25)]),
                (labels(&[("job", "")]), vec![(100, 25)]),
                (labels(&[("team", "")]), vec![(100, 22)]),
            ]
        );
    }

    #[test]
    fn limit_keeps_the_biggest_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = shop(dir.path());
        let q = VolumeQuery {
            limit: 2,
            ..VolumeQuery::default()
        };
        let out = s.volume(r#"{job=~".+", env=~".+"}"#, 0, 100, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("env", "prod"), ("job", "bar")]), vec![(100, 10)]),
                (labels(&[("env", "prod"), ("job", "foo")]), vec![(100, 10)]),
            ],
            "equal volumes ordered by labels, the two smaller ones cut"
        );
    }

    #[test]
    fn chunks_count_whole_inside_and_prorated_across_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path(), Config::default()).unwrap();
        // 100 bytes over [0, 99]: ten lines of ten bytes, one every 11 ns.
        let lines: Vec<(i64, String)> = (0..10).map(|i| (i * 11, format!("{i:0>10}"))).collect();
        let entries: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        s.append_record(0, 0, &[stream(&[("app", "a")], &entries)])
            .unwrap();
        let head = s
            .volume(r#"{app="a"}"#, 0, 49, &VolumeQuery::default())
            .unwrap();
        assert_eq!(
            head[0].values,
            vec![(49, 50)],
            "head: five lines in [0, 49]"
        );
        s.flush().unwrap();
        let q = VolumeQuery::default();
        let v = |s: &LogStore, a: i64, b: i64| -> Vec<(i64, u64)> {
            s.volume(r#"{app="a"}"#, a, b, &q)
                .unwrap()
                .into_iter()
                .flat_map(|s| s.values)
                .collect()
        };
        assert_eq!(v(&s, 0, 99), vec![(99, 100)], "wholly inside: whole");
        assert_eq!(v(&s, -1000, 1000), vec![(1000, 100)]);
        assert_eq!(
            v(&s, 0, 49),
            vec![(49, 50)],
            "half the span: half the bytes"
        );
        assert_eq!(v(&s, 90, 200), vec![(200, 10)], "the last tenth");
        assert_eq!(v(&s, 99, 99), vec![(99, 1)], "one nanosecond of a hundred");
        assert!(v(&s, 100, 200).is_empty());
        // Buckets of 30 ns: [0,29] [30,59] [60,89] [90,99]: prorated shares add up to the whole.
        let out = s.volume_range(r#"{app="a"}"#, 0, 99, 30, &q).unwrap();
        assert_eq!(out[0].values, vec![(29, 30), (59, 30), (89, 30), (99, 10)]);
        // The same from the head before the flush is exact instead: lines at 0,11,22 | 33,44,55
        // | 66,77,88 | 99.
        let dir2 = tempfile::tempdir().unwrap();
        let mut h = LogStore::open(dir2.path(), Config::default()).unwrap();
        h.append_record(0, 0, &[stream(&[("app", "a")], &entries)])
            .unwrap();
        let out = h.volume_range(r#"{app="a"}"#, 0, 99, 30, &q).unwrap();
        assert_eq!(out[0].values, vec![(29, 30), (59, 30), (89, 30), (99, 10)]);
    }

    #[test]
    fn range_buckets_align_to_the_step_and_limit_each_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(dir.path(), Config::default()).unwrap();
        let rec = vec![
            stream(&[("app", "a")], &[(5, "aaaaa"), (25, "a")]),
            stream(&[("app", "b")], &[(6, "bb"), (21, "bbbbbbb")]),
        ];
        s.append_record(0, 0, &rec).unwrap();
        let q = VolumeQuery {
            limit: 1,
            ..VolumeQuery::default()
        };
        // start 3, step 10: buckets [3,9] [10,19] [20,27]; the middle one is empty.
        let out = s.volume_range(r#"{app=~"a|b"}"#, 3, 27, 10, &q).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("app", "b")]), vec![(27, 7)]),
                (labels(&[("app", "a")]), vec![(9, 5)]),
            ]
        );
        let all = VolumeQuery::default();
        let out = s.volume_range(r#"{app=~"a|b"}"#, 3, 27, 10, &all).unwrap();
        assert_eq!(
            flat(&out),
            vec![
                (labels(&[("app", "a")]), vec![(9, 5), (27, 1)]),
                (labels(&[("app", "b")]), vec![(9, 2), (27, 7)]),
            ]
        );
        assert!(s
            .volume_range(r#"{app="a"}"#, 10, 10, 10, &all)
            .unwrap()
            .is_empty());
        assert!(s.volume_range(r#"{app="a"}"#, 0, 10, 0, &all).is_err());
        assert!(matches!(
            s.volume_range(r#"{app="a"}"#, 0, i64::MAX, 1, &all),
            Err(Error::Limit(_))
        ));
        // Extreme times neither overflow nor find anything.
        assert!(s
            .volume_range(r#"{app="a"}"#, i64::MIN, i64::MIN + 10, 1_000_000_000, &all)
            .unwrap()
            .is_empty());
        assert!(s
            .volume_range(r#"{app="a"}"#, i64::MAX - 10, i64::MAX, 7, &all)
            .unwrap()
            .is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

        /// Over a range holding every entry, volumes are the line bytes per group, the same
        /// from heads and, after a flush into many small chunks, from chunk metadata; per-step
        /// buckets add up to the same totals.
        #[test]
        fn whole_range_volumes_match_the_lines_before_and_after_a_flush(
            entries in proptest::collection::vec((0usize..6, 0i64..1000, 0usize..30), 1..80),
            step in 1i64..400,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let cfg = Config { chunk_target_bytes: 50, ..Config::default() };
            let mut s = LogStore::open(dir.path(), cfg).unwrap();
            let mut model: BTreeMap<String, u64> = BTreeMap::new();
            let mut recs: Vec<LogStream> = Vec::new();
            for &(who, ts, len) in &entries {
                let (app, env) = (["a", "b", "c"][who % 3], ["x", "y"][who / 3]);
                recs.push(stream(&[("app", app), ("env", env)], &[(ts, &"z".repeat(len))]));
                *model.entry(env.to_owned()).or_default() += len as u64;
            }
            for (off, r) in recs.iter().enumerate() {
                s.append_record(0, off as u64, std::slice::from_ref(r)).unwrap();
            }
            let q = VolumeQuery { target_labels: vec!["env".into()], ..VolumeQuery::default() };
            let totals = |s: &LogStore| -> BTreeMap<String, u64> {
                s.volume(r#"{app=~".+"}"#, -5, 1005, &q)
                    .unwrap()
                    .into_iter()
                    .map(|v| (v.labels[0].value.clone(), v.values[0].1))
                    .collect()
            };
            let range_totals = |s: &LogStore| -> BTreeMap<String, u64> {
                s.volume_range(r#"{app=~".+"}"#, -5, 1005, step, &q)
                    .unwrap()
                    .into_iter()
                    .map(|v| (v.labels[0].value.clone(), v.values.iter().map(|p| p.1).sum()))
                    .collect()
            };
            proptest::prop_assert_eq!(&totals(&s), &model);
            proptest::prop_assert_eq!(&range_totals(&s), &model);
            s.flush().unwrap();
            proptest::prop_assert_eq!(&totals(&s), &model);
            proptest::prop_assert_eq!(&range_totals(&s), &model);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// However the buckets cut a chunk, its shares add up to the bytes of the part of its
        /// span inside them, and a chunk inside them counts whole.
        #[test]
        fn chunk_shares_add_up(
            min in -1000i64..1000, len in 0i64..500, bytes in 0u64..100_000,
            start in -1500i64..1500, width in 0i64..3000, step in 1i64..400,
        ) {
            let max = min + len;
            let end = start + width;
            let aligned = start - start.rem_euclid(step);
            let mut buckets = Vec::new();
            let mut b = aligned;
            while b < end {
                let next = b + step;
                buckets.push(Bucket { lo: b.max(start), hi: if next >= end { end } else { next - 1 } });
                b = next;
            }
            let mut total = 0u64;
            spread_chunk(&buckets, min, max, bytes, |i, b| {
                assert!(i < buckets.len());
                total += b;
            });
            if buckets.is_empty() || max < start || min > end {
                proptest::prop_assert_eq!(total, 0);
            } else if min >= start && max <= end {
                proptest::prop_assert_eq!(total, bytes);
            } else {
                let inside = (max.min(end) - min.max(start) + 1) as u128;
                let expect = (u128::from(bytes) * inside / (len as u128 + 1)) as u64;
                proptest::prop_assert!(total.abs_diff(expect) <= 1, "{total} vs {expect}");
            }
        }
    }
}
