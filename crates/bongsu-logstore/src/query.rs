//! Query evaluation over the store.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use bongsu_model::Labels;

use crate::chunk::DecodedChunk;
use crate::error::{Error, Result};
use crate::logql::ast::*;
use crate::logql::parser;
use crate::pipeline::{self, Compiled, LineLabels, ERROR_LABEL};
use crate::result::*;
use crate::store::{LogStore, Source};

/// Series of `(timestamp ns, value)` points.
type Series = Vec<(Labels, Vec<(i64, f64)>)>;

/// A line of a log query's result: timestamp, arrival number (ties), line, labels.
type Hit = (i64, u64, String, Labels);

/// Thins `got` (sorted in `dir` order) by `interval`: keeps the first line and then each line
/// at least `interval` after (forward) or before (backward) the last kept one. Cuts after the
/// `limit`-th kept line and returns its timestamp (None while fewer are kept). Drops the lines
/// not kept for which `settled(ts)` holds; the others stay, as lines still to come may change
/// what is kept around them.
fn thin(
    got: &mut Vec<Hit>,
    dir: Direction,
    interval: i64,
    limit: usize,
    settled: impl Fn(i64) -> bool,
) -> Option<i64> {
    let mut last: Option<i64> = None;
    let mut kept = 0usize;
    let mut keep = vec![false; got.len()];
    let mut cut = None;
    for (i, g) in got.iter().enumerate() {
        let ok = match (last, dir) {
            (None, _) => true,
            (Some(l), Direction::Forward) => g.0 >= l.saturating_add(interval),
            (Some(l), Direction::Backward) => g.0 <= l.saturating_sub(interval),
        };
        if ok {
            last = Some(g.0);
            keep[i] = true;
            kept += 1;
            if kept == limit {
                cut = Some(i + 1);
                break;
            }
        }
    }
    if let Some(c) = cut {
        got.truncate(c);
        keep.truncate(c);
    }
    let mut i = 0;
    got.retain(|g| {
        let k = keep[i] || !settled(g.0);
        i += 1;
        k
    });
    cut.and_then(|_| got.last().map(|g| g.0))
}

/// A log expression ready to run.
struct Prepared<'a> {
    expr: &'a LogExpr,
    /// The leading line filters, run chunk-wide.
    prefix: Vec<Compiled>,
    /// The remaining stages and their compiled line filters.
    rest: &'a [Stage],
    rest_compiled: Vec<Option<Compiled>>,
    /// Every chunk read must hold all these tokens ...
    required: Vec<u64>,
    /// ... and all these winnowed grams (of the filters' required literals).
    required_grams: Vec<u64>,
}

impl<'a> Prepared<'a> {
    fn new(expr: &'a LogExpr) -> Self {
        let n = expr
            .stages
            .iter()
            .take_while(|s| matches!(s, Stage::Line(_)))
            .count();
        let mut prefix = Vec::new();
        let mut required = Vec::new();
        let mut required_grams = Vec::new();
        for s in &expr.stages[..n] {
            if let Stage::Line(f) = s {
                prefix.push(Compiled::new(f));
                required.extend(pipeline::required_tokens(f));
                for lit in crate::literals::required_literals(f) {
                    required_grams.extend(crate::ngrams::required_grams(&lit));
                }
            }
        }
        // Drive the chunk scan with the most selective-looking positive filter: the longest
        // literal, else a regex; negative filters never drive.
        let drive = prefix
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Compiled::Contains(f) => Some((i, 1_000 + f.needle().len())),
                Compiled::Match { scan: Some(_), .. } => Some((i, 1)),
                _ => None,
            })
            .max_by_key(|&(_, score)| score)
            .map(|(i, _)| i);
        if let Some(i) = drive {
            prefix.swap(0, i);
        }
        required.sort_unstable();
        required.dedup();
        required_grams.sort_unstable();
        required_grams.dedup();
        let rest = &expr.stages[n..];
        let rest_compiled = rest
            .iter()
            .map(|s| match s {
                Stage::Line(f) => Some(Compiled::new(f)),
                _ => None,
            })
            .collect();
        Self {
            expr,
            prefix,
            rest,
            rest_compiled,
            required,
            required_grams,
        }
    }

    fn chunk_may_match(&self, src: &Source<'_>) -> bool {
        match src.meta() {
            Some(m) => {
                self.required.iter().all(|&h| m.filter.may_contain(h))
                    && m.grams
                        .as_ref()
                        .is_none_or(|g| self.required_grams.iter().all(|&h| g.may_contain(h)))
            }
            None => true,
        }
    }
}

/// One line that went through the pipeline.
struct Out<'a> {
    ts: i64,
    /// Where the scan stands: every line still to come is at or after this timestamp in the
    /// scan's order (the start of the current source's time range in that order).
    from: i64,
    line: Cow<'a, str>,
    labels: Cow<'a, Labels>,
}

impl LogStore {
    /// Ids of the streams matching every matcher.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> Vec<usize> {
        let mut cand: Option<BTreeSet<usize>> = None;
        for m in matchers
            .iter()
            .filter(|m| m.op == MatchOp::Eq && !m.value.is_empty())
        {
            let ids: BTreeSet<usize> = self
                .postings
                .get(&m.name)
                .and_then(|v| v.get(&m.value))
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default();
            cand = Some(match cand {
                None => ids,
                Some(c) => c.intersection(&ids).copied().collect(),
            });
        }
        let all = || (0..self.streams.len()).collect::<BTreeSet<_>>();
        cand.unwrap_or_else(all)
            .into_iter()
            .filter(|&id| {
                let l = &self.streams[id].labels;
                matchers
                    .iter()
                    .all(|m| m.matches(l.get(&m.name).unwrap_or("")))
            })
            .collect()
    }

    /// Runs `p` over entries in `[start, end]` (inclusive), calling `visit` for each line that
    /// passes; `visit` returns the timestamp bound beyond which sources may be skipped.
    fn run_log(
        &self,
        p: &Prepared<'_>,
        start: i64,
        end: i64,
        order: Direction,
        stats: &mut QueryStats,
        mut visit: impl FnMut(Out<'_>) -> Option<i64>,
    ) -> Result<()> {
        let mut sources: Vec<(usize, Source<'_>)> = Vec::new();
        for id in self.select(&p.expr.matchers) {
            for s in self.sources(id, start, end) {
                sources.push((id, s));
            }
        }
        match order {
            Direction::Forward => sources.sort_by_key(|(_, s)| s.time_range().0),
            Direction::Backward => {
                sources.sort_by_key(|(_, s)| std::cmp::Reverse(s.time_range().1))
            }
        }
        stats.chunks_total += sources.len();
        let mut chunk = DecodedChunk::default();
        let mut scratch = Vec::new();
        let mut dctx = crate::chunk::Decompressor::new()
            .map_err(|e| Error::Codec(format!("cannot create a zstd context: {e}")))?;
        let mut bound: Option<i64> = None;
        let mut hits = Vec::new();
        for (id, src) in &sources {
            let (lo_ts, hi_ts) = src.time_range();
            let from = match order {
                Direction::Forward => lo_ts,
                Direction::Backward => hi_ts,
            };
            if let Some(b) = bound {
                let skip = match order {
                    Direction::Forward => lo_ts > b,
                    Direction::Backward => hi_ts < b,
                };
                if skip {
                    continue;
                }
            }
            if !p.chunk_may_match(src) {
                stats.chunks_skipped_by_filter += 1;
                continue;
            }
            src.load(&mut chunk, &mut scratch, &mut dctx)?;
            stats.chunks_scanned += 1;
            let lo = chunk.ts.partition_point(|&t| t < start);
            let hi = chunk.ts.partition_point(|&t| t <= end);
            if lo >= hi {
                continue;
            }
            stats.lines_scanned += (hi - lo) as u64;
            stats.bytes_scanned += u64::from(chunk.starts[hi] - chunk.starts[lo]);
            hits.clear();
            pipeline::scan_lines(&chunk, lo, hi, &p.prefix, |i| hits.push(i));
            let stream = &self.streams[*id].labels;
            for &i in &hits {
                let meta = chunk.metadata(i);
                let ts = chunk.ts[i];
                let raw = chunk.line(i);
                // Lines were valid UTF-8 when written; the chunk's CRC held, so a line that is
                // not is a bug of the writer, reported rather than returned garbled.
                let line = std::str::from_utf8(raw).map_err(|_| {
                    crate::error::corrupt(
                        "<chunk>",
                        format!("line {i} of a chunk of stream {stream} is not valid UTF-8"),
                    )
                })?;
                let out = if p.rest.is_empty() && meta.is_empty() {
                    Out {
                        ts,
                        from,
                        line: Cow::Borrowed(line),
                        labels: Cow::Borrowed(stream),
                    }
                } else {
                    let mut labels = LineLabels::from_stream(stream, meta);
                    match pipeline::run_stages(
                        p.rest,
                        &p.rest_compiled,
                        stream,
                        ts,
                        line,
                        &mut labels,
                    ) {
                        Some(l) => Out {
                            ts,
                            from,
                            line: Cow::Owned(l),
                            labels: Cow::Owned(labels.into_labels()),
                        },
                        None => continue,
                    }
                };
                if let Some(b) = visit(out) {
                    bound = Some(b);
                }
            }
        }
        Ok(())
    }

    fn query_log(
        &self,
        expr: &LogExpr,
        start: i64,
        end: i64,
        limit: usize,
        dir: Direction,
        interval: i64,
    ) -> Result<QueryResult> {
        let p = Prepared::new(expr);
        let mut stats = QueryStats::default();
        let limit = if limit == 0 {
            self.cfg.default_limit
        } else {
            limit
        };
        let mut seq = 0u64;
        let mut got: Vec<Hit> = Vec::new();
        let key = |dir: Direction, ts: i64, seq: u64| match dir {
            Direction::Forward => (ts, seq as i64),
            Direction::Backward => (-ts, seq as i64),
        };
        let mut threshold = limit.saturating_mul(2);
        // Log queries cover [start, end).
        let end_incl = end.saturating_sub(1);
        self.run_log(&p, start, end_incl, dir, &mut stats, |o| {
            seq += 1;
            let from = o.from;
            got.push((o.ts, seq, o.line.into_owned(), o.labels.into_owned()));
            if got.len() < threshold {
                return None;
            }
            got.sort_by_key(|(ts, s, _, _)| key(dir, *ts, *s));
            let bound = if interval > 0 {
                // Lines before the scan position are final: of them only the kept ones matter.
                let settled = |ts: i64| match dir {
                    Direction::Forward => ts < from,
                    Direction::Backward => ts > from,
                };
                thin(&mut got, dir, interval, limit, settled)
            } else {
                got.truncate(limit);
                got.last().map(|g| g.0)
            };
            // The limit-th kept line so far bounds what later sources can contribute.
            threshold = limit.saturating_mul(2).max(got.len().saturating_mul(2));
            bound
        })?;
        got.sort_by_key(|(ts, s, _, _)| key(dir, *ts, *s));
        if interval > 0 {
            thin(&mut got, dir, interval, limit, |_| true);
        }
        got.truncate(limit);
        let mut streams: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
        for (ts, _, line, labels) in got {
            streams.entry(labels).or_default().push((ts, line));
        }
        Ok(QueryResult {
            data: ResultData::Streams(
                streams
                    .into_iter()
                    .map(|(labels, entries)| StreamEntries { labels, entries })
                    .collect(),
            ),
            stats,
        })
    }

    /// Evaluates a range aggregation into series of samples at each step.
    #[allow(clippy::too_many_arguments)]
    fn eval_range(
        &self,
        op: RangeOp,
        param: Option<f64>,
        log: &LogExpr,
        unwrap: Option<&Unwrap>,
        post: &[LabelPred],
        range_ns: i64,
        grouping: Option<&Grouping>,
        steps: &[i64],
        stats: &mut QueryStats,
    ) -> Result<Series> {
        let (Some(&first), Some(&last)) = (steps.first(), steps.last()) else {
            return Ok(Vec::new());
        };
        let p = Prepared::new(log);
        let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        let mut err: Option<Error> = None;
        let max_series = self.cfg.max_series;
        // Windows are (t - range, t].
        let start = first.saturating_sub(range_ns).saturating_add(1);
        self.run_log(&p, start, last, Direction::Forward, stats, |o| {
            if err.is_some() {
                return None;
            }
            let (labels, value) = match unwrap {
                None => {
                    if let Some(e) = o.labels.get(ERROR_LABEL) {
                        err = Some(Error::Pipeline(e.to_owned()));
                        return None;
                    }
                    let v = match op {
                        RangeOp::BytesOverTime | RangeOp::BytesRate => o.line.len() as f64,
                        _ => 1.0,
                    };
                    (o.labels, v)
                }
                Some(u) => {
                    let mut ll = LineLabels {
                        pairs: o
                            .labels
                            .iter()
                            .map(|l| (l.name.clone(), l.value.clone()))
                            .collect(),
                    };
                    let v = pipeline::unwrap_value(u, &ll);
                    if v.is_none() {
                        ll.set(ERROR_LABEL, "SampleExtractionErr".into());
                    }
                    for pr in post {
                        if !pipeline::eval_pred(pr, &mut ll) {
                            return None;
                        }
                    }
                    if let Some(e) = ll.get(ERROR_LABEL).filter(|e| !e.is_empty()) {
                        err = Some(Error::Pipeline(e.to_owned()));
                        return None;
                    }
                    ll.remove(&u.label);
                    (Cow::Owned(ll.into_labels()), v.unwrap_or(f64::NAN))
                }
            };
            let labels = match grouping {
                Some(g) => Cow::Owned(group_labels(&labels, g)),
                None => labels,
            };
            if let Some(v) = series.get_mut(&*labels) {
                v.push((o.ts, value));
                return None;
            }
            if series.len() >= max_series {
                err = Some(Error::Limit(format!(
                    "more than {max_series} series: narrow the selector or aggregate with sum by (...)"
                )));
                return None;
            }
            series.insert(labels.into_owned(), vec![(o.ts, value)]);
            None
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let secs = range_ns as f64 / 1e9;
        // Sorted, so aggregations add in a fixed order and results are reproducible.
        let mut series: Vec<_> = series.into_iter().collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(series.len());
        for (labels, mut samples) in series {
            samples.sort_by_key(|s| s.0);
            let mut pts = Vec::new();
            let (mut lo, mut hi) = (0usize, 0usize);
            for &t in steps {
                while hi < samples.len() && samples[hi].0 <= t {
                    hi += 1;
                }
                while lo < hi && samples[lo].0 <= t - range_ns {
                    lo += 1;
                }
                let w = &samples[lo..hi];
                if w.is_empty() {
                    continue;
                }
                let vals = w.iter().map(|s| s.1);
                let v = match op {
                    RangeOp::CountOverTime => w.len() as f64,
                    RangeOp::Rate => w.len() as f64 / secs,
                    RangeOp::BytesOverTime => vals.sum(),
                    RangeOp::BytesRate => vals.sum::<f64>() / secs,
                    RangeOp::SumOverTime => vals.sum(),
                    RangeOp::AvgOverTime => vals.sum::<f64>() / w.len() as f64,
                    RangeOp::MaxOverTime => vals.fold(f64::NEG_INFINITY, f64::max),
                    RangeOp::MinOverTime => vals.fold(f64::INFINITY, f64::min),
                    RangeOp::FirstOverTime => w[0].1,
                    RangeOp::LastOverTime => w[w.len() - 1].1,
                    RangeOp::QuantileOverTime => {
                        quantile(param.unwrap_or(f64::NAN), vals.collect())
                    }
                };
                pts.push((t, v));
            }
            if !pts.is_empty() {
                out.push((labels, pts));
            }
        }
        Ok(out)
    }

    fn eval_metric(&self, e: &MetricExpr, steps: &[i64], stats: &mut QueryStats) -> Result<Series> {
        match e {
            MetricExpr::Range {
                op,
                param,
                log,
                unwrap,
                post,
                range_ns,
                grouping,
            } => self.eval_range(
                *op,
                *param,
                log,
                unwrap.as_ref(),
                post,
                *range_ns,
                grouping.as_ref(),
                steps,
                stats,
            ),
            MetricExpr::Vector {
                op,
                param,
                grouping,
                inner,
            } => {
                let inner = self.eval_metric(inner, steps, stats)?;
                Ok(aggregate(*op, *param, grouping, inner))
            }
        }
    }

    /// Runs a query over `[start, end]`: a log query returns entries in `[start, end)` (up to
    /// `limit`, 0 meaning the configured default, in `direction`); a metric query is evaluated
    /// at `start, start + step, ...` up to `end` and returns a matrix.
    pub fn query_range(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        direction: Direction,
    ) -> Result<QueryResult> {
        self.query_range_interval(query, start_ns, end_ns, step_ns, limit, direction, 0)
    }

    /// [`LogStore::query_range`] thinning a log query's lines by `interval_ns` as Loki's
    /// `interval` does: in `direction` order over the whole result (all streams together), a
    /// line is kept only if it is at least `interval_ns` after (forward) or before (backward)
    /// the previously kept line; the first line is kept, and `limit` counts kept lines. 0 keeps
    /// every line; metric queries ignore it.
    #[allow(clippy::too_many_arguments)]
    pub fn query_range_interval(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        direction: Direction,
        interval_ns: i64,
    ) -> Result<QueryResult> {
        if end_ns < start_ns {
            return Err(Error::Query("end is before start: swap them".into()));
        }
        match parser::parse(query)? {
            Expr::Log(l) => {
                self.query_log(&l, start_ns, end_ns, limit, direction, interval_ns.max(0))
            }
            Expr::Metric(m) => {
                if step_ns <= 0 {
                    return Err(Error::Query(
                        "step must be positive: give a step such as 15s".into(),
                    ));
                }
                let n = ((end_ns - start_ns) / step_ns) as usize + 1;
                if n > self.cfg.max_steps {
                    return Err(Error::Limit(format!(
                        "{n} steps exceed the limit of {}: raise the step or shorten the range",
                        self.cfg.max_steps
                    )));
                }
                let steps: Vec<i64> = (0..n as i64).map(|i| start_ns + i * step_ns).collect();
                let mut stats = QueryStats::default();
                let mut series = self.eval_metric(&m, &steps, &mut stats)?;
                series.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(QueryResult {
                    data: ResultData::Matrix(
                        series
                            .into_iter()
                            .map(|(labels, values)| MatrixSeries { labels, values })
                            .collect(),
                    ),
                    stats,
                })
            }
        }
    }

    /// Evaluates a metric query at one instant and returns a vector. Log queries need a range:
    /// use [`LogStore::query_range`].
    pub fn query_instant(&self, query: &str, time_ns: i64) -> Result<QueryResult> {
        match parser::parse(query)? {
            Expr::Log(_) => Err(Error::Query(
                "log queries need a time range: use query_range".into(),
            )),
            Expr::Metric(m) => {
                let mut stats = QueryStats::default();
                let mut series = self.eval_metric(&m, &[time_ns], &mut stats)?;
                series.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(QueryResult {
                    data: ResultData::Vector(
                        series
                            .into_iter()
                            .filter_map(|(labels, v)| {
                                v.first().map(|&(t, value)| VectorSample {
                                    labels,
                                    timestamp_ns: t,
                                    value,
                                })
                            })
                            .collect(),
                    ),
                    stats,
                })
            }
        }
    }

    fn streams_in(&self, selector: Option<&str>, start: i64, end: i64) -> Result<Vec<usize>> {
        let ids = match selector {
            Some(s) => self.select(&parser::parse_selector(s)?),
            None => (0..self.streams.len()).collect(),
        };
        Ok(ids
            .into_iter()
            .filter(|&id| self.stream_overlaps(id, start, end))
            .collect())
    }

    /// Label names of streams with data in `[start, end]`, sorted.
    pub fn label_names(&self, start_ns: i64, end_ns: i64) -> Result<Vec<String>> {
        let mut names = BTreeSet::new();
        for id in self.streams_in(None, start_ns, end_ns)? {
            for l in &self.streams[id].labels {
                names.insert(l.name.clone());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Values of label `name` in streams with data in `[start, end]` (optionally only streams
    /// matching `selector`, e.g. `{app="api"}`), sorted.
    pub fn label_values(
        &self,
        name: &str,
        start_ns: i64,
        end_ns: i64,
        selector: Option<&str>,
    ) -> Result<Vec<String>> {
        let mut values = BTreeSet::new();
        for id in self.streams_in(selector, start_ns, end_ns)? {
            if let Some(v) = self.streams[id].labels.get(name) {
                values.insert(v.to_owned());
            }
        }
        Ok(values.into_iter().collect())
    }

    /// Label sets of streams matching any of `selectors` with data in `[start, end]`, sorted.
    pub fn series(&self, selectors: &[&str], start_ns: i64, end_ns: i64) -> Result<Vec<Labels>> {
        let mut out = BTreeSet::new();
        for s in selectors {
            for id in self.streams_in(Some(s), start_ns, end_ns)? {
                out.insert(self.streams[id].labels.clone());
            }
        }
        Ok(out.into_iter().collect())
    }
}

fn group_labels(l: &Labels, g: &Grouping) -> Labels {
    let kept = l
        .iter()
        .filter(|p| g.labels.contains(&p.name) != g.without)
        .cloned()
        .collect();
    Labels::new(kept).unwrap_or_default()
}

fn quantile(q: f64, mut v: Vec<f64>) -> f64 {
    if v.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    v.sort_by(f64::total_cmp);
    let rank = q * (v.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    let w = rank - lo as f64;
    v[lo] * (1.0 - w) + v[hi] * w
}

fn aggregate(op: VecOp, param: Option<f64>, g: &Grouping, inner: Series) -> Series {
    // step -> group -> [(series index, value)]
    let mut by_step: BTreeMap<i64, BTreeMap<Labels, Vec<(usize, f64)>>> = BTreeMap::new();
    for (i, (labels, pts)) in inner.iter().enumerate() {
        let key = group_labels(labels, g);
        for &(t, v) in pts {
            by_step
                .entry(t)
                .or_default()
                .entry(key.clone())
                .or_default()
                .push((i, v));
        }
    }
    let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for (t, groups) in by_step {
        for (key, mut members) in groups {
            let vals = || members.iter().map(|m| m.1);
            let n = members.len() as f64;
            let v = match op {
                VecOp::Sum => vals().sum(),
                VecOp::Avg => vals().sum::<f64>() / n,
                VecOp::Min => vals().fold(f64::INFINITY, f64::min),
                VecOp::Max => vals().fold(f64::NEG_INFINITY, f64::max),
                VecOp::Count => n,
                VecOp::Stddev | VecOp::Stdvar => {
                    let mean = vals().sum::<f64>() / n;
                    let var = vals().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                    if op == VecOp::Stddev {
                        var.sqrt()
                    } else {
                        var
                    }
                }
                VecOp::Topk | VecOp::Bottomk => {
                    let k = param.unwrap_or(1.0) as usize;
                    if op == VecOp::Topk {
                        members.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    } else {
                        members.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                    }
                    for &(i, v) in members.iter().take(k) {
                        out.entry(inner[i].0.clone()).or_default().push((t, v));
                    }
                    continue;
                }
            };
            out.entry(key).or_default().push((t, v));
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use bongsu_model::{LogEntry, LogStream};

    use super::*;
    use crate::Config;

    fn flat(r: QueryResult, dir: Direction) -> Vec<(i64, String)> {
        let ResultData::Streams(s) = r.data else {
            panic!("not streams")
        };
        let mut out: Vec<(i64, String)> = s.into_iter().flat_map(|s| s.entries).collect();
        out.sort();
        if dir == Direction::Backward {
            out.reverse();
        }
        out
    }

    fn store_with(dir: &std::path::Path, cfg: Config, streams: &[(&str, Vec<i64>)]) -> LogStore {
        let mut s = LogStore::open(dir, cfg).unwrap();
        let rec: Vec<LogStream> = streams
            .iter()
            .map(|(app, ts)| LogStream {
                labels: Labels::from_pairs([("app", *app)]).unwrap(),
                entries: ts
                    .iter()
                    .map(|&t| LogEntry::new(t, format!("{app}{t}")))
                    .collect(),
            })
            .collect();
        assert!(s.append_record(0, 0, &rec).unwrap().is_empty());
        s
    }

    #[test]
    fn interval_thins_the_whole_result_in_direction_order_before_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let s = store_with(
            dir.path(),
            Config::default(),
            &[
                ("a", (0..10).map(|i| i * 10).collect()),
                ("b", (0..10).map(|i| i * 10 + 5).collect()),
            ],
        );
        let q = r#"{app=~"a|b"}"#;
        let run = |interval, limit, d| {
            let r = s
                .query_range_interval(q, 0, 1000, 0, limit, d, interval)
                .unwrap();
            flat(r, d).into_iter().map(|(_, l)| l).collect::<Vec<_>>()
        };
        // One rule over both streams: after a0 the next line at or past 12 is b15, then 30...
        assert_eq!(
            run(12, 100, Direction::Forward),
            ["a0", "b15", "a30", "b45", "a60", "b75", "a90"]
        );
        assert_eq!(
            run(12, 100, Direction::Backward),
            ["b95", "a80", "b65", "a50", "b35", "a20", "b5"]
        );
        // An interval equal to a stream's spacing keeps that stream only.
        assert_eq!(
            run(10, 3, Direction::Forward),
            ["a0", "a10", "a20"],
            "limit counts kept lines"
        );
        assert_eq!(run(0, 3, Direction::Forward), ["a0", "b5", "a10"]);
        // Metric queries ignore it.
        let m = s
            .query_range_interval(
                r#"count_over_time({app="a"}[1s])"#,
                0,
                100,
                100,
                10,
                Direction::Forward,
                50,
            )
            .unwrap();
        assert!(matches!(m.data, ResultData::Matrix(_)));
    }

    /// Greedy thinning of a full result, as the model.
    fn model(
        all: Vec<(i64, String)>,
        d: Direction,
        interval: i64,
        limit: usize,
    ) -> Vec<(i64, String)> {
        let mut out: Vec<(i64, String)> = Vec::new();
        for (t, l) in all {
            if out.len() == limit {
                break;
            }
            let ok = out.last().is_none_or(|(last, _)| match d {
                Direction::Forward => t >= last + interval,
                Direction::Backward => t <= last - interval,
            });
            if ok {
                out.push((t, l));
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Thinning during the scan (with its early cut-offs over many small chunks, sealed
        /// and on disk) equals thinning the full result.
        #[test]
        fn interval_scan_matches_thinning_the_full_result(
            ts in proptest::collection::btree_set(0i64..3000, 1..300),
            owner in proptest::collection::vec(0usize..3, 300),
            interval in 0i64..120,
            limit in 1usize..12,
            backward: bool,
            flush: bool,
        ) {
            let mut per: Vec<(&str, Vec<i64>)> = vec![("a", vec![]), ("b", vec![]), ("c", vec![])];
            for (i, t) in ts.iter().enumerate() {
                per[owner[i]].1.push(*t);
            }
            let dir = tempfile::tempdir().unwrap();
            let cfg = Config { chunk_target_bytes: 40, ..Config::default() };
            let mut s = store_with(dir.path(), cfg, &per);
            if flush {
                s.flush().unwrap();
            }
            let d = if backward { Direction::Backward } else { Direction::Forward };
            let q = r#"{app=~"a|b|c"}"#;
            let got = flat(s.query_range_interval(q, 0, 3000, 0, limit, d, interval).unwrap(), d);
            let all = flat(s.query_range(q, 0, 3000, 0, 10_000, d).unwrap(), d);
            proptest::prop_assert_eq!(got, model(all, d, interval, limit));
        }
    }

    #[test]
    fn quantiles() {
        assert_eq!(quantile(0.5, vec![1.0, 2.0, 3.0]), 2.0);
        assert_eq!(quantile(0.99, vec![5.0]), 5.0);
        assert_eq!(quantile(0.75, vec![4.0, 1.0, 2.0, 3.0]), 3.25);
        assert!(quantile(0.5, vec![]).is_nan());
    }
}
