//! The query engine: options, limits, the public query entry points.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};

use crate::eval::{EvSeries, Evaluator, Pt, SLabels, Val};
use crate::storage::{MatchOp, Matcher, SelectHints, Storage};
use crate::value::{InstantSample, QueryResult, RangeSeries, Value};
use crate::{Error, Result};

/// Most steps a range query may have, as in Prometheus.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine settings and query limits.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant vector selector looks for a sample (Prometheus: 5m).
    pub lookback_delta: Duration,
    /// Most samples one query may load from storage.
    pub max_samples: usize,
    /// Most series one query may select from storage.
    pub max_series: usize,
    /// Longest a query may run; checked cooperatively between steps and selectors.
    pub timeout: Duration,
    /// Step of a subquery written without one (`x[5m:]`).
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            max_series: 1_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// Evaluates PromQL over a [`Storage`].
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

/// Millisecond timestamp of a parser time.
pub(crate) fn system_time_ms(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// The key under which a selector's data is cached: its matchers without offset and `@`.
pub(crate) fn selector_key(vs: &VectorSelector) -> String {
    let mut v = vs.clone();
    v.offset = None;
    v.at = None;
    v.to_string()
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Self { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        time_ms: i64,
    ) -> Result<QueryResult> {
        let expr = parser::parse(query).map_err(Error::Parse)?;
        let mut ev = self.prepare(storage, query, &expr, time_ms, time_ms, 0)?;
        let val = ev.eval(&expr, time_ms)?;
        let value = match val {
            Val::Scalar(v) => Value::Scalar {
                timestamp_ms: time_ms,
                value: v,
            },
            Val::Str(s) => Value::String {
                timestamp_ms: time_ms,
                value: s,
            },
            Val::Vector(v) => {
                let mut out = Vec::with_capacity(v.len());
                for e in v {
                    out.push(InstantSample {
                        labels: Arc::unwrap_or_clone(e.final_labels()),
                        timestamp_ms: time_ms,
                        value: e.value,
                        histogram: e.h.map(|h| (*h).clone()),
                    });
                }
                check_unique(out.iter().map(|s| &s.labels))?;
                Value::Vector(out)
            }
            Val::Matrix(m) => {
                let mut out = Vec::with_capacity(m.len());
                for s in m {
                    let labels = Arc::unwrap_or_clone(s.final_labels());
                    out.push(RangeSeries {
                        labels,
                        points: s.points.into_vec(),
                        histograms: s
                            .hists
                            .into_iter()
                            .map(|(t, h)| (t, (*h).clone()))
                            .collect(),
                    });
                }
                check_unique(out.iter().map(|s| &s.labels))?;
                Value::Matrix(out)
            }
        };
        Ok(ev.finish(value))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive; the result
    /// is a matrix with series sorted by labels.
    pub fn range_query(
        &self,
        storage: &dyn Storage,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        if step_ms <= 0 {
            return Err(Error::Range(
                "zero or negative query resolution step widths are not accepted: use a positive step".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::Range(
                "end timestamp must not be before start time: swap start and end".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms >= MAX_POINTS_PER_SERIES {
            return Err(Error::Range(format!(
                "exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries: increase the step"
            )));
        }
        let expr = parser::parse(query).map_err(Error::Parse)?;
        match expr.value_type() {
            parser::value::ValueType::Vector | parser::value::ValueType::Scalar => {}
            t => {
                return Err(Error::Eval(format!(
                "invalid expression type \"{t}\" for range query, must be Scalar or instant Vector"
            )))
            }
        }
        let mut ev = self.prepare(storage, query, &expr, start_ms, end_ms, step_ms)?;
        type Points = (Vec<(i64, f64)>, Vec<(i64, crate::native::FloatHistogram)>);
        let mut rows = SeriesRows::<Points>::default();
        let mut t = start_ms;
        while t <= end_ms {
            ev.check_deadline()?;
            match ev.eval(&expr, t)? {
                Val::Scalar(v) => rows.row(&SLabels::default(), false).0.push((t, v)),
                Val::Vector(v) => {
                    for e in v {
                        let entry = rows.row(&e.labels, e.drop_name);
                        let last = entry.0.last().map(|p| p.0).max(entry.1.last().map(|p| p.0));
                        if last == Some(t) {
                            return Err(Error::Eval(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                        match e.h {
                            Some(h) => entry.1.push((t, Arc::unwrap_or_clone(h))),
                            None => entry.0.push((t, e.value)),
                        }
                    }
                }
                _ => {
                    return Err(Error::Eval(
                        "range query must return a scalar or an instant vector at every step"
                            .into(),
                    ))
                }
            }
            match t.checked_add(step_ms) {
                Some(n) => t = n,
                None => break,
            }
        }
        let mut out: Vec<RangeSeries> = rows
            .rows
            .into_iter()
            .map(|(labels, (points, histograms))| RangeSeries {
                labels: Arc::unwrap_or_clone(labels),
                points,
                histograms,
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(ev.finish(Value::Matrix(out)))
    }

    fn prepare<'a>(
        &self,
        storage: &dyn Storage,
        query: &'a str,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Evaluator<'a>> {
        let started = Instant::now();
        let mut needs: HashMap<String, Need> = HashMap::new();
        let lookback = self.opts.lookback_delta.as_millis() as i64;
        collect_needs(expr, start, end, start, end, lookback, None, &mut needs);
        let mut data = HashMap::new();
        let mut samples = 0usize;
        let mut series_count = 0usize;
        for (key, need) in needs {
            if started.elapsed() >= self.opts.timeout {
                return Err(Error::Timeout(self.opts.timeout));
            }
            let hints = SelectHints {
                start_ms: need.lo,
                end_ms: need.hi,
                step_ms: step,
                func: need.func.clone(),
                range_ms: need.range,
            };
            let groups = matcher_groups(&need.selector)?;
            let mut all: Vec<EvSeries> = Vec::new();
            // `or` alternatives may select the same series more than once.
            let mut seen = std::collections::HashSet::new();
            for group in &groups {
                for s in fetch(storage, group, &hints)? {
                    if groups.len() == 1 || seen.insert(s.labels.clone()) {
                        all.push(s);
                    }
                }
            }
            all.sort_by(|a, b| a.labels.cmp(&b.labels));
            series_count += all.len();
            if series_count > self.opts.max_series {
                return Err(Error::TooManySeries {
                    selected: series_count,
                    limit: self.opts.max_series,
                });
            }
            samples += all.iter().map(|s| s.points.len()).sum::<usize>();
            if samples > self.opts.max_samples {
                return Err(Error::TooManySamples {
                    loaded: samples,
                    limit: self.opts.max_samples,
                });
            }
            data.insert(key, Arc::new(all));
        }
        Ok(Evaluator::new(
            query,
            data,
            start,
            end,
            step,
            lookback,
            self.opts.default_subquery_step.as_millis().max(1) as i64,
            started + self.opts.timeout,
            self.opts.timeout,
        ))
    }
}

/// The output series of a range query, found by the address of their labels first (the
/// same shared labels come back at every step) and by value otherwise.
struct SeriesRows<P> {
    rows: Vec<(SLabels, P)>,
    /// Row by address of the labels as evaluated (before the name is dropped), with
    /// `drop_name`; `keep` holds those labels so that no address is reused.
    by_ptr: HashMap<(usize, bool), usize>,
    keep: Vec<SLabels>,
    by_value: HashMap<SLabels, usize>,
}

impl<P> Default for SeriesRows<P> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            by_ptr: HashMap::new(),
            keep: Vec::new(),
            by_value: HashMap::new(),
        }
    }
}

impl<P: Default> SeriesRows<P> {
    fn row(&mut self, labels: &SLabels, drop_name: bool) -> &mut P {
        let key = (Arc::as_ptr(labels) as usize, drop_name);
        let i = match self.by_ptr.get(&key) {
            Some(&i) => i,
            None => {
                let l = crate::eval::final_of(labels, drop_name);
                let i = match self.by_value.get(&l) {
                    Some(&i) => i,
                    None => {
                        self.rows.push((l.clone(), P::default()));
                        self.by_value.insert(l, self.rows.len() - 1);
                        self.rows.len() - 1
                    }
                };
                self.by_ptr.insert(key, i);
                self.keep.push(labels.clone());
                i
            }
        };
        &mut self.rows[i].1
    }
}

/// Selects floats and histograms for one matcher group and merges them per series.
fn fetch(
    storage: &dyn Storage,
    matchers: &[Matcher],
    hints: &SelectHints,
) -> Result<Vec<EvSeries>> {
    let floats = storage.select(matchers, hints)?;
    let hists = storage.select_histograms(matchers, hints)?;
    if hists.is_empty() {
        // Floats only (the common case): one series per label set already.
        return Ok(floats
            .into_iter()
            .filter(|s| !s.samples.is_empty())
            .map(|s| {
                EvSeries::new(
                    Arc::new(s.labels),
                    s.samples
                        .into_iter()
                        .map(|x| Pt {
                            t: x.timestamp_ms,
                            v: x.value,
                            h: None,
                        })
                        .collect(),
                )
            })
            .collect());
    }
    let mut by_labels: HashMap<bongsu_model::Labels, Vec<Pt>> =
        HashMap::with_capacity(floats.len());
    for s in floats {
        by_labels
            .entry(s.labels)
            .or_default()
            .extend(s.samples.into_iter().map(|x| Pt {
                t: x.timestamp_ms,
                v: x.value,
                h: None,
            }));
    }
    let had_hists = !hists.is_empty();
    for s in hists {
        by_labels
            .entry(s.labels)
            .or_default()
            .extend(s.samples.into_iter().map(|x| Pt {
                t: x.timestamp_ms,
                v: 0.0,
                h: Some(Arc::new(x.histogram)),
            }));
    }
    Ok(by_labels
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(labels, mut points)| {
            if had_hists {
                points.sort_by_key(|p| p.t);
            }
            EvSeries::new(Arc::new(labels), points)
        })
        .collect())
}

fn check_unique<'a>(labels: impl Iterator<Item = &'a bongsu_model::Labels>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(Error::Eval(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

/// Storage matchers for a selector: one group per `or` alternative.
fn matcher_groups(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
    let conv = |m: &promql_parser::label::Matcher| -> Result<Matcher> {
        let op = match m.op {
            promql_parser::label::MatchOp::Equal => MatchOp::Equal,
            promql_parser::label::MatchOp::NotEqual => MatchOp::NotEqual,
            promql_parser::label::MatchOp::Re(_) => MatchOp::RegexMatch,
            promql_parser::label::MatchOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        Matcher::new(op, m.name.clone(), m.value.clone())
    };
    let mut base = Vec::new();
    if let Some(name) = &vs.name {
        base.push(Matcher::new(
            MatchOp::Equal,
            bongsu_model::METRIC_NAME,
            name.clone(),
        )?);
    }
    if vs.matchers.or_matchers.is_empty() {
        let mut g = base;
        for m in &vs.matchers.matchers {
            g.push(conv(m)?);
        }
        Ok(vec![g])
    } else {
        let mut out = Vec::new();
        for alt in &vs.matchers.or_matchers {
            let mut g = base.clone();
            for m in alt {
                g.push(conv(m)?);
            }
            out.push(g);
        }
        Ok(out)
    }
}

struct Need {
    selector: VectorSelector,
    lo: i64,
    hi: i64,
    range: i64,
    func: Option<String>,
}

fn at_window(at: &Option<AtModifier>, s: i64, e: i64, qs: i64, qe: i64) -> (i64, i64) {
    match at {
        None => (s, e),
        Some(AtModifier::Start) => (qs, qs),
        Some(AtModifier::End) => (qe, qe),
        Some(AtModifier::At(t)) => {
            let t = system_time_ms(*t);
            (t, t)
        }
    }
}

/// Walks `expr` evaluated at times `s..=e` and records, for each selector, which
/// sample timestamps it can touch.
#[allow(clippy::too_many_arguments)]
fn collect_needs(
    expr: &Expr,
    s: i64,
    e: i64,
    qs: i64,
    qe: i64,
    lookback: i64,
    func: Option<&str>,
    needs: &mut HashMap<String, Need>,
) {
    let mut add = |vs: &VectorSelector, lo: i64, hi: i64, range: i64| {
        let key = selector_key(vs);
        let n = needs.entry(key).or_insert_with(|| Need {
            selector: vs.clone(),
            lo,
            hi,
            range,
            func: func.map(str::to_owned),
        });
        n.lo = n.lo.min(lo);
        n.hi = n.hi.max(hi);
        n.range = n.range.max(range);
    };
    match expr {
        Expr::VectorSelector(vs) => {
            let (a, b) = at_window(&vs.at, s, e, qs, qe);
            let off = offset_ms(&vs.offset);
            add(
                vs,
                a.saturating_sub(off).saturating_sub(lookback),
                b.saturating_sub(off),
                0,
            );
        }
        Expr::MatrixSelector(ms) => {
            let vs = &ms.vs;
            let (a, b) = at_window(&vs.at, s, e, qs, qe);
            let off = offset_ms(&vs.offset);
            let r = ms.range.as_millis() as i64;
            add(
                vs,
                a.saturating_sub(off).saturating_sub(r),
                b.saturating_sub(off),
                r,
            );
        }
        Expr::Subquery(sq) => {
            let (a, b) = at_window(&sq.at, s, e, qs, qe);
            let off = offset_ms(&sq.offset);
            let r = sq.range.as_millis() as i64;
            collect_needs(
                &sq.expr,
                a.saturating_sub(off).saturating_sub(r),
                b.saturating_sub(off),
                qs,
                qe,
                lookback,
                func,
                needs,
            );
        }
        Expr::Aggregate(a) => {
            collect_needs(&a.expr, s, e, qs, qe, lookback, None, needs);
            if let Some(p) = &a.param {
                collect_needs(p, s, e, qs, qe, lookback, None, needs);
            }
        }
        Expr::Unary(u) => collect_needs(&u.expr, s, e, qs, qe, lookback, None, needs),
        Expr::Binary(b) => {
            collect_needs(&b.lhs, s, e, qs, qe, lookback, None, needs);
            collect_needs(&b.rhs, s, e, qs, qe, lookback, None, needs);
        }
        Expr::Paren(p) => collect_needs(&p.expr, s, e, qs, qe, lookback, func, needs),
        Expr::Call(c) if c.func.name == "info" => {
            // info() also reads the info series, as of the times its first argument's
            // selectors are read.
            let mut inner = HashMap::new();
            for a in &c.args.args {
                collect_needs(a, s, e, qs, qe, lookback, Some("info"), &mut inner);
            }
            let lo = inner.values().map(|n| n.lo).min();
            let hi = inner.values().map(|n| n.hi).max();
            for (k, n) in inner {
                match needs.get_mut(&k) {
                    Some(m) => {
                        m.lo = m.lo.min(n.lo);
                        m.hi = m.hi.max(n.hi);
                        m.range = m.range.max(n.range);
                    }
                    None => {
                        needs.insert(k, n);
                    }
                }
            }
            if let (Some(lo), Some(hi)) = (lo, hi) {
                let vs = crate::functions::info_selector(c.args.args.get(1).map(|b| b.as_ref()));
                let n = needs.entry(selector_key(&vs)).or_insert_with(|| Need {
                    selector: vs.clone(),
                    lo,
                    hi,
                    range: 0,
                    func: Some("info".into()),
                });
                n.lo = n.lo.min(lo.saturating_sub(lookback));
                n.hi = n.hi.max(hi);
            }
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_needs(a, s, e, qs, qe, lookback, Some(c.func.name), needs);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryStorage, Series};
    use bongsu_model::{Labels, Sample};

    fn storage() -> MemoryStorage {
        let st = MemoryStorage::new();
        for (inst, step) in [("a", 1.0), ("b", 2.0)] {
            st.add(
                Labels::from_pairs([("__name__", "req_total"), ("instance", inst)]).unwrap(),
                (0..=10).map(|i| Sample::new(i * 60_000, i as f64 * step)),
            );
        }
        st
    }

    fn vector(r: &QueryResult) -> Vec<(String, f64)> {
        match &r.value {
            Value::Vector(v) => v.iter().map(|s| (s.labels.to_string(), s.value)).collect(),
            other => panic!("expected a vector, got {other:?}"),
        }
    }

    #[test]
    fn instant_rate_and_aggregation() {
        let st = storage();
        let e = Engine::default();
        let r = e
            .instant_query(&st, "sum by (instance) (rate(req_total[5m]))", 600_000)
            .unwrap();
        let mut got = vector(&r);
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, r#"{instance="a"}"#);
        assert!((got[0].1 - 1.0 / 60.0).abs() < 1e-12);
        assert!((got[1].1 - 2.0 / 60.0).abs() < 1e-12);
        assert!(r.warnings.is_empty() && r.infos.is_empty());
    }

    #[test]
    fn range_query_is_sorted_and_steps_inclusive() {
        let st = storage();
        let r = Engine::default()
            .range_query(&st, "req_total * 2", 0, 120_000, 60_000)
            .unwrap();
        let Value::Matrix(m) = r.value else {
            panic!("expected a matrix")
        };
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].labels.to_string(), r#"{instance="a"}"#);
        assert_eq!(m[1].points, vec![(0, 0.0), (60_000, 4.0), (120_000, 8.0)]);
    }

    #[test]
    fn lookback_delta_is_configurable_and_staleness_ends_series() {
        let st = MemoryStorage::new();
        let l = Labels::from_pairs([("__name__", "up")]).unwrap();
        st.add(l.clone(), [Sample::new(0, 1.0), Sample::stale(30_000)]);
        st.add(
            Labels::from_pairs([("__name__", "up2")]).unwrap(),
            [Sample::new(0, 1.0)],
        );
        let e = Engine::default();
        assert_eq!(
            vector(&e.instant_query(&st, "up", 10_000).unwrap()).len(),
            1
        );
        assert!(vector(&e.instant_query(&st, "up", 40_000).unwrap()).is_empty());
        assert_eq!(
            vector(&e.instant_query(&st, "up2", 299_000).unwrap()).len(),
            1
        );
        assert!(vector(&e.instant_query(&st, "up2", 300_000).unwrap()).is_empty());
        let short = Engine::new(EngineOptions {
            lookback_delta: Duration::from_secs(60),
            ..EngineOptions::default()
        });
        assert!(vector(&short.instant_query(&st, "up2", 61_000).unwrap()).is_empty());
    }

    #[test]
    fn limits_give_clear_errors() {
        let st = storage();
        let few_samples = Engine::new(EngineOptions {
            max_samples: 5,
            ..EngineOptions::default()
        });
        let err = few_samples
            .instant_query(&st, "req_total", 600_000)
            .unwrap_err();
        assert!(
            matches!(err, Error::TooManySamples { limit: 5, .. }),
            "{err}"
        );
        let few_series = Engine::new(EngineOptions {
            max_series: 1,
            ..EngineOptions::default()
        });
        let err = few_series
            .instant_query(&st, "req_total", 600_000)
            .unwrap_err();
        assert!(err.to_string().contains("too many series"), "{err}");
        let no_time = Engine::new(EngineOptions {
            timeout: Duration::ZERO,
            ..EngineOptions::default()
        });
        let err = no_time
            .range_query(&st, "req_total", 0, 600_000, 1_000)
            .unwrap_err();
        assert!(matches!(err, Error::Timeout(_)), "{err}");
    }

    #[test]
    fn bad_queries_are_errors() {
        let st = storage();
        let e = Engine::default();
        assert!(matches!(
            e.instant_query(&st, "sum(", 0),
            Err(Error::Parse(_))
        ));
        assert!(e.range_query(&st, "req_total[5m]", 0, 10, 1).is_err());
        assert!(e.range_query(&st, "req_total", 0, 10, 0).is_err());
        assert!(e.range_query(&st, "req_total", 10, 0, 1).is_err());
        assert!(e.range_query(&st, "req_total", 0, 11_000, 1).is_err());
        // Extreme times saturate instead of overflowing.
        let r = e
            .range_query(&st, "req_total offset 1m", i64::MAX - 5, i64::MAX, 2)
            .unwrap();
        assert_eq!(r.value, Value::Matrix(Vec::new()));
        assert!(e
            .instant_query(&st, "max_over_time(req_total[5m:1m] @ 0)", i64::MIN)
            .is_ok());
        assert!(e
            .instant_query(&st, "req_total offset 1m", i64::MIN)
            .is_ok());
    }

    #[test]
    fn annotations_are_reported() {
        let st = MemoryStorage::new();
        st.add(
            Labels::from_pairs([("__name__", "temperature")]).unwrap(),
            (0..5).map(|i| Sample::new(i * 15_000, 20.0 + i as f64)),
        );
        let r = Engine::default()
            .instant_query(&st, "rate(temperature[1m])", 60_000)
            .unwrap();
        assert_eq!(r.infos.len(), 1);
        assert!(r.infos[0].starts_with("PromQL info: metric might not be a counter"));
        let r = Engine::default()
            .range_query(&st, "sort(temperature)", 0, 60_000, 15_000)
            .unwrap();
        assert_eq!(
            r.warnings,
            ["PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:1)"]
        );
    }

    #[test]
    fn native_histograms_evaluate_and_render() {
        use crate::native::parse_histogram_literal;
        use crate::storage::HistogramSample;
        let st = MemoryStorage::new();
        let l = Labels::from_pairs([("__name__", "lat_seconds"), ("job", "a")]).unwrap();
        st.add_histograms(
            l,
            (0..=10).map(|i| HistogramSample {
                timestamp_ms: i * 60_000,
                histogram: parse_histogram_literal(&format!(
                    "{{{{schema:0 count:{c} sum:{c} buckets:[{c}]}}}}",
                    c = 4 * i
                ))
                .unwrap(),
            }),
        );
        let e = Engine::default();
        let r = e
            .instant_query(&st, "histogram_count(rate(lat_seconds[5m]))", 600_000)
            .unwrap();
        let got = vector(&r);
        assert_eq!(got.len(), 1);
        assert!((got[0].1 - 4.0 / 60.0).abs() < 1e-12, "{got:?}");
        let r = e
            .instant_query(&st, "sum(lat_seconds) * 2", 600_000)
            .unwrap();
        let Value::Vector(v) = &r.value else {
            panic!("expected a vector")
        };
        let h = v[0].histogram.as_ref().expect("a histogram sample");
        assert_eq!((h.count, h.sum), (80.0, 80.0));
        assert_eq!(
            crate::json::to_prometheus_json(&r.value),
            r#"{"resultType":"vector","result":[{"metric":{},"histogram":[600,{"count":"80","sum":"80","buckets":[[0,"0.5","1","80"]]}]}]}"#
        );
        let r = e.instant_query(&st, "lat_seconds + 1", 600_000).unwrap();
        assert_eq!(vector(&r), Vec::<(String, f64)>::new());
        assert_eq!(
            r.infos,
            ["PromQL info: incompatible sample types encountered for binary operator \"+\": histogram + float (1:1)"]
        );
        let r = e
            .range_query(&st, "lat_seconds", 540_000, 600_000, 60_000)
            .unwrap();
        let Value::Matrix(m) = &r.value else {
            panic!("expected a matrix")
        };
        assert_eq!(m[0].histograms.len(), 2);
        assert!(m[0].points.is_empty());
    }

    #[test]
    fn info_adds_data_labels_of_the_matching_info_series() {
        let st = MemoryStorage::new();
        let add = |pairs: &[(&str, &str)], v: f64| {
            st.add(
                Labels::from_pairs(pairs.iter().copied()).unwrap(),
                (0..5).map(|i| Sample::new(i * 60_000, v)),
            )
        };
        add(&[("__name__", "up"), ("instance", "a"), ("job", "j")], 1.0);
        add(&[("__name__", "up"), ("instance", "b"), ("job", "j")], 0.0);
        add(
            &[
                ("__name__", "target_info"),
                ("instance", "a"),
                ("job", "j"),
                ("region", "eu"),
            ],
            1.0,
        );
        let e = Engine::default();
        let mut got = vector(&e.instant_query(&st, "info(up)", 240_000).unwrap());
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                (r#"up{instance="a", job="j", region="eu"}"#.to_owned(), 1.0),
                (r#"up{instance="b", job="j"}"#.to_owned(), 0.0),
            ]
        );
        // A data matcher that refuses the empty value drops unmatched series.
        let got = vector(
            &e.instant_query(&st, r#"info(up, {region=~".+"})"#, 240_000)
                .unwrap(),
        );
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn hints_reach_the_storage() {
        struct Spy(std::sync::Mutex<Vec<SelectHints>>);
        impl Storage for Spy {
            fn select(&self, _m: &[Matcher], h: &SelectHints) -> Result<Vec<Series>> {
                if let Ok(mut g) = self.0.lock() {
                    g.push(h.clone());
                }
                Ok(Vec::new())
            }
        }
        let spy = Spy(std::sync::Mutex::new(Vec::new()));
        Engine::default()
            .range_query(
                &spy,
                "max_over_time(x[10m] offset 1m)",
                3_600_000,
                7_200_000,
                60_000,
            )
            .unwrap();
        let hints = spy.0.lock().unwrap().clone();
        assert_eq!(
            hints,
            vec![SelectHints {
                start_ms: 3_600_000 - 60_000 - 600_000,
                end_ms: 7_200_000 - 60_000,
                step_ms: 60_000,
                func: Some("max_over_time".into()),
                range_ms: 600_000,
            }]
        );
    }
}

#[cfg(test)]
mod robustness {
    use super::*;
    use crate::storage::MemoryStorage;
    use bongsu_model::{Labels, Sample};
    use proptest::prelude::*;

    fn storage() -> MemoryStorage {
        let st = MemoryStorage::new();
        for (name, le) in [
            ("a_total", ""),
            ("b", ""),
            ("h_bucket", "1"),
            ("h_bucket", "+Inf"),
        ] {
            for inst in ["x", "y"] {
                let l =
                    Labels::from_pairs([("__name__", name), ("inst", inst), ("le", le)]).unwrap();
                st.add(
                    l,
                    (0..40).map(|i| {
                        if i == 20 {
                            Sample::stale(i * 15_000)
                        } else {
                            Sample::new(i * 15_000, ((i * 7) % 11) as f64 - 3.0)
                        }
                    }),
                );
            }
        }
        // Native histograms, exponential and custom, with a reset and a gauge.
        for (inst, lit) in [
            (
                "x",
                "{{schema:1 count:6 sum:3 z_bucket:1 z_bucket_w:0.01 buckets:[1 2] n_buckets:[2]}}",
            ),
            (
                "y",
                "{{schema:-53 count:3 sum:9 custom_values:[1 5] buckets:[1 1 1]}}",
            ),
            (
                "z",
                "{{schema:0 count:2 sum:1 counter_reset_hint:gauge buckets:[0 2]}}",
            ),
        ] {
            let base = crate::native::parse_histogram_literal(lit).unwrap();
            let l = Labels::from_pairs([("__name__", "nh"), ("inst", inst)]).unwrap();
            st.add_histograms(
                l,
                (0..40).filter(|i| i % 13 != 5).map(|i| {
                    let mut h = base.clone();
                    h.mul(((i * 5) % 17) as f64);
                    crate::storage::HistogramSample {
                        timestamp_ms: i * 15_000,
                        histogram: h,
                    }
                }),
            );
        }
        st
    }

    fn leaf() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a_total".to_owned()),
            Just("nh".to_owned()),
            Just("b{inst=\"x\"}".to_owned()),
            Just("{__name__=~\".+\"}".to_owned()),
            Just("h_bucket".to_owned()),
            Just("nothing".to_owned()),
            Just("NaN".to_owned()),
            Just("-Inf".to_owned()),
            Just("\"inst\"".to_owned()),
            (-3i32..5).prop_map(|n| n.to_string()),
        ]
    }

    fn expr() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 24, 3, |inner| {
            let funcs = prop::sample::select(vec![
                "rate",
                "irate",
                "delta",
                "deriv",
                "abs",
                "sort",
                "scalar",
                "vector",
                "absent",
                "timestamp",
                "max_over_time",
                "quantile_over_time",
                "changes",
                "resets",
                "label_replace",
                "label_join",
                "histogram_quantile",
                "histogram_count",
                "histogram_fraction",
                "histogram_stddev",
                "sum_over_time",
                "increase",
                "clamp",
                "round",
                "predict_linear",
                "double_exponential_smoothing",
                "day_of_week",
                "sort_by_label",
                "mad_over_time",
                "absent_over_time",
                "count_over_time",
            ]);
            let aggs = prop::sample::select(vec![
                "sum",
                "avg",
                "topk",
                "bottomk",
                "quantile",
                "count_values",
                "limitk",
                "limit_ratio",
                "stddev",
                "group",
                "count",
            ]);
            let ops = prop::sample::select(vec![
                "+",
                "-",
                "*",
                "/",
                "%",
                "^",
                "==",
                "!= bool",
                "> on(inst)",
                "< ignoring(le) group_left",
                "and",
                "or",
                "unless",
                "* on(inst) group_right",
                "+ fill(0)",
            ]);
            prop_oneof![
                (funcs, prop::collection::vec(inner.clone(), 1..4))
                    .prop_map(|(f, a)| format!("{f}({})", a.join(", "))),
                (aggs, inner.clone(), inner.clone())
                    .prop_map(|(a, p, e)| format!("{a} by (inst) ({p}, {e})")),
                (inner.clone(), ops, inner.clone())
                    .prop_map(|(l, o, r)| format!("({l}) {o} ({r})")),
                inner.clone().prop_map(|e| format!("{e}[1m]")),
                inner
                    .clone()
                    .prop_map(|e| format!("({e})[2m:15s] offset 30s")),
                inner.clone().prop_map(|e| format!("({e})[90s:] @ 300")),
                inner.prop_map(|e| format!("-{e}")),
            ]
        })
    }

    /// The generator must mostly produce queries that evaluate, or the property above
    /// would only exercise the parser.
    #[test]
    fn generated_queries_mostly_evaluate() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let st = storage();
        let e = Engine::default();
        let mut runner = TestRunner::deterministic();
        let (mut ok, total) = (0, 300);
        for _ in 0..total {
            let q = expr().new_tree(&mut runner).unwrap().current();
            if e.instant_query(&st, &q, 300_000).is_ok() {
                ok += 1;
            }
        }
        assert!(
            ok * 6 > total,
            "only {ok} of {total} generated queries evaluated"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn queries_never_panic(q in expr(), t in 0i64..700) {
            let st = storage();
            let e = Engine::default();
            let _ = e.instant_query(&st, &q, t * 1000);
            let _ = e.range_query(&st, &q, t * 1000, t * 1000 + 120_000, 30_000);
        }

        #[test]
        fn arbitrary_text_never_panics(q in "[a-z_(){}\\[\\]\"=~!,.0-9:@+*/ -]{0,40}") {
            let st = storage();
            let _ = Engine::default().instant_query(&st, &q, 60_000);
        }
    }
}
