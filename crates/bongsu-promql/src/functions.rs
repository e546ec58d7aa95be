//! PromQL functions over float samples.

use bongsu_model::{Labels, METRIC_NAME};
use promql_parser::label::{MatchOp as PMatchOp, Matcher as PMatcher, Matchers};
use promql_parser::parser::{Call, Expr, VectorSelector};
use regex::Regex;

use std::sync::Arc;

use crate::eval::{
    go_max, go_min, kahan_inc, mean, quantile, unparen, valid_label_name, Elem, Evaluator, MSeries,
    Val,
};
use crate::native::{CounterResetHint, FloatHistogram};
use crate::{Error, Result};

fn arg(c: &Call, i: usize) -> Result<&Expr> {
    c.args.args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
        Error::Eval(format!(
            "function {} is missing argument {}",
            c.func.name,
            i + 1
        ))
    })
}

/// Evaluates the range-vector argument of a function: the series, and the end and
/// length of the range window.
fn range_arg(ev: &mut Evaluator<'_>, e: &Expr, t: i64) -> Result<(Vec<MSeries>, i64, i64)> {
    match unparen(e) {
        Expr::MatrixSelector(ms) => {
            let end = ev.ref_time(&ms.vs.at, &ms.vs.offset, t);
            let range = ms.range.as_millis() as i64;
            match ev.eval(unparen(e), t)? {
                Val::Matrix(m) => Ok((m, end, range)),
                _ => Err(Error::Eval("expected a range vector".into())),
            }
        }
        Expr::Subquery(sq) => {
            let end = ev.ref_time(&sq.at, &sq.offset, t);
            let range = sq.range.as_millis() as i64;
            Ok((ev.subquery(sq, t)?, end, range))
        }
        _ => Err(Error::Eval("expected a range vector argument".into())),
    }
}

fn map_vector(ev: &mut Evaluator<'_>, c: &Call, t: i64, f: impl Fn(f64) -> f64) -> Result<Val> {
    let v = ev.eval_vector(arg(c, 0)?, t)?;
    Ok(Val::Vector(
        v.into_iter()
            .filter(|e| e.h.is_none())
            .map(|mut e| {
                e.value = f(e.value);
                e.drop_name = true;
                e
            })
            .collect(),
    ))
}

fn over_time(
    ev: &mut Evaluator<'_>,
    c: &Call,
    idx: usize,
    t: i64,
    keep_name: bool,
    f: impl Fn(&[(i64, f64)]) -> Option<f64>,
) -> Result<Val> {
    let a = arg(c, idx)?;
    let (m, _, _) = range_arg(ev, a, t)?;
    let mut out = Vec::new();
    for s in m {
        if s.points.is_empty() {
            continue;
        }
        if !s.hists.is_empty() {
            let name = s.labels.get(METRIC_NAME).unwrap_or("").to_owned();
            let pos = ev.pos_of(a);
            ev.info(format!(
                "ignored histograms in a range containing both floats and histograms for metric name {name:?}{pos}"
            ));
        }
        if let Some(v) = f(&s.points) {
            out.push(Elem {
                labels: s.labels,
                value: v,
                ts: t,
                drop_name: s.drop_name || !keep_name,
                h: None,
            });
        }
    }
    Ok(Val::Vector(out))
}

/// Like `over_time` for functions reading float and histogram samples alike.
fn over_time_any(
    ev: &mut Evaluator<'_>,
    c: &Call,
    t: i64,
    keep_name: bool,
    mut f: impl FnMut(&mut Evaluator<'_>, &MSeries, &Expr) -> Option<(f64, Option<Arc<FloatHistogram>>)>,
) -> Result<Val> {
    let a = arg(c, 0)?;
    let (m, _, _) = range_arg(ev, a, t)?;
    let mut out = Vec::new();
    for s in m {
        if let Some((v, h)) = f(ev, &s, a) {
            out.push(Elem {
                labels: s.labels,
                value: v,
                ts: t,
                drop_name: s.drop_name || !keep_name,
                h,
            });
        }
    }
    Ok(Val::Vector(out))
}

/// Float and histogram points of a series merged in time order.
fn merged(s: &MSeries) -> Vec<(i64, f64, Option<&Arc<FloatHistogram>>)> {
    let mut v: Vec<(i64, f64, Option<&Arc<FloatHistogram>>)> = s
        .points
        .iter()
        .map(|p| (p.0, p.1, None))
        .chain(s.hists.iter().map(|(t, h)| (*t, 0.0, Some(h))))
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

fn extrapolated_rate(
    ev: &mut Evaluator<'_>,
    c: &Call,
    t: i64,
    is_counter: bool,
    is_rate: bool,
) -> Result<Val> {
    let a0 = arg(c, 0)?;
    let (m, end, range) = range_arg(ev, a0, t)?;
    let start = end.saturating_sub(range);
    let mut out = Vec::new();
    for s in m {
        if !s.hists.is_empty() {
            let metric = s.labels.get(METRIC_NAME).unwrap_or("").to_owned();
            if !s.points.is_empty() {
                let pos = ev.pos_of(a0);
                ev.warn(format!(
                    "encountered a mix of histograms and floats for metric name {metric:?}{pos}"
                ));
                continue;
            }
            if s.hists.len() < 2 {
                continue;
            }
            let Some(mut h) = histogram_rate(ev, &s.hists, is_counter, &metric, a0) else {
                continue;
            };
            let first_t = s.hists[0].0;
            let last_t = s.hists[s.hists.len() - 1].0;
            let first_count = s.hists[0].1.count;
            let factor = extrapolation_factor(
                first_t,
                last_t,
                s.hists.len(),
                start,
                end,
                range,
                is_counter && h.count > 0.0 && first_count >= 0.0,
                first_count / h.count,
                is_rate,
            );
            h.mul(factor);
            out.push(Elem {
                labels: s.labels,
                value: 0.0,
                ts: t,
                drop_name: true,
                h: Some(Arc::new(h)),
            });
            continue;
        }
        let p = &s.points;
        if p.len() < 2 {
            continue;
        }
        if is_counter {
            if let Some(name) = s.labels.get(METRIC_NAME) {
                if !["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|x| name.ends_with(x))
                {
                    let pos = ev.pos_of(a0);
                    ev.info(format!(
                        "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}{pos}"
                    ));
                }
            }
        }
        let n = p.len();
        let mut result = p[n - 1].1 - p[0].1;
        if is_counter {
            let mut last = 0.0;
            for &(_, v) in p {
                if v < last {
                    result += last;
                }
                last = v;
            }
        }
        let first_t = p[0].0;
        let last_t = p[n - 1].0;
        let mut to_start = (first_t - start) as f64 / 1000.0;
        let mut to_end = (end - last_t) as f64 / 1000.0;
        let sampled = (last_t - first_t) as f64 / 1000.0;
        let avg = sampled / (n - 1) as f64;
        let threshold = avg * 1.1;
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        if is_counter {
            let mut to_zero = to_start;
            if result > 0.0 && p[0].1 >= 0.0 {
                to_zero = sampled * (p[0].1 / result);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if is_rate {
            factor /= range as f64 / 1000.0;
        }
        out.push(Elem {
            labels: s.labels,
            value: result * factor,
            ts: t,
            drop_name: true,
            h: None,
        });
    }
    Ok(Val::Vector(out))
}

/// The extrapolation factor of rate/increase/delta (divided by the range for rate).
#[allow(clippy::too_many_arguments)]
fn extrapolation_factor(
    first_t: i64,
    last_t: i64,
    n: usize,
    start: i64,
    end: i64,
    range: i64,
    zero_clamp: bool,
    zero_ratio: f64,
    is_rate: bool,
) -> f64 {
    let mut to_start = (first_t - start) as f64 / 1000.0;
    let mut to_end = (end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if zero_clamp {
        let to_zero = sampled * zero_ratio;
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    factor
}

/// The increase of a run of histogram samples with counter resets accounted for, as
/// Prometheus's `histogramRate`; `None` (with a warning) when they cannot be combined.
fn histogram_rate(
    ev: &mut Evaluator<'_>,
    points: &[(i64, Arc<FloatHistogram>)],
    is_counter: bool,
    metric: &str,
    a: &Expr,
) -> Option<FloatHistogram> {
    let pos = ev.pos_of(a);
    let first = &points[0].1;
    let last = &points[points.len() - 1].1;
    let gauge = CounterResetHint::Gauge;
    if is_counter && (first.counter_reset_hint == gauge || last.counter_reset_hint == gauge) {
        ev.warn(format!(
            "this native histogram metric is not a counter: {metric:?}{pos}"
        ));
    }
    let mut prev: FloatHistogram = (**first).clone();
    if is_counter && points[1].1.detect_reset(first) {
        let second = &points[1].1;
        prev = FloatHistogram {
            schema: second.schema,
            custom_values: second.custom_values.clone(),
            ..FloatHistogram::default()
        };
    }
    let mixed = |ev: &mut Evaluator<'_>| {
        ev.warn(format!(
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}{pos}"
        ));
        None
    };
    if last.uses_custom_buckets() != prev.uses_custom_buckets() {
        return mixed(ev);
    }
    let mut min_schema = last.schema.min(prev.schema);
    for (_, h) in &points[1..points.len() - 1] {
        if !is_counter {
            continue;
        }
        if h.counter_reset_hint == gauge {
            ev.warn(format!(
                "this native histogram metric is not a counter: {metric:?}{pos}"
            ));
        }
        min_schema = min_schema.min(h.schema);
        if h.uses_custom_buckets() != prev.uses_custom_buckets() {
            return mixed(ev);
        }
    }
    let mut h = last.copy_to_schema(min_schema);
    match h.sub(&prev) {
        Ok(c) if c.custom_bounds_reconciled => {
            ev.info(format!(
                "mismatched custom buckets were reconciled during subtraction{pos}"
            ));
        }
        Ok(_) => {}
        Err(_) => return mixed(ev),
    }
    if is_counter {
        let mut prev: &FloatHistogram = &prev;
        for (_, cur) in &points[1..] {
            if cur.detect_reset(prev) {
                match h.add(prev) {
                    Ok(c) if c.custom_bounds_reconciled => {
                        ev.info(format!(
                            "mismatched custom buckets were reconciled during addition{pos}"
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => return mixed(ev),
                }
            }
            prev = cur;
        }
    } else if first.counter_reset_hint != gauge || last.counter_reset_hint != gauge {
        ev.warn(format!(
            "this native histogram metric is not a gauge: {metric:?}{pos}"
        ));
    }
    h.counter_reset_hint = gauge;
    h.compact();
    Some(h)
}

fn instant_value(ev: &mut Evaluator<'_>, c: &Call, t: i64, is_rate: bool) -> Result<Val> {
    let a0 = arg(c, 0)?;
    let (m, _, _) = range_arg(ev, a0, t)?;
    let mut out = Vec::new();
    for s in m {
        if !s.hists.is_empty() {
            let all = merged(&s);
            if all.len() < 2 {
                continue;
            }
            let (q, r) = (&all[all.len() - 2], &all[all.len() - 1]);
            let metric = s.labels.get(METRIC_NAME).unwrap_or("").to_owned();
            let pos = ev.pos_of(a0);
            let interval = r.0 - q.0;
            if interval == 0 {
                continue;
            }
            let (Some(hq), Some(hr)) = (q.2, r.2) else {
                ev.warn(format!(
                    "encountered a mix of histograms and floats for metric name {metric:?}{pos}"
                ));
                continue;
            };
            let gauge = CounterResetHint::Gauge;
            if is_rate && (hr.counter_reset_hint == gauge || hq.counter_reset_hint == gauge) {
                ev.warn(format!(
                    "this native histogram metric is not a counter: {metric:?}{pos}"
                ));
            }
            if !is_rate && (hr.counter_reset_hint != gauge || hq.counter_reset_hint != gauge) {
                ev.warn(format!(
                    "this native histogram metric is not a gauge: {metric:?}{pos}"
                ));
            }
            let mut h = (**hr).clone();
            if !is_rate || !hr.detect_reset(hq) {
                match h.sub(hq) {
                    Ok(c) => {
                        if c.custom_bounds_reconciled {
                            ev.info(format!(
                                "mismatched custom buckets were reconciled during subtraction{pos}"
                            ));
                        }
                    }
                    Err(_) => {
                        ev.warn(format!(
                            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}{pos}"
                        ));
                        continue;
                    }
                }
            }
            h.counter_reset_hint = gauge;
            h.compact();
            if is_rate {
                h.div(interval as f64 / 1000.0);
            }
            out.push(Elem {
                labels: s.labels,
                value: 0.0,
                ts: t,
                drop_name: true,
                h: Some(Arc::new(h)),
            });
            continue;
        }
        let p = &s.points;
        if p.len() < 2 {
            continue;
        }
        let (lt, lv) = p[p.len() - 1];
        let (pt, pv) = p[p.len() - 2];
        let mut v = if is_rate && lv < pv { lv } else { lv - pv };
        let interval = lt - pt;
        if interval == 0 {
            continue;
        }
        if is_rate {
            v /= interval as f64 / 1000.0;
        }
        out.push(Elem {
            labels: s.labels,
            value: v,
            ts: t,
            drop_name: true,
            h: None,
        });
    }
    Ok(Val::Vector(out))
}

fn linear_regression(p: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(ts, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (ts - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Civil date (year, month, day) from days since the Unix epoch.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

fn time_part(name: &str, v: f64) -> f64 {
    if v.is_nan() || v.is_infinite() {
        return f64::NAN;
    }
    let secs = v as i64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let mut doy = d;
            for mm in 1..m {
                doy += days_in_month(y, mm);
            }
            doy as f64
        }
        "days_in_month" => days_in_month(y, m) as f64,
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        _ => y as f64,
    }
}

/// Natural ordering of strings: digit runs compare by value.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: the names label_replace may write.
fn legacy_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn absent_labels(e: &Expr) -> Labels {
    let vs = match unparen(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut l = Labels::empty();
    let mut has = std::collections::HashSet::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) && !has.contains(&m.name) {
            l.set(&m.name, &m.value);
            has.insert(m.name.clone());
        } else {
            l.remove(&m.name);
        }
    }
    l
}

fn string_arg(ev: &mut Evaluator<'_>, c: &Call, i: usize, t: i64) -> Result<String> {
    match ev.eval(arg(c, i)?, t)? {
        Val::Str(s) => Ok(s),
        _ => Err(Error::Eval(format!(
            "argument {} of {} must be a string",
            i + 1,
            c.func.name
        ))),
    }
}

fn check_dupes(v: &[Elem]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for e in v {
        if !seen.insert(e.final_labels()) {
            return Err(Error::Eval(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

fn sort_by_value(v: &mut [Elem], desc: bool) {
    v.sort_by(|x, y| {
        use std::cmp::Ordering::*;
        match (x.value.is_nan(), y.value.is_nan()) {
            (true, true) => Equal,
            (true, false) => Greater,
            (false, true) => Less,
            _ => {
                let o = x.value.partial_cmp(&y.value).unwrap_or(Equal);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }
        }
    });
}

/// The labels info() joins on.
const IDENTIFYING_LABELS: [&str; 2] = ["instance", "job"];

/// The selector of the info series info() reads: the `__name__` matchers of its second
/// argument, or `target_info`.
pub(crate) fn info_selector(sel: Option<&Expr>) -> VectorSelector {
    let mut ms = Vec::new();
    if let Some(Expr::VectorSelector(vs)) = sel.map(unparen) {
        if let Some(n) = &vs.name {
            ms.push(PMatcher::new(PMatchOp::Equal, METRIC_NAME, n));
        }
        ms.extend(
            vs.matchers
                .matchers
                .iter()
                .filter(|m| m.name == METRIC_NAME)
                .cloned(),
        );
    }
    if ms.is_empty() {
        ms.push(PMatcher::new(PMatchOp::Equal, METRIC_NAME, "target_info"));
    } else if !ms.iter().any(is_positive) {
        // Only exclusions: the candidates are still info metrics. (The pattern is a
        // constant and compiles.)
        if let Ok(re) = regex::Regex::new("^(?:.+_info)$") {
            ms.push(PMatcher::new(PMatchOp::Re(re), METRIC_NAME, ".+_info"));
        }
    }
    VectorSelector::new(None, Matchers::new(ms))
}

fn is_positive(m: &PMatcher) -> bool {
    matches!(m.op, PMatchOp::Equal | PMatchOp::Re(_))
}

/// The time at which the first argument of info() reads its samples.
fn info_ref_time(ev: &Evaluator<'_>, e: &Expr, t: i64) -> i64 {
    match unparen(e) {
        Expr::VectorSelector(vs) => ev.ref_time(&vs.at, &vs.offset, t),
        Expr::MatrixSelector(ms) => ev.ref_time(&ms.vs.at, &ms.vs.offset, t),
        Expr::Subquery(sq) => {
            let end = ev.ref_time(&sq.at, &sq.offset, t);
            let step = sq.step.map(|d| d.as_millis() as i64).unwrap_or(0);
            let last = if step > 0 {
                end - end.rem_euclid(step)
            } else {
                end
            };
            info_ref_time(ev, &sq.expr, last)
        }
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .find(|a| !matches!(unparen(a), Expr::NumberLiteral(_) | Expr::StringLiteral(_)))
            .map(|a| info_ref_time(ev, a, t))
            .unwrap_or(t),
        Expr::Aggregate(a) => info_ref_time(ev, &a.expr, t),
        Expr::Unary(u) => info_ref_time(ev, &u.expr, t),
        Expr::Binary(b) => info_ref_time(ev, &b.lhs, t),
        _ => t,
    }
}

/// `info(v, {data label matchers})`: adds the data labels of the info series sharing the
/// identifying labels (`instance`, `job`) of each series of `v`.
fn info(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val> {
    let a0 = arg(c, 0)?;
    let v = ev.eval_vector(a0, t)?;
    let sel_expr = c.args.args.get(1).map(|b| b.as_ref());
    let sel = info_selector(sel_expr);
    let name_ms: Vec<PMatcher> = sel.matchers.matchers.clone();
    let data_ms: Vec<PMatcher> = match sel_expr.map(unparen) {
        Some(Expr::VectorSelector(vs)) => vs
            .matchers
            .matchers
            .iter()
            .filter(|m| m.name != METRIC_NAME)
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    let rt = info_ref_time(ev, a0, t);
    let lookback = ev.lookback;
    let series = ev.series_for(&sel);
    // The info series current at `rt`, with the timestamp of their sample.
    let mut infos: Vec<(&Labels, i64)> = Vec::new();
    for s in series.iter() {
        let idx = s.points.partition_point(|p| p.t <= rt);
        let Some(p) = idx.checked_sub(1).map(|i| &s.points[i]) else {
            continue;
        };
        if p.t <= rt.saturating_sub(lookback) || p.is_stale() {
            continue;
        }
        if p.h.is_some() {
            return Err(Error::Eval(format!(
                "info series {} holds native histogram samples: info metrics must be floats",
                s.labels
            )));
        }
        if data_ms
            .iter()
            .all(|m| m.is_match(s.labels.get(&m.name).unwrap_or("")))
        {
            infos.push((&*s.labels, p.t));
        }
    }
    let accepts_empty = data_ms.iter().all(|m| m.is_match(""));
    let mut out = Vec::with_capacity(v.len());
    for mut e in v {
        let base_name = e.labels.get(METRIC_NAME);
        if name_ms.iter().any(is_positive)
            && base_name.is_some_and(|n| name_ms.iter().all(|m| m.is_match(n)))
        {
            out.push(e);
            continue;
        }
        let ident: Vec<&str> = IDENTIFYING_LABELS
            .iter()
            .map(|l| e.labels.get(l).unwrap_or(""))
            .collect();
        let mut picked: Vec<(&Labels, i64)> = Vec::new();
        if ident.iter().any(|v| !v.is_empty()) {
            for &(l, ts) in &infos {
                let same = IDENTIFYING_LABELS
                    .iter()
                    .zip(&ident)
                    .all(|(n, v)| l.get(n).unwrap_or("") == *v);
                if !same {
                    continue;
                }
                // Of several series of one info metric, the latest sample wins.
                match picked
                    .iter_mut()
                    .find(|(p, _)| p.get(METRIC_NAME) == l.get(METRIC_NAME))
                {
                    Some(slot) if slot.1 < ts => *slot = (l, ts),
                    Some(_) => {}
                    None => picked.push((l, ts)),
                }
            }
        }
        if picked.is_empty() {
            if accepts_empty {
                out.push(e);
            }
            continue;
        }
        let mut added: Vec<(String, String)> = Vec::new();
        for (l, _) in &picked {
            for lbl in l.iter() {
                if lbl.name == METRIC_NAME {
                    continue;
                }
                let wanted = if data_ms.is_empty() {
                    !IDENTIFYING_LABELS.contains(&lbl.name.as_str())
                } else {
                    data_ms.iter().any(|m| m.name == lbl.name)
                };
                if !wanted || e.labels.get(&lbl.name).is_some() {
                    continue;
                }
                match added.iter().find(|(n, _)| *n == lbl.name) {
                    Some((_, v)) if *v != lbl.value => {
                        return Err(Error::Eval(format!(
                            "conflicting label {:?}: info series disagree ({v:?} and {:?})",
                            lbl.name, lbl.value
                        )));
                    }
                    Some(_) => {}
                    None => added.push((lbl.name.clone(), lbl.value.clone())),
                }
            }
        }
        for (n, v) in added {
            Arc::make_mut(&mut e.labels).set(&n, &v);
        }
        out.push(e);
    }
    Ok(Val::Vector(out))
}

pub(crate) fn call(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val> {
    let name = c.func.name;
    match name {
        "abs" => map_vector(ev, c, t, f64::abs),
        "ceil" => map_vector(ev, c, t, f64::ceil),
        "floor" => map_vector(ev, c, t, f64::floor),
        "exp" => map_vector(ev, c, t, f64::exp),
        "sqrt" => map_vector(ev, c, t, f64::sqrt),
        "ln" => map_vector(ev, c, t, f64::ln),
        "log2" => map_vector(ev, c, t, f64::log2),
        "log10" => map_vector(ev, c, t, f64::log10),
        "sin" => map_vector(ev, c, t, f64::sin),
        "cos" => map_vector(ev, c, t, f64::cos),
        "tan" => map_vector(ev, c, t, f64::tan),
        "asin" => map_vector(ev, c, t, f64::asin),
        "acos" => map_vector(ev, c, t, f64::acos),
        "atan" => map_vector(ev, c, t, f64::atan),
        "sinh" => map_vector(ev, c, t, f64::sinh),
        "cosh" => map_vector(ev, c, t, f64::cosh),
        "tanh" => map_vector(ev, c, t, f64::tanh),
        "asinh" => map_vector(ev, c, t, f64::asinh),
        "acosh" => map_vector(ev, c, t, f64::acosh),
        "atanh" => map_vector(ev, c, t, f64::atanh),
        "deg" => map_vector(ev, c, t, |v| v * 180.0 / std::f64::consts::PI),
        "rad" => map_vector(ev, c, t, |v| v * std::f64::consts::PI / 180.0),
        "sgn" => map_vector(ev, c, t, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        }),
        "pi" => Ok(Val::Scalar(std::f64::consts::PI)),
        "step" => Ok(Val::Scalar(ev.step as f64 / 1000.0)),
        "range" => Ok(Val::Scalar((ev.end - ev.start) as f64 / 1000.0)),
        "start" => Ok(Val::Scalar(ev.start as f64 / 1000.0)),
        "end" => Ok(Val::Scalar(ev.end as f64 / 1000.0)),
        "min_of" | "max_of" => {
            let mut acc: Option<f64> = None;
            for a in &c.args.args {
                let v = ev.eval_scalar(a, t)?;
                acc = Some(match acc {
                    None => v,
                    Some(x) if name == "min_of" => go_min(x, v),
                    Some(x) => go_max(x, v),
                });
            }
            Ok(Val::Scalar(acc.unwrap_or(f64::NAN)))
        }
        "time" => Ok(Val::Scalar(t as f64 / 1000.0)),
        "round" => {
            let to = match c.args.args.get(1) {
                Some(e) => ev.eval_scalar(e, t)?,
                None => 1.0,
            };
            let inv = 1.0 / to;
            map_vector(ev, c, t, move |v| (v * inv + 0.5).floor() / inv)
        }
        "clamp" => {
            let lo = ev.eval_scalar(arg(c, 1)?, t)?;
            let hi = ev.eval_scalar(arg(c, 2)?, t)?;
            if hi < lo {
                return Ok(Val::Vector(Vec::new()));
            }
            map_vector(ev, c, t, move |v| go_max(lo, go_min(hi, v)))
        }
        "clamp_min" => {
            let lo = ev.eval_scalar(arg(c, 1)?, t)?;
            map_vector(ev, c, t, move |v| go_max(lo, v))
        }
        "clamp_max" => {
            let hi = ev.eval_scalar(arg(c, 1)?, t)?;
            map_vector(ev, c, t, move |v| go_min(hi, v))
        }
        "vector" => {
            let v = ev.eval_scalar(arg(c, 0)?, t)?;
            Ok(Val::Vector(vec![Elem {
                labels: crate::eval::SLabels::default(),
                value: v,
                ts: t,
                drop_name: false,
                h: None,
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let floats: Vec<&Elem> = v.iter().filter(|e| e.h.is_none()).collect();
            Ok(Val::Scalar(if floats.len() == 1 {
                floats[0].value
            } else {
                f64::NAN
            }))
        }
        "timestamp" => {
            let a = arg(c, 0)?;
            let direct = matches!(unparen(a), Expr::VectorSelector(_));
            let v = ev.eval_vector(a, t)?;
            Ok(Val::Vector(
                v.into_iter()
                    .map(|mut e| {
                        let ts = if direct { e.ts } else { t };
                        e.value = ts as f64 / 1000.0;
                        e.h = None;
                        e.drop_name = true;
                        e
                    })
                    .collect(),
            ))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            if c.args.args.is_empty() {
                return Ok(Val::Vector(vec![Elem {
                    labels: crate::eval::SLabels::default(),
                    value: time_part(name, t as f64 / 1000.0),
                    ts: t,
                    drop_name: false,
                    h: None,
                }]));
            }
            map_vector(ev, c, t, |v| time_part(name, v))
        }
        "absent" => {
            let a = arg(c, 0)?;
            let v = ev.eval_vector(a, t)?;
            if !v.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Elem {
                labels: Arc::new(absent_labels(a)),
                value: 1.0,
                ts: t,
                drop_name: false,
                h: None,
            }]))
        }
        "absent_over_time" => {
            let a = arg(c, 0)?;
            let (m, _, _) = range_arg(ev, a, t)?;
            if !m.is_empty() {
                return Ok(Val::Vector(Vec::new()));
            }
            Ok(Val::Vector(vec![Elem {
                labels: Arc::new(absent_labels(a)),
                value: 1.0,
                ts: t,
                drop_name: false,
                h: None,
            }]))
        }
        "present_over_time" => over_time_any(ev, c, t, false, |_, _, _| Some((1.0, None))),
        "count_over_time" => over_time_any(ev, c, t, false, |_, s, _| {
            Some(((s.points.len() + s.hists.len()) as f64, None))
        }),
        "sum_over_time" | "avg_over_time" => {
            let avg = name == "avg_over_time";
            over_time_any(ev, c, t, false, move |ev, s, a| {
                let metric = s.labels.get(METRIC_NAME).unwrap_or("").to_owned();
                if !s.hists.is_empty() {
                    if !s.points.is_empty() {
                        let pos = ev.pos_of(a);
                        ev.warn(format!(
                            "encountered a mix of histograms and floats for metric name {metric:?}{pos}"
                        ));
                        return None;
                    }
                    let hs: Vec<&FloatHistogram> = s.hists.iter().map(|x| x.1.as_ref()).collect();
                    let h = ev.sum_hist_refs(&hs, a, avg, &metric)?;
                    return Some((0.0, Some(Arc::new(h))));
                }
                if avg {
                    return Some((mean(s.points.iter().map(|x| x.1)), None));
                }
                let (mut sum, mut cc) = (0.0, 0.0);
                for &(_, v) in &s.points {
                    (sum, cc) = kahan_inc(v, sum, cc);
                }
                Some((if sum.is_infinite() { sum } else { sum + cc }, None))
            })
        }
        "last_over_time" | "first_over_time" | "ts_of_last_over_time" | "ts_of_first_over_time" => {
            let last = name.contains("last");
            let ts_only = name.starts_with("ts_of");
            over_time_any(ev, c, t, !ts_only, move |_, s, _| {
                let m = merged(s);
                let p = if last { m.last() } else { m.first() }?;
                if ts_only {
                    return Some((p.0 as f64 / 1000.0, None));
                }
                Some((p.1, p.2.cloned()))
            })
        }
        "min_over_time" => over_time(ev, c, 0, t, false, |p| {
            Some(p.iter().fold(
                f64::NAN,
                |acc, &(_, x)| {
                    if acc.is_nan() || x < acc {
                        x
                    } else {
                        acc
                    }
                },
            ))
        }),
        "max_over_time" => over_time(ev, c, 0, t, false, |p| {
            Some(p.iter().fold(
                f64::NAN,
                |acc, &(_, x)| {
                    if acc.is_nan() || x > acc {
                        x
                    } else {
                        acc
                    }
                },
            ))
        }),
        "ts_of_max_over_time" | "ts_of_min_over_time" => {
            let max = name == "ts_of_max_over_time";
            over_time(ev, c, 0, t, false, move |p| {
                let mut best: Option<(i64, f64)> = None;
                for &(ts, v) in p {
                    best = match best {
                        None => Some((ts, v)),
                        Some((bt, bv)) => {
                            let better = bv.is_nan() || (max && v >= bv) || (!max && v <= bv);
                            if better && !v.is_nan() {
                                Some((ts, v))
                            } else {
                                Some((bt, bv))
                            }
                        }
                    };
                }
                best.map(|(ts, _)| ts as f64 / 1000.0)
            })
        }
        "stddev_over_time" | "stdvar_over_time" => {
            let dev = name == "stddev_over_time";
            over_time(ev, c, 0, t, false, move |p| {
                let (mut n, mut m, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for &(_, x) in p {
                    n += 1.0;
                    let delta = x - (m + cm);
                    (m, cm) = kahan_inc(delta / n, m, cm);
                    (aux, ca) = kahan_inc(delta * (x - (m + cm)), aux, ca);
                }
                let var = (aux + ca) / n;
                Some(if dev { var.sqrt() } else { var })
            })
        }
        "mad_over_time" => over_time(ev, c, 0, t, false, |p| {
            if p.iter().any(|x| x.1.is_nan()) {
                return Some(f64::NAN);
            }
            let mut v: Vec<f64> = p.iter().map(|x| x.1).collect();
            let med = quantile(0.5, &mut v);
            let mut d: Vec<f64> = p.iter().map(|x| (x.1 - med).abs()).collect();
            Some(quantile(0.5, &mut d))
        }),
        "quantile_over_time" => {
            let qe = arg(c, 0)?;
            let q = ev.eval_scalar(qe, t)?;
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                let pos = ev.pos_of(qe);
                ev.warn(format!(
                    "quantile value should be between 0 and 1, got {}{pos}",
                    crate::json::format_float(q)
                ));
            }
            over_time(ev, c, 1, t, false, move |p| {
                let mut v: Vec<f64> = p.iter().map(|x| x.1).collect();
                Some(quantile(q, &mut v))
            })
        }
        "changes" | "resets" => {
            let resets = name == "resets";
            over_time_any(ev, c, t, false, move |_, s, _| {
                let m = merged(s);
                let mut n = 0.0;
                for w in m.windows(2) {
                    let (p, q) = (&w[0], &w[1]);
                    let hit = match (p.2, q.2) {
                        (None, None) if resets => q.1 < p.1,
                        (None, None) => q.1 != p.1 && !(q.1.is_nan() && p.1.is_nan()),
                        (Some(a), Some(b)) if resets => b.detect_reset(a),
                        (Some(a), Some(b)) => !b.equals(a),
                        _ => true,
                    };
                    if hit {
                        n += 1.0;
                    }
                }
                Some((n, None))
            })
        }
        "rate" => extrapolated_rate(ev, c, t, true, true),
        "increase" => extrapolated_rate(ev, c, t, true, false),
        "delta" => extrapolated_rate(ev, c, t, false, false),
        "irate" => instant_value(ev, c, t, true),
        "idelta" => instant_value(ev, c, t, false),
        "deriv" => over_time(ev, c, 0, t, false, |p| {
            if p.len() < 2 {
                return None;
            }
            Some(linear_regression(p, p[0].0).0)
        }),
        "predict_linear" => {
            let d = ev.eval_scalar(arg(c, 1)?, t)?;
            over_time(ev, c, 0, t, false, move |p| {
                if p.len() < 2 {
                    return None;
                }
                let (slope, icpt) = linear_regression(p, t);
                Some(slope * d + icpt)
            })
        }
        "double_exponential_smoothing" | "holt_winters" => {
            let sf = ev.eval_scalar(arg(c, 1)?, t)?;
            let tf = ev.eval_scalar(arg(c, 2)?, t)?;
            if sf <= 0.0 || sf >= 1.0 {
                return Err(Error::Eval(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 {
                return Err(Error::Eval(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
            over_time(ev, c, 0, t, false, move |p| {
                if p.len() < 2 {
                    return None;
                }
                let (mut s0, mut s1, mut b) = (0.0, p[0].1, p[1].1 - p[0].1);
                for (i, &(_, v)) in p.iter().enumerate().skip(1) {
                    let x = sf * v;
                    if i > 1 {
                        b = tf * (s1 - s0) + (1.0 - tf) * b;
                    }
                    let y = (1.0 - sf) * (s1 + b);
                    s0 = s1;
                    s1 = x + y;
                }
                Some(s1)
            })
        }
        "label_replace" => {
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            let dst = string_arg(ev, c, 1, t)?;
            let repl = string_arg(ev, c, 2, t)?;
            let src = string_arg(ev, c, 3, t)?;
            let re_s = string_arg(ev, c, 4, t)?;
            let re = Regex::new(&format!("^(?s:{re_s})$")).map_err(|_| {
                Error::Eval(format!(
                    "invalid regular expression in label_replace(): {re_s}"
                ))
            })?;
            if !legacy_label_name(&dst) {
                return Err(Error::Eval(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            for e in &mut v {
                let sv = e.labels.get(&src).unwrap_or("").to_owned();
                if let Some(caps) = re.captures(&sv) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    Arc::make_mut(&mut e.labels).set(&dst, &res);
                    if dst == METRIC_NAME {
                        e.drop_name = false;
                    }
                }
            }
            check_dupes(&v)?;
            Ok(Val::Vector(v))
        }
        "label_join" => {
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            let dst = string_arg(ev, c, 1, t)?;
            let sep = string_arg(ev, c, 2, t)?;
            let mut srcs = Vec::new();
            for i in 3..c.args.args.len() {
                srcs.push(string_arg(ev, c, i, t)?);
            }
            if !valid_label_name(&dst) {
                return Err(Error::Eval(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            for e in &mut v {
                let joined: Vec<&str> =
                    srcs.iter().map(|s| e.labels.get(s).unwrap_or("")).collect();
                let joined = joined.join(&sep);
                Arc::make_mut(&mut e.labels).set(&dst, &joined);
                if dst == METRIC_NAME {
                    e.drop_name = false;
                }
            }
            check_dupes(&v)?;
            Ok(Val::Vector(v))
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            if ev.start != ev.end {
                let pos = ev.pos_of_call(name);
                ev.warn(format!(
                    "sort is ineffective for range queries since results are always ordered by labels{pos}"
                ));
            }
            let mut v = ev.eval_vector(arg(c, 0)?, t)?;
            if matches!(name, "sort" | "sort_desc") {
                v.retain(|e| e.h.is_none());
            }
            match name {
                "sort" => sort_by_value(&mut v, false),
                "sort_desc" => sort_by_value(&mut v, true),
                _ => {
                    let mut keys = Vec::new();
                    for i in 1..c.args.args.len() {
                        keys.push(string_arg(ev, c, i, t)?);
                    }
                    let desc = name == "sort_by_label_desc";
                    v.sort_by(|a, b| {
                        let mut o = std::cmp::Ordering::Equal;
                        for k in &keys {
                            let (x, y) =
                                (a.labels.get(k).unwrap_or(""), b.labels.get(k).unwrap_or(""));
                            if x != y {
                                o = natural_cmp(x, y);
                                break;
                            }
                        }
                        if o == std::cmp::Ordering::Equal {
                            o = a.labels.cmp(&b.labels);
                        }
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                }
            }
            Ok(Val::Vector(v))
        }
        "histogram_quantile" => crate::histogram::histogram_quantile(ev, c, t),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            let v = ev.eval_vector(arg(c, 0)?, t)?;
            let mut out = Vec::new();
            for mut e in v {
                let Some(h) = e.h.take() else { continue };
                e.value = match name {
                    "histogram_count" => h.count,
                    "histogram_sum" => h.sum,
                    "histogram_avg" => h.sum / h.count,
                    "histogram_stddev" => crate::histogram::native_variance(&h).sqrt(),
                    _ => crate::histogram::native_variance(&h),
                };
                e.drop_name = true;
                out.push(e);
            }
            Ok(Val::Vector(out))
        }
        "histogram_fraction" => crate::histogram::histogram_fraction(ev, c, t),
        "info" => info(ev, c, t),
        "histogram_quantiles" => crate::histogram::histogram_quantiles(ev, c, t),
        other => Err(Error::Eval(format!(
            "function {other} is not supported by this engine"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(59), (1970, 3, 1));
        assert_eq!(time_part("day_of_week", 0.0), 4.0);
        assert_eq!(time_part("days_in_month", 951_782_400.0), 29.0); // Feb 2000
        assert_eq!(time_part("day_of_year", 31_449_600.0), 365.0);
        assert_eq!(time_part("hour", 3_600.0 * 25.0), 1.0);
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a2", "a10"), std::cmp::Ordering::Less);
        assert_eq!(natural_cmp("b", "a10"), std::cmp::Ordering::Greater);
        assert_eq!(natural_cmp("x", "x"), std::cmp::Ordering::Equal);
    }
}
