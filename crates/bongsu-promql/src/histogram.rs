//! `histogram_quantile` over classic (`le`-labelled) buckets.

use std::collections::HashMap;
use std::sync::Arc;

use bongsu_model::{Labels, METRIC_NAME};
use promql_parser::parser::{Call, Expr};

use crate::eval::{kahan_inc, Elem, Evaluator, Val};
use crate::native::FloatHistogram;
use crate::{Error, Result};

const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    if a == b {
        return true;
    }
    let min_normal = f64::MIN_POSITIVE;
    let diff = (a - b).abs();
    let abs_sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < eps * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Quantile `q` of buckets given as (upper bound, cumulative count); returns the value
/// and whether the counts had to be forced monotonic.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return (f64::NAN, false),
    }
    // Coalesce buckets with the same bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, c) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    let mut forced = false;
    let mut prev = merged[0].1;
    for b in merged.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) {
            b.1 = prev;
            continue;
        }
        if cur < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    let bs = merged;
    if bs.len() < 2 {
        return (f64::NAN, forced);
    }
    let obs = bs[bs.len() - 1].1;
    if obs == 0.0 || obs.is_nan() {
        return (f64::NAN, forced);
    }
    let mut rank = q * obs;
    let n = bs.len() - 1;
    let b = bs[..n].partition_point(|x| x.1 < rank);
    if b == n {
        return (bs[n - 1].0, forced);
    }
    if b == 0 && bs[0].0 <= 0.0 {
        return (bs[0].0, forced);
    }
    let mut start = 0.0;
    let end = bs[b].0;
    let mut count = bs[b].1;
    if b > 0 {
        start = bs[b - 1].0;
        count -= bs[b - 1].1;
        rank -= bs[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        other => other.parse::<f64>().ok(),
    }
}

pub(crate) fn histogram_quantile(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val> {
    let (Some(qe), Some(ve)) = (c.args.args.first(), c.args.args.get(1)) else {
        return Err(Error::Eval(
            "histogram_quantile needs a quantile and a vector".into(),
        ));
    };
    let q = ev.eval_scalar(qe, t)?;
    let v = ev.eval_vector(ve, t)?;
    Ok(Val::Vector(quantile_of_vector(ev, q, qe, v, ve, t)))
}

/// `histogram_quantiles(v, "label", q1, q2, ...)`: one result per input histogram and
/// quantile, the quantile written into `label`.
pub(crate) fn histogram_quantiles(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val> {
    let (Some(ve), Some(le)) = (c.args.args.first(), c.args.args.get(1)) else {
        return Err(Error::Eval(
            "histogram_quantiles needs a vector, a label name and quantiles".into(),
        ));
    };
    let label = match ev.eval(le, t)? {
        Val::Str(s) => s,
        _ => {
            return Err(Error::Eval(
                "argument 2 of histogram_quantiles must be a string".into(),
            ))
        }
    };
    let v = ev.eval_vector(ve, t)?;
    let mut out = Vec::new();
    for qe in c.args.args.iter().skip(2) {
        let q = ev.eval_scalar(qe, t)?;
        let mut text = crate::json::format_float(q);
        if !text.contains(['.', 'I', 'N']) {
            text.push_str(".0");
        }
        for mut e in quantile_of_vector(ev, q, qe, v.clone(), ve, t) {
            Arc::make_mut(&mut e.labels).set(&label, &text);
            out.push(e);
        }
    }
    Ok(Val::Vector(out))
}

fn quantile_of_vector(
    ev: &mut Evaluator<'_>,
    q: f64,
    qe: &Expr,
    v: Vec<Elem>,
    ve: &Expr,
    t: i64,
) -> Vec<Elem> {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        let pos = ev.pos_of(qe);
        ev.warn(format!(
            "quantile value should be between 0 and 1, got {}{pos}",
            crate::json::format_float(q)
        ));
    }
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, (Vec<(f64, f64)>, String)> = HashMap::new();
    let mut natives = Vec::new();
    for e in v {
        if e.h.is_some() {
            natives.push(e);
            continue;
        }
        let name = e.labels.get(METRIC_NAME).unwrap_or("").to_owned();
        let le_raw = e.labels.get("le").unwrap_or("").to_owned();
        let Some(le) = parse_le(&le_raw) else {
            let pos = ev.pos_of(ve);
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {le_raw:?} for metric name {name:?}{pos}"
            ));
            continue;
        };
        // The name stays in the group key and is dropped at the end (delayed name
        // removal): two histograms that differ only by name then collide.
        let mut key = (*e.labels).clone();
        key.remove("le");
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                (Vec::new(), name)
            })
            .0
            .push((le, e.value));
    }
    let mut out = Vec::new();
    for mut e in natives {
        let name = e.labels.get(METRIC_NAME).unwrap_or("").to_owned();
        if groups.get(&*e.labels).is_some_and(|g| !g.0.is_empty()) {
            let pos = ev.pos_of(ve);
            ev.warn(format!(
                "vector contains a mix of classic and native histograms for metric name {name:?}{pos}"
            ));
            groups.remove(&*e.labels);
            continue;
        }
        let Some(h) = e.h.take() else { continue };
        let (val, nan) = native_quantile(q, &h);
        if let Some(result_nan) = nan {
            let pos = ev.pos_of(ve);
            let what = if result_nan {
                "result is NaN"
            } else {
                "result is skewed higher"
            };
            ev.info(format!(
                "input to histogram_quantile has NaN observations, {what} for metric name {name:?}{pos}"
            ));
        }
        e.value = val;
        e.drop_name = true;
        e.ts = t;
        out.push(e);
    }
    for key in order {
        let Some((mut buckets, name)) = groups.remove(&key) else {
            continue;
        };
        let (val, forced) = bucket_quantile(q, &mut buckets);
        if forced {
            let pos = ev.pos_of(ve);
            ev.info(format!(
                "input to histogram_quantile needed to be fixed for monotonicity (see the histogram_quantile documentation) for metric name {name:?}{pos}"
            ));
        }
        out.push(Elem {
            labels: Arc::new(key),
            value: val,
            ts: t,
            drop_name: true,
            h: None,
        });
    }
    out
}

/// Quantile `q` of a native histogram, interpolating exponentially within exponential
/// buckets and linearly within custom buckets and the zero bucket. The flag is set when
/// NaN observations made the result NaN (`Some(true)`) or skewed it (`Some(false)`).
pub(crate) fn native_quantile(q: f64, h: &FloatHistogram) -> (f64, Option<bool>) {
    if q < 0.0 {
        return (f64::NEG_INFINITY, None);
    }
    if q > 1.0 {
        return (f64::INFINITY, None);
    }
    if h.count == 0.0 || q.is_nan() {
        return (f64::NAN, None);
    }
    let forward = h.sum.is_nan() || q < 0.5;
    let mut buckets = h.all_buckets();
    let mut rank = if forward {
        q * h.count
    } else {
        buckets.reverse();
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut bucket = None;
    for b in &buckets {
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        bucket = Some(*b);
        if count >= rank {
            break;
        }
    }
    let Some(mut b) = bucket else {
        return (f64::NAN, h.sum.is_nan().then_some(true));
    };
    let custom = h.uses_custom_buckets();
    if !custom && b.lower < 0.0 && b.upper > 0.0 {
        if h.negative.is_empty() && !h.positive.is_empty() {
            b.lower = 0.0;
        } else if h.positive.is_empty() && !h.negative.is_empty() {
            b.upper = 0.0;
        }
    } else if custom {
        if b.lower == f64::NEG_INFINITY {
            if b.upper <= 0.0 {
                return (b.upper, None);
            }
            b.lower = 0.0;
        } else if b.upper == f64::INFINITY {
            return (b.lower, None);
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        return (f64::NAN, Some(true));
    }
    let nan_skew = if h.sum.is_nan() { Some(false) } else { None };
    if forward {
        rank -= count - b.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / b.count;
    if custom || (b.lower <= 0.0 && b.upper >= 0.0) {
        return (b.lower + (b.upper - b.lower) * fraction, nan_skew);
    }
    let log_lower = b.lower.abs().log2();
    let log_upper = b.upper.abs().log2();
    if b.lower > 0.0 {
        return (
            (log_lower + (log_upper - log_lower) * fraction).exp2(),
            nan_skew,
        );
    }
    (
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2(),
        nan_skew,
    )
}

/// Fraction of the observations of `h` between `lower` and `upper`.
pub(crate) fn native_fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let custom = h.uses_custom_buckets();
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for mut b in h.all_buckets() {
        let mut zero_bucket = false;
        if !custom && b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative.is_empty() && !h.positive.is_empty() {
                b.lower = 0.0;
            } else if h.positive.is_empty() && !h.negative.is_empty() {
                b.upper = 0.0;
            }
        }
        if custom && b.lower == f64::NEG_INFINITY && b.upper > 0.0 {
            b.lower = 0.0;
        }
        let linear = |v: f64| {
            // No interpolation in a bucket of infinite width: its observations sit at
            // the infinite end.
            if b.lower == f64::NEG_INFINITY {
                return rank + b.count;
            }
            if b.upper.is_infinite() {
                return rank;
            }
            rank + b.count * (v - b.lower) / (b.upper - b.lower)
        };
        let expo = |v: f64| {
            let (ll, lu, lv) = (b.lower.abs().log2(), b.upper.abs().log2(), v.abs().log2());
            let f = if v > 0.0 {
                (lv - ll) / (lu - ll)
            } else {
                1.0 - (lv - lu) / (ll - lu)
            };
            rank + b.count * f
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = if custom || zero_bucket {
                linear(lower)
            } else {
                expo(lower)
            };
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = if custom || zero_bucket {
                linear(upper)
            } else {
                expo(upper)
            };
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    // NaN observations are in the count but in no bucket: they belong to no range.
    let cap = if h.sum.is_nan() {
        let in_buckets: f64 = h.all_buckets().iter().map(|b| b.count).sum();
        in_buckets.min(h.count)
    } else {
        h.count
    };
    if !lower_set || lower_rank > cap {
        lower_rank = cap;
    }
    if !upper_set || upper_rank > cap {
        upper_rank = cap;
    }
    (upper_rank - lower_rank) / h.count
}

/// Estimated variance of the observations of `h`: each bucket's observations sit at
/// its geometric mean (arithmetic for custom buckets, 0 in the zero bucket).
pub(crate) fn native_variance(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if h.uses_custom_buckets() {
            if b.lower == f64::NEG_INFINITY {
                b.upper.min(0.0).max(b.upper)
            } else if b.upper == f64::INFINITY {
                b.lower
            } else {
                (b.upper + b.lower) / 2.0
            }
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 {
                -v
            } else {
                v
            }
        };
        let d = val - mean;
        (var, c) = kahan_inc(b.count * d * d, var, c);
    }
    (var + c) / h.count
}

/// `histogram_fraction(lower, upper, v)` over native histograms and classic buckets.
pub(crate) fn histogram_fraction(ev: &mut Evaluator<'_>, c: &Call, t: i64) -> Result<Val> {
    let (Some(le), Some(ue), Some(ve)) =
        (c.args.args.first(), c.args.args.get(1), c.args.args.get(2))
    else {
        return Err(Error::Eval(
            "histogram_fraction needs a lower bound, an upper bound and a vector".into(),
        ));
    };
    let lower = ev.eval_scalar(le, t)?;
    let upper = ev.eval_scalar(ue, t)?;
    let v = ev.eval_vector(ve, t)?;
    let mut out = Vec::new();
    let mut classic: Vec<Elem> = Vec::new();
    for mut e in v {
        match e.h.take() {
            Some(h) => {
                if h.sum.is_nan() {
                    let name = e.labels.get(METRIC_NAME).unwrap_or("").to_owned();
                    let pos = ev.pos_of(ve);
                    ev.info(format!(
                        "input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {name:?}{pos}"
                    ));
                }
                e.value = native_fraction(lower, upper, &h);
                e.drop_name = true;
                out.push(e);
            }
            None => classic.push(e),
        }
    }
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, Vec<(f64, f64)>> = HashMap::new();
    for e in classic {
        let le_raw = e.labels.get("le").unwrap_or("").to_owned();
        let Some(le) = parse_le(&le_raw) else {
            let name = e.labels.get(METRIC_NAME).unwrap_or("").to_owned();
            let pos = ev.pos_of(ve);
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {le_raw:?} for metric name {name:?}{pos}"
            ));
            continue;
        };
        let mut key = (*e.labels).clone();
        key.remove("le");
        groups
            .entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push((le, e.value));
    }
    let mut mixed = Vec::new();
    for (i, e) in out.iter().enumerate() {
        if groups.remove(&*e.labels).is_some() {
            mixed.push(i);
            let name = e.labels.get(METRIC_NAME).unwrap_or("").to_owned();
            let pos = ev.pos_of(ve);
            ev.warn(format!(
                "vector contains a mix of classic and native histograms for metric name {name:?}{pos}"
            ));
        }
    }
    for i in mixed.into_iter().rev() {
        out.remove(i);
    }
    for key in order {
        let Some(mut b) = groups.remove(&key) else {
            continue;
        };
        out.push(Elem {
            labels: Arc::new(key),
            value: bucket_fraction(lower, upper, &mut b),
            ts: t,
            drop_name: true,
            h: None,
        });
    }
    Ok(Val::Vector(out))
}

/// Fraction of observations between `lower` and `upper` in classic cumulative buckets,
/// interpolating linearly within a bucket (the first bucket starts at 0 when its upper
/// bound is positive).
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let rank_at = |v: f64| -> f64 {
        if v == f64::NEG_INFINITY {
            return 0.0;
        }
        let mut prev_ub = f64::NEG_INFINITY;
        let mut prev_count = 0.0;
        for (i, &(ub, cum)) in buckets.iter().enumerate() {
            if v <= ub || ub == f64::INFINITY {
                if v == ub {
                    return cum;
                }
                if ub == f64::INFINITY {
                    return if v == f64::INFINITY { cum } else { prev_count };
                }
                let lb = if i == 0 {
                    if ub > 0.0 {
                        0.0
                    } else {
                        return cum;
                    }
                } else {
                    prev_ub
                };
                if v <= lb {
                    return prev_count;
                }
                return prev_count + (cum - prev_count) * (v - lb) / (ub - lb);
            }
            prev_ub = ub;
            prev_count = cum;
        }
        total
    };
    (rank_at(upper).min(total) - rank_at(lower).min(total)) / total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_within_bucket() {
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.75, &mut b).0, 1.5);
        let mut b = vec![(1.0, 10.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.99, &mut b).0, 1.0);
        let mut no_inf = vec![(1.0, 10.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).0.is_nan());
        let mut non_mono = vec![(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 10.0)];
        assert!(bucket_quantile(0.5, &mut non_mono).1);
    }
}
