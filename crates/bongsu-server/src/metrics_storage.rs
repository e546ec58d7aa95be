//! The PromQL [`Storage`] over the time-series store, reading 5-minute and 1-hour rollups
//! for long, aligned queries where the result means the same as over raw samples.
//!
//! Which selectors are served from rollups (docs/promql.md is the user-facing description):
//!
//! - the query spans at least `query.rollup_min_span`, has no subquery, and uses each
//!   selector with one function and one range only ([`rollup_safe`]);
//! - every evaluation time is a multiple of the resolution (the step is a multiple of it, the
//!   last evaluation time is aligned), and a range selector's range is a multiple of it;
//! - the function is one of: none (an instant vector selector, or a function of one),
//!   `rate`, `increase`, `delta`, `max_over_time`, `min_over_time`, `sum_over_time`,
//!   `last_over_time`, and `avg_over_time` when its range equals the resolution.
//!
//! The 1-hour resolution is preferred when it fits, else 5 minutes. Each rollup window
//! `[w, w + res)` becomes a few synthetic samples whose evaluation gives the window's
//! aggregate: both its first and last sample for instant selectors (the latest sample at or
//! before an aligned time is one of them); `(t, max)` and the like for `*_over_time`, with
//! `t` inside the window, so a range `(T - range, T]` takes exactly the windows in
//! `[T - range, T)`; and for counters a cumulative series rebuilt from each window's first
//! value and counter-aware increase, so that `rate` and `increase` see the same first value
//! and the same total increase.

use std::sync::atomic::Ordering;

use bongsu_model::{is_stale_nan, Sample};
use bongsu_promql::{MatchOp, Matcher, SelectHints, Series, Storage};
use bongsu_tsdb::{Resolution, RollupPoint};
use promql_parser::parser::{Expr, VectorSelector};

use crate::tsdb_consumer::MetricsStore;

/// How a rollup window is turned into synthetic samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Projection {
    /// First and last sample of the window, at their own timestamps.
    FirstLast,
    /// A cumulative counter: value at the window's first and last sample.
    Counter,
    Max,
    Min,
    Sum,
    Last,
    Avg,
}

/// The [`Storage`] the query API evaluates over.
pub(crate) struct TsdbStorage<'a> {
    store: &'a MetricsStore,
    rollups: bool,
}

impl<'a> TsdbStorage<'a> {
    /// A storage over `store`; `rollups` is whether this query may read rollups (see
    /// [`rollup_safe`]).
    pub(crate) fn new(store: &'a MetricsStore, rollups: bool) -> TsdbStorage<'a> {
        TsdbStorage {
            store,
            rollups: rollups && store.query.rollups,
        }
    }

    fn plan(&self, h: &SelectHints) -> Option<(Resolution, Projection)> {
        if !self.rollups {
            return None;
        }
        let min_span = i64::try_from(self.store.query.rollup_min_span.as_millis()).ok()?;
        if h.end_ms.saturating_sub(h.start_ms) < min_span {
            return None;
        }
        let func = h.func.as_deref();
        for res in [Resolution::OneHour, Resolution::FiveMinutes] {
            let r = res.millis();
            if h.end_ms.rem_euclid(r) != 0 || h.step_ms.rem_euclid(r) != 0 {
                continue;
            }
            let projection = if h.range_ms == 0 {
                Projection::FirstLast
            } else {
                if h.range_ms % r != 0 || h.start_ms.rem_euclid(r) != 0 {
                    continue;
                }
                match func {
                    Some("rate" | "increase") => Projection::Counter,
                    Some("delta") => Projection::FirstLast,
                    Some("max_over_time") => Projection::Max,
                    Some("min_over_time") => Projection::Min,
                    Some("sum_over_time") => Projection::Sum,
                    Some("last_over_time") => Projection::Last,
                    Some("avg_over_time") if h.range_ms == r => Projection::Avg,
                    _ => continue,
                }
            };
            return Some((res, projection));
        }
        None
    }
}

fn to_tsdb(m: &Matcher) -> bongsu_promql::Result<bongsu_tsdb::Matcher> {
    let op = match m.op {
        MatchOp::Equal => bongsu_tsdb::MatchOp::Equal,
        MatchOp::NotEqual => bongsu_tsdb::MatchOp::NotEqual,
        MatchOp::RegexMatch => bongsu_tsdb::MatchOp::Regex,
        MatchOp::RegexNoMatch => bongsu_tsdb::MatchOp::NotRegex,
    };
    bongsu_tsdb::Matcher::new(op, m.name.clone(), m.value.clone())
        .map_err(|e| bongsu_promql::Error::Eval(e.to_string()))
}

fn storage_error(e: bongsu_tsdb::Error) -> bongsu_promql::Error {
    // The message may name files: log it, tell the client only that the store failed.
    tracing::error!(error = %e, "time-series store failed during a query");
    bongsu_promql::Error::Storage(
        "the time-series store failed: the server log has the details".into(),
    )
}

impl Storage for TsdbStorage<'_> {
    fn select(&self, matchers: &[Matcher], h: &SelectHints) -> bongsu_promql::Result<Vec<Series>> {
        let ms: Vec<bongsu_tsdb::Matcher> =
            matchers.iter().map(to_tsdb).collect::<Result<_, _>>()?;
        let counters = &self.store.counters;
        let Some((res, projection)) = self.plan(h) else {
            let got = self
                .store
                .tsdb
                .select(&ms, h.start_ms, h.end_ms)
                .map_err(storage_error)?;
            let n: usize = got.iter().map(|s| s.samples.len()).sum();
            counters
                .query_raw_samples
                .fetch_add(n as u64, Ordering::Relaxed);
            return Ok(got
                .into_iter()
                .map(|s| Series {
                    labels: s.labels,
                    samples: s.samples,
                })
                .collect());
        };
        let got = self
            .store
            .tsdb
            .select_rollup(&ms, h.start_ms, h.end_ms, res)
            .map_err(storage_error)?;
        let n: usize = got.iter().map(|s| s.points.len()).sum();
        let c = match res {
            Resolution::FiveMinutes => &counters.query_5m_points,
            Resolution::OneHour => &counters.query_1h_points,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
        Ok(got
            .into_iter()
            .filter_map(|s| {
                let samples = project(&s.points, res, projection, h.start_ms, h.end_ms);
                (!samples.is_empty()).then_some(Series {
                    labels: s.labels,
                    samples,
                })
            })
            .collect())
    }
}

/// Synthetic samples of rollup points, within `[start, end]`, strictly increasing in time.
fn project(
    points: &[RollupPoint],
    res: Resolution,
    projection: Projection,
    start: i64,
    end: i64,
) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::with_capacity(points.len() * 2);
    let mut push = |t: i64, v: f64| {
        if t < start || t > end || is_stale_nan(v) {
            return;
        }
        if out.last().is_some_and(|s| s.timestamp_ms >= t) {
            return;
        }
        out.push(Sample::new(t, v));
    };
    // Inside the window, never on its start: a range (T - range, T] then holds exactly the
    // windows starting in [T - range, T).
    let inside = |p: &RollupPoint, t: i64| t.clamp(p.t + 1, p.t + res.millis() - 1);
    let mut total = 0.0f64;
    let mut prev_last: Option<f64> = None;
    for p in points.iter().filter(|p| p.count > 0) {
        match projection {
            Projection::FirstLast => {
                push(p.first_ts, p.first);
                push(p.last_ts, p.last);
            }
            Projection::Counter => {
                // Counter-aware across windows: a first value below the previous window's
                // last value is a reset.
                total = match prev_last {
                    None => p.first,
                    Some(prev) if p.first >= prev => total + (p.first - prev),
                    Some(_) => total + p.first,
                };
                push(inside(p, p.first_ts), total);
                if p.count > 1 {
                    push(inside(p, p.last_ts), total + p.increase);
                }
                total += p.increase;
                prev_last = Some(p.last);
            }
            Projection::Max => push(inside(p, p.last_ts), p.max),
            Projection::Min => push(inside(p, p.last_ts), p.min),
            Projection::Sum => push(inside(p, p.last_ts), p.sum),
            Projection::Last => push(inside(p, p.last_ts), p.last),
            Projection::Avg => push(inside(p, p.last_ts), p.sum / p.count as f64),
        }
    }
    out
}

/// Whether `query` may read rollups: it parses, has no subquery, and uses each selector
/// (ignoring offset and `@`) with a single function and range, as the engine loads each
/// selector's data once and shares it between uses.
pub(crate) fn rollup_safe(query: &str) -> bool {
    let Ok(expr) = promql_parser::parser::parse(query) else {
        return false;
    };
    let mut uses: Vec<(String, Option<String>, u128)> = Vec::new();
    if !walk(&expr, None, &mut uses) {
        return false;
    }
    uses.iter().all(|(k, f, r)| {
        uses.iter()
            .filter(|(k2, _, _)| k2 == k)
            .all(|(_, f2, r2)| f2 == f && r2 == r)
    })
}

fn key(vs: &VectorSelector) -> String {
    let mut v = vs.clone();
    v.offset = None;
    v.at = None;
    v.to_string()
}

/// Records each selector's use as the engine's planner sees it; false on a subquery.
fn walk(e: &Expr, func: Option<&str>, uses: &mut Vec<(String, Option<String>, u128)>) -> bool {
    match e {
        Expr::VectorSelector(vs) => {
            uses.push((key(vs), func.map(str::to_owned), 0));
            true
        }
        Expr::MatrixSelector(ms) => {
            uses.push((key(&ms.vs), func.map(str::to_owned), ms.range.as_millis()));
            true
        }
        Expr::Subquery(_) => false,
        Expr::Aggregate(a) => {
            walk(&a.expr, None, uses) && a.param.as_ref().is_none_or(|p| walk(p, None, uses))
        }
        Expr::Unary(u) => walk(&u.expr, None, uses),
        Expr::Binary(b) => walk(&b.lhs, None, uses) && walk(&b.rhs, None, uses),
        Expr::Paren(p) => walk(&p.expr, func, uses),
        Expr::Call(c) => c.args.args.iter().all(|a| walk(a, Some(c.func.name), uses)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Extension(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{QuerySettings, TsdbSettings};
    use bongsu_model::Labels;
    use bongsu_promql::{Engine, Value};

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn rollup_safety_of_queries() {
        assert!(rollup_safe("rate(x[1h])"));
        assert!(rollup_safe("sum by (job) (rate(x[1h])) / sum(rate(y[1h]))"));
        assert!(rollup_safe("rate(x[1h]) - rate(x[1h] offset 1d)"));
        assert!(!rollup_safe("max_over_time(x[1h]) + x"));
        assert!(!rollup_safe("max_over_time(rate(x[5m])[1d:1h])"));
        assert!(!rollup_safe("rate(x[1h]"));
    }

    /// A counter scraped every 15 minutes for 200 days, with a reset on day 100; a gauge
    /// next to it.
    fn store_with_history(dir: &std::path::Path) -> MetricsStore {
        // Day-long blocks keep the number of files (and fsyncs) small.
        let opts = bongsu_tsdb::Options {
            block_duration_ms: DAY,
            compaction_ranges_ms: vec![7 * DAY],
            ..crate::tsdb_consumer::tsdb_options(&TsdbSettings::default())
        };
        let db = bongsu_tsdb::Tsdb::open(dir, opts).unwrap();
        let store = MetricsStore::over(db, &QuerySettings::default());
        let counter = Labels::from_pairs([("__name__", "c_total"), ("job", "j")]).unwrap();
        let gauge = Labels::from_pairs([("__name__", "g"), ("job", "j")]).unwrap();
        let step = 15 * 60_000;
        let mut c = 0.0;
        let mut cs = Vec::new();
        let mut gs = Vec::new();
        for i in 0..(200 * DAY / step) {
            let t = i * step + 7_000;
            c = if t / DAY == 100 && (t - step) / DAY == 99 {
                3.0
            } else {
                c + (i % 7) as f64
            };
            cs.push(Sample::new(t, c));
            gs.push(Sample::new(t, ((i * 37) % 101) as f64));
        }
        for chunk in cs.chunks(1000).zip(gs.chunks(1000)) {
            store.tsdb.append(&counter, chunk.0).unwrap();
            store.tsdb.append(&gauge, chunk.1).unwrap();
            store.tsdb.compact_now().unwrap();
        }
        store.tsdb.compact_now().unwrap();
        store
    }

    fn matrix(v: &Value) -> Vec<(i64, f64)> {
        match v {
            Value::Matrix(m) => {
                assert_eq!(m.len(), 1, "{m:?}");
                m[0].points.clone()
            }
            other => panic!("expected a matrix, got {other:?}"),
        }
    }

    #[test]
    fn a_six_month_query_at_one_hour_step_reads_hourly_rollups_with_the_same_meaning() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_history(dir.path());
        let engine = Engine::default();
        let raw_read = || store.counters.query_raw_samples.load(Ordering::Relaxed);
        let hourly_read = || store.counters.query_1h_points.load(Ordering::Relaxed);

        // Six months at a 1-hour step: raw samples of most of it are past retention. (History
        // is appended about 10 days at a time: a window must be compacted, and so rolled up,
        // before its raw samples pass retention.)
        let (start, end) = (20 * DAY, 200 * DAY - HOUR);
        let q = "increase(c_total[1h])";
        let before = raw_read();
        let got = engine
            .range_query(
                &TsdbStorage::new(&store, rollup_safe(q)),
                q,
                start,
                end,
                HOUR,
            )
            .unwrap();
        assert_eq!(raw_read(), before, "the six-month query read raw samples");
        assert!(
            hourly_read() >= 4_000,
            "read {} hourly points",
            hourly_read()
        );
        let got = matrix(&got.value);
        assert_eq!(got.len() as i64, (end - start) / HOUR + 1);
        assert!(
            got.iter().all(|p| p.1 >= 0.0),
            "a reset made an increase negative"
        );

        // Where raw samples are still kept, rollup and raw evaluation agree. Raw samples sit
        // 7 s after each quarter hour, never on a window boundary.
        let (start, end) = (190 * DAY, 200 * DAY - HOUR);
        for q in [
            "increase(c_total[1h])",
            "rate(c_total[2h])",
            "max_over_time(g[1h])",
            "min_over_time(g[3h])",
            "sum_over_time(g[2h])",
            "avg_over_time(g[1h])",
            "last_over_time(g[1h])",
        ] {
            let before = raw_read();
            let rolled = engine
                .range_query(
                    &TsdbStorage::new(&store, rollup_safe(q)),
                    q,
                    start,
                    end,
                    HOUR,
                )
                .unwrap();
            assert_eq!(raw_read(), before, "{q} read raw samples");
            let raw = engine
                .range_query(&TsdbStorage::new(&store, false), q, start, end, HOUR)
                .unwrap();
            let (got, want) = (matrix(&rolled.value), matrix(&raw.value));
            assert_eq!(want.len(), got.len(), "{q}");
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(w.0, g.0);
                assert!(
                    (w.1 - g.1).abs() <= 1e-9 * w.1.abs().max(1.0),
                    "{q} at {}: raw {} rollup {}",
                    w.0,
                    w.1,
                    g.1
                );
            }
        }

        // A short or unaligned query reads raw samples.
        for (q, s, e, step) in [
            ("max_over_time(g[1h])", end - 6 * HOUR, end, HOUR),
            ("max_over_time(g[1h])", start, end, 7 * 60_000),
        ] {
            let before = raw_read();
            engine
                .range_query(&TsdbStorage::new(&store, true), q, s, e, step)
                .unwrap();
            assert!(raw_read() > before, "{q} from {s} step {step}");
        }
    }
}
