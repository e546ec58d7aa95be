//! `histogram_quantile` over classic (`le`-labelled) buckets.

use std::collections::HashMap;

use bongsu_model::{Labels, METRIC_NAME};
use promql_parser::parser::Call;

use crate::eval::{Elem, Evaluator, Val};
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
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        let pos = ev.pos_of(qe);
        ev.warn(format!(
            "quantile value should be between 0 and 1, got {}{pos}",
            crate::json::format_float(q)
        ));
    }
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: HashMap<Labels, (Vec<(f64, f64)>, String)> = HashMap::new();
    for e in v {
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
        let mut key = e.labels.clone();
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
            labels: key,
            value: val,
            ts: t,
            drop_name: true,
        });
    }
    Ok(Val::Vector(out))
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
