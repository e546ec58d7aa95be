//! One scrape's worth of logic, free of I/O: from a response body (or a failure) to the record
//! appended to the `metrics` topic — target labels, `honor_labels`, metric relabeling,
//! `sample_limit`, staleness markers and the synthetic report series.

use std::collections::HashSet;
use std::time::Duration;

use bongsu_ingest::{parse_exposition, ExpositionFormat, Limits};
use bongsu_model::{Label, Labels, MetricsRecord, Sample, Series, METRIC_NAME};

use crate::config::JobConfig;
use crate::relabel::{is_label_name, relabel};
use crate::target::Target;

/// The synthetic series written for every scrape, in this order.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// What a scrape fetched: the body and how to parse it, or why it failed.
pub(crate) type Fetched = Result<(Vec<u8>, ExpositionFormat), String>;

/// The outcome of one scrape, as appended.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) record: MetricsRecord,
    /// Why the scrape failed (`up` is 0), if it did.
    pub(crate) error: Option<String>,
}

/// What a target's scrapes need to remember between scrapes.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    /// Series of the last scrape without an explicit timestamp: the ones that get a staleness
    /// marker when they disappear.
    prev: HashSet<Labels>,
    /// Series of the last successful scrape, for `scrape_series_added`.
    known: HashSet<Labels>,
    /// Whether any scrape has been appended (report series exist).
    reported: bool,
}

/// The fixed inputs of a target's scrapes.
pub(crate) struct Context<'a> {
    pub(crate) target: &'a Target,
    pub(crate) job: &'a JobConfig,
    pub(crate) external_labels: &'a Labels,
    pub(crate) limits: &'a Limits,
}

impl Context<'_> {
    fn report_labels(&self, name: &str) -> Labels {
        let mut l = self.target.labels.clone();
        l.set(METRIC_NAME, name);
        add_absent(&mut l, self.external_labels);
        l
    }
}

fn add_absent(labels: &mut Labels, extra: &Labels) {
    for e in extra {
        if labels.get(&e.name).is_none() {
            labels.set(&e.name, &e.value);
        }
    }
}

/// Prometheus's `mutateSampleLabels` without the relabeling: attaches the target's labels to
/// an exposed series. With `honor` the exposed values win; without it the target's win and
/// exposed values are kept under `exported_<name>` (prefixed again until the name is free).
pub(crate) fn attach_target_labels(exposed: Labels, target: &Labels, honor: bool) -> Labels {
    if honor {
        let mut out = exposed;
        for l in target {
            if out.get(&l.name).is_none() {
                out.set(&l.name, &l.value);
            }
        }
        return out;
    }
    let mut conflicts: Vec<Label> = target
        .iter()
        .filter_map(|l| exposed.get(&l.name).map(|v| Label::new(l.name.clone(), v)))
        .collect();
    let mut out = exposed.clone();
    for l in target {
        out.set(&l.name, &l.value);
    }
    if conflicts.is_empty() {
        return out;
    }
    conflicts.sort_by_key(|c| c.name.len());
    for i in 0..conflicts.len() {
        let mut name = conflicts[i].name.clone();
        loop {
            name = format!("exported_{name}");
            let taken = exposed.get(&name).is_some()
                || target.get(&name).is_some()
                || conflicts[..i].iter().any(|c| c.name == name);
            if !taken {
                break;
            }
        }
        conflicts[i].name = name;
    }
    for c in conflicts {
        out.set(&c.name, &c.value);
    }
    out
}

impl SeriesCache {
    /// Turns what a scrape fetched at `ts_ms` (taking `duration`) into the record to append,
    /// and remembers the series for the next scrape.
    pub(crate) fn scrape(
        &mut self,
        ctx: &Context<'_>,
        ts_ms: i64,
        fetched: Fetched,
        duration: Duration,
    ) -> Outcome {
        let mut series: Vec<Series> = Vec::new();
        let mut metadata = Vec::new();
        let mut scraped = 0usize;
        let result = fetched.and_then(|(body, format)| {
            let expo = parse_exposition(&body, format, ts_ms, ctx.limits)
                .map_err(|e| format!("cannot parse the {} response: {e}", format_name(format)))?;
            scraped = expo.samples.len();
            metadata = expo.metadata;
            self.samples(ctx, ts_ms, expo.samples)
        });
        let (error, kept, tracked, added) = match result {
            Ok((kept, tracked)) => {
                let added = kept
                    .iter()
                    .filter(|s| !self.known.contains(&s.labels))
                    .count();
                (None, kept, tracked, added)
            }
            Err(e) => (Some(e), Vec::new(), HashSet::new(), 0),
        };
        let post = kept.len();
        // Staleness: every series of the previous scrape that this one lacks (all of them when
        // the scrape failed) gets a staleness marker at this scrape's time.
        let stale: Vec<Labels> = self.prev.difference(&tracked).cloned().collect();
        if error.is_none() {
            self.known = kept.iter().map(|s| s.labels.clone()).collect();
        } else {
            metadata.clear();
        }
        series.extend(kept);
        series.extend(stale.into_iter().map(|labels| Series {
            labels,
            samples: vec![Sample::stale(ts_ms)],
        }));
        self.prev = tracked;
        let values = [
            if error.is_none() { 1.0 } else { 0.0 },
            duration.as_secs_f64(),
            scraped as f64,
            post as f64,
            added as f64,
        ];
        for (name, v) in REPORT_SERIES.iter().zip(values) {
            series.push(Series {
                labels: ctx.report_labels(name),
                samples: vec![Sample::new(ts_ms, v)],
            });
        }
        self.reported = true;
        Outcome {
            record: MetricsRecord { series, metadata },
            error,
        }
    }

    /// Target labels, metric relabeling, duplicate and limit checks. Returns the series kept
    /// and the subset tracked for staleness (those without an explicit timestamp).
    fn samples(
        &self,
        ctx: &Context<'_>,
        ts_ms: i64,
        samples: Vec<(Labels, Sample)>,
    ) -> Result<(Vec<Series>, HashSet<Labels>), String> {
        let job = ctx.job;
        let mut kept = Vec::with_capacity(samples.len());
        let mut seen: HashSet<Labels> = HashSet::with_capacity(samples.len());
        let mut tracked = HashSet::with_capacity(samples.len());
        for (labels, mut sample) in samples {
            if !job.honor_timestamps {
                sample.timestamp_ms = ts_ms;
            }
            let mut labels = attach_target_labels(labels, &ctx.target.labels, job.honor_labels);
            if !relabel(&mut labels, &job.metric_relabel_configs) {
                continue;
            }
            if labels.metric_name().is_none() {
                return Err(
                    "metric_relabel_configs removed __name__ from a series: keep the metric name"
                        .to_owned(),
                );
            }
            if let Some(bad) = labels.iter().find(|l| !is_label_name(&l.name)) {
                return Err(format!(
                    "invalid label name {:?} after metric relabeling",
                    bad.name
                ));
            }
            add_absent(&mut labels, ctx.external_labels);
            // The first sample of a series wins; Prometheus refuses later duplicates too.
            if !seen.insert(labels.clone()) {
                continue;
            }
            if job.sample_limit > 0 && kept.len() >= job.sample_limit {
                return Err(format!(
                    "sample_limit exceeded: more than {} samples after metric relabeling: raise sample_limit or drop series with metric_relabel_configs",
                    job.sample_limit
                ));
            }
            if sample.timestamp_ms == ts_ms {
                tracked.insert(labels.clone());
            }
            kept.push(Series {
                labels,
                samples: vec![sample],
            });
        }
        Ok((kept, tracked))
    }

    /// The record appended when the target goes away: staleness markers at `ts_ms` for the
    /// last scrape's series and the report series. `None` when nothing was ever appended.
    pub(crate) fn end_of_run(&mut self, ctx: &Context<'_>, ts_ms: i64) -> Option<MetricsRecord> {
        if !self.reported {
            return None;
        }
        let mut series: Vec<Series> = self
            .prev
            .drain()
            .map(|labels| Series {
                labels,
                samples: vec![Sample::stale(ts_ms)],
            })
            .collect();
        for name in REPORT_SERIES {
            series.push(Series {
                labels: ctx.report_labels(name),
                samples: vec![Sample::stale(ts_ms)],
            });
        }
        self.reported = false;
        self.known.clear();
        Some(MetricsRecord {
            series,
            metadata: Vec::new(),
        })
    }
}

fn format_name(f: ExpositionFormat) -> &'static str {
    match f {
        ExpositionFormat::OpenMetrics => "OpenMetrics",
        ExpositionFormat::PrometheusText => "Prometheus text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScrapeConfig;
    use std::path::Path;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn setup(extra: &str) -> (JobConfig, Target, Labels) {
        let y = format!(
            "global: {{external_labels: {{dc: x}}}}\nscrape_configs:\n  - job_name: j\n    static_configs: [{{targets: ['h:1']}}]\n{extra}"
        );
        let c = ScrapeConfig::parse(&y, Path::new("/")).unwrap();
        let job = c.jobs[0].clone();
        let t = crate::target::targets_from_group(&job, &job.static_configs[0], &[])
            .0
            .remove(0);
        (job, t, c.external_labels)
    }

    fn body(text: &str) -> Fetched {
        Ok((text.as_bytes().to_vec(), ExpositionFormat::PrometheusText))
    }

    fn value(rec: &MetricsRecord, name: &str) -> Option<Sample> {
        rec.series
            .iter()
            .find(|s| s.labels.metric_name() == Some(name))
            .map(|s| s.samples[0])
    }

    fn stale_names(rec: &MetricsRecord) -> Vec<String> {
        let mut v: Vec<String> = rec
            .series
            .iter()
            .filter(|s| s.samples[0].is_stale())
            .map(|s| s.labels.to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn honor_labels_false_renames_conflicts_to_exported() {
        let target = l(&[("instance", "h:1"), ("job", "j")]);
        let out = attach_target_labels(
            l(&[("__name__", "m"), ("job", "exp"), ("exported_job", "taken")]),
            &target,
            false,
        );
        assert_eq!(
            out,
            l(&[
                ("__name__", "m"),
                ("exported_exported_job", "exp"),
                ("exported_job", "taken"),
                ("instance", "h:1"),
                ("job", "j"),
            ])
        );
        // Two conflicts: shorter names are renamed first, both end up exported_.
        let out = attach_target_labels(
            l(&[("__name__", "m"), ("job", "a"), ("instance", "b")]),
            &target,
            false,
        );
        assert_eq!(out.get("exported_job"), Some("a"));
        assert_eq!(out.get("exported_instance"), Some("b"));
        assert_eq!(out.get("job"), Some("j"));
    }

    #[test]
    fn honor_labels_true_keeps_exposed_values() {
        let target = l(&[("instance", "h:1"), ("job", "j")]);
        let out = attach_target_labels(l(&[("__name__", "m"), ("job", "exp")]), &target, true);
        assert_eq!(
            out,
            l(&[("__name__", "m"), ("instance", "h:1"), ("job", "exp")])
        );
    }

    #[test]
    fn a_scrape_carries_samples_report_series_and_external_labels() {
        let (job, t, ext) = setup("");
        let limits = Limits::default();
        let ctx = Context {
            target: &t,
            job: &job,
            external_labels: &ext,
            limits: &limits,
        };
        let mut c = SeriesCache::default();
        let o = c.scrape(
            &ctx,
            1000,
            body("# TYPE a gauge\na 1\nb{x=\"1\"} 2\n"),
            Duration::from_millis(5),
        );
        assert!(o.error.is_none());
        let names: Vec<String> = o
            .record
            .series
            .iter()
            .map(|s| s.labels.to_string())
            .collect();
        assert_eq!(
            names,
            [
                r#"a{dc="x", instance="h:1", job="j"}"#,
                r#"b{dc="x", instance="h:1", job="j", x="1"}"#,
                r#"up{dc="x", instance="h:1", job="j"}"#,
                r#"scrape_duration_seconds{dc="x", instance="h:1", job="j"}"#,
                r#"scrape_samples_scraped{dc="x", instance="h:1", job="j"}"#,
                r#"scrape_samples_post_metric_relabeling{dc="x", instance="h:1", job="j"}"#,
                r#"scrape_series_added{dc="x", instance="h:1", job="j"}"#,
            ]
        );
        assert_eq!(value(&o.record, "up"), Some(Sample::new(1000, 1.0)));
        assert_eq!(
            value(&o.record, "scrape_duration_seconds"),
            Some(Sample::new(1000, 0.005))
        );
        assert_eq!(
            value(&o.record, "scrape_samples_scraped").unwrap().value,
            2.0
        );
        assert_eq!(value(&o.record, "scrape_series_added").unwrap().value, 2.0);
        assert_eq!(o.record.metadata.len(), 1);
        // Second scrape with the same series: none added.
        let o = c.scrape(&ctx, 2000, body("a 1\nb{x=\"1\"} 3\n"), Duration::ZERO);
        assert_eq!(value(&o.record, "scrape_series_added").unwrap().value, 0.0);
        assert!(stale_names(&o.record).is_empty());
    }

    #[test]
    fn disappearing_series_get_a_staleness_marker_once() {
        let (job, t, ext) = setup("");
        let limits = Limits::default();
        let ctx = Context {
            target: &t,
            job: &job,
            external_labels: &ext,
            limits: &limits,
        };
        let mut c = SeriesCache::default();
        c.scrape(&ctx, 1000, body("a 1\nb 2\nc 3 500\n"), Duration::ZERO);
        let o = c.scrape(&ctx, 2000, body("a 1\nd 4\n"), Duration::ZERO);
        // b went away; c had an explicit timestamp, so it is not tracked (as in Prometheus).
        assert_eq!(
            stale_names(&o.record),
            [r#"b{dc="x", instance="h:1", job="j"}"#]
        );
        let stale = o
            .record
            .series
            .iter()
            .find(|s| s.samples[0].is_stale())
            .unwrap();
        assert_eq!(stale.samples[0].timestamp_ms, 2000);
        assert_eq!(value(&o.record, "scrape_series_added").unwrap().value, 1.0);
        // Not repeated on the next scrape.
        let o = c.scrape(&ctx, 3000, body("a 1\nd 4\n"), Duration::ZERO);
        assert!(stale_names(&o.record).is_empty());
        // A series that comes back is live again and tracked again.
        c.scrape(&ctx, 4000, body("a 1\nb 2\nd 4\n"), Duration::ZERO);
        let o = c.scrape(&ctx, 5000, body("a 1\n"), Duration::ZERO);
        assert_eq!(stale_names(&o.record).len(), 2);
    }

    #[test]
    fn a_failed_scrape_marks_everything_stale_and_reports_down() {
        let (job, t, ext) = setup("");
        let limits = Limits::default();
        let ctx = Context {
            target: &t,
            job: &job,
            external_labels: &ext,
            limits: &limits,
        };
        let mut c = SeriesCache::default();
        c.scrape(&ctx, 1000, body("a 1\nb 2\n"), Duration::ZERO);
        let o = c.scrape(
            &ctx,
            2000,
            Err("connection refused".into()),
            Duration::from_millis(3),
        );
        assert_eq!(o.error.as_deref(), Some("connection refused"));
        assert_eq!(stale_names(&o.record).len(), 2);
        assert_eq!(value(&o.record, "up"), Some(Sample::new(2000, 0.0)));
        assert_eq!(
            value(&o.record, "scrape_samples_scraped").unwrap().value,
            0.0
        );
        // A parse error is a failure too, and marks nothing twice.
        let o = c.scrape(&ctx, 3000, body("a 1\nbad line here x\n"), Duration::ZERO);
        assert!(o
            .error
            .unwrap()
            .contains("cannot parse the Prometheus text response"));
        assert!(stale_names(&o.record).is_empty());
        // Recovery: the series are new again for staleness, but known for series_added.
        let o = c.scrape(&ctx, 4000, body("a 1\nb 2\n"), Duration::ZERO);
        assert_eq!(value(&o.record, "up").unwrap().value, 1.0);
        assert_eq!(value(&o.record, "scrape_series_added").unwrap().value, 0.0);
    }

    #[test]
    fn end_of_run_marks_series_and_report_series_stale() {
        let (job, t, ext) = setup("");
        let limits = Limits::default();
        let ctx = Context {
            target: &t,
            job: &job,
            external_labels: &ext,
            limits: &limits,
        };
        let mut c = SeriesCache::default();
        assert!(c.end_of_run(&ctx, 1).is_none());
        c.scrape(&ctx, 1000, body("a 1\n"), Duration::ZERO);
        let rec = c.end_of_run(&ctx, 1500).unwrap();
        assert_eq!(rec.series.len(), 6);
        assert!(rec
            .series
            .iter()
            .all(|s| s.samples == [Sample::stale(1500)]));
        assert!(c.end_of_run(&ctx, 1600).is_none());
    }

    #[test]
    fn metric_relabeling_sample_limit_and_honor_timestamps() {
        let (job, t, ext) = setup(
            "    honor_timestamps: false\n    sample_limit: 2\n    metric_relabel_configs:\n      - {source_labels: [__name__], regex: 'go_.*', action: drop}\n      - {regex: 'secret', action: labeldrop}\n",
        );
        let limits = Limits::default();
        let ctx = Context {
            target: &t,
            job: &job,
            external_labels: &ext,
            limits: &limits,
        };
        let mut c = SeriesCache::default();
        let o = c.scrape(
            &ctx,
            1000,
            body("go_x 1\ngo_y 1\na{secret=\"s\"} 1 5\nb 2\n"),
            Duration::ZERO,
        );
        assert!(o.error.is_none(), "{:?}", o.error);
        assert_eq!(
            value(&o.record, "scrape_samples_scraped").unwrap().value,
            4.0
        );
        assert_eq!(
            value(&o.record, "scrape_samples_post_metric_relabeling")
                .unwrap()
                .value,
            2.0
        );
        // honor_timestamps: false replaces the exposed timestamp.
        assert_eq!(value(&o.record, "a"), Some(Sample::new(1000, 1.0)));
        assert!(o
            .record
            .series
            .iter()
            .all(|s| s.labels.get("secret").is_none()));
        let o = c.scrape(&ctx, 2000, body("a 1\nb 2\nc 3\n"), Duration::ZERO);
        assert!(o.error.unwrap().contains("sample_limit exceeded"));
        assert_eq!(value(&o.record, "up").unwrap().value, 0.0);
        assert_eq!(stale_names(&o.record).len(), 2);
        assert!(value(&o.record, "c").is_none());
    }

    #[test]
    fn removing_the_metric_name_fails_the_scrape() {
        let (job, t, ext) =
            setup("    metric_relabel_configs: [{regex: __name__, action: labeldrop}]\n");
        let limits = Limits::default();
        let ctx = Context {
            target: &t,
            job: &job,
            external_labels: &ext,
            limits: &limits,
        };
        let o = SeriesCache::default().scrape(&ctx, 1, body("a 1\n"), Duration::ZERO);
        assert!(o.error.unwrap().contains("removed __name__"));
    }

    #[test]
    fn openmetrics_is_parsed_strictly() {
        let (job, t, ext) = setup("");
        let limits = Limits::default();
        let ctx = Context {
            target: &t,
            job: &job,
            external_labels: &ext,
            limits: &limits,
        };
        let mut c = SeriesCache::default();
        let om = |s: &str| Ok((s.as_bytes().to_vec(), ExpositionFormat::OpenMetrics));
        let o = c.scrape(
            &ctx,
            1,
            om("# TYPE a counter\na_total 1\n# EOF\n"),
            Duration::ZERO,
        );
        assert!(o.error.is_none(), "{:?}", o.error);
        assert!(value(&o.record, "a_total").is_some());
        // Without "# EOF" OpenMetrics refuses what the text format accepts.
        let o = c.scrape(&ctx, 2, om("a_total 1\n"), Duration::ZERO);
        assert!(o.error.unwrap().contains("OpenMetrics"));
        let o = c.scrape(&ctx, 3, body("a_total 1\n"), Duration::ZERO);
        assert!(o.error.is_none());
    }
}
