//! Comparing two Prometheus HTTP API answers: same result type, same series sets, same
//! timestamps, values equal within a relative tolerance.

use std::collections::BTreeMap;

use serde_json::Value;

/// Relative tolerance on values.
pub const REL_TOLERANCE: f64 = 1e-9;
/// Absolute tolerance for values near zero (rounding noise of sums that cancel).
pub const ABS_TOLERANCE: f64 = 1e-12;

/// Whether two sample values are equal within tolerance; NaN equals NaN, infinities must
/// have the same sign.
pub fn values_equal(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    let diff = (a - b).abs();
    diff <= ABS_TOLERANCE || diff <= REL_TOLERANCE * a.abs().max(b.abs())
}

/// Parses a value of the API's `[ts, "value"]` pair (`"NaN"`, `"+Inf"`, `"-Inf"` included).
fn parse_value(v: &Value) -> Option<f64> {
    match v.as_str()? {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

/// `[ts, "v"]` as (milliseconds, value).
fn parse_point(p: &Value) -> Option<(i64, f64)> {
    let a = p.as_array()?;
    let ts = a.first()?.as_f64()?;
    Some(((ts * 1000.0).round() as i64, parse_value(a.get(1)?)?))
}

/// Series key: the metric's labels, sorted.
fn series_key(s: &Value) -> String {
    let mut pairs: Vec<(String, String)> = s
        .get("metric")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

type Points = Vec<(i64, f64)>;

/// The result of an answer as series key → points (a scalar is one series named `scalar`).
fn result_points(answer: &Value) -> Result<(String, BTreeMap<String, Points>), String> {
    if answer.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!(
            "query failed: {} {}",
            answer
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or(""),
            answer.get("error").and_then(Value::as_str).unwrap_or("")
        ));
    }
    let data = answer.get("data").ok_or("answer has no data")?;
    let rt = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or("answer has no resultType")?
        .to_owned();
    let result = data.get("result").ok_or("answer has no result")?;
    let mut out = BTreeMap::new();
    match rt.as_str() {
        "scalar" | "string" => {
            let p = parse_point(result).ok_or("malformed scalar")?;
            out.insert("scalar".to_owned(), vec![p]);
        }
        "vector" | "matrix" => {
            for s in result.as_array().ok_or("result is not a list")? {
                let key = series_key(s);
                let pts: Points = if rt == "vector" {
                    vec![parse_point(s.get("value").ok_or("sample has no value")?)
                        .ok_or("malformed sample")?]
                } else {
                    s.get("values")
                        .and_then(Value::as_array)
                        .ok_or("series has no values")?
                        .iter()
                        .map(|p| parse_point(p).ok_or("malformed point"))
                        .collect::<Result<_, _>>()?
                };
                if out.insert(key.clone(), pts).is_some() {
                    return Err(format!("series {key} appears twice"));
                }
            }
        }
        other => return Err(format!("unknown resultType {other}")),
    }
    Ok((rt, out))
}

/// Compares two answers; `Ok(n)` with the number of points compared when they agree,
/// otherwise the first differences found (at most a few, described for a human).
pub fn compare_answers(expected: &Value, actual: &Value) -> Result<usize, String> {
    let (rt_e, e) = result_points(expected).map_err(|m| format!("expected side: {m}"))?;
    let (rt_a, a) = result_points(actual).map_err(|m| format!("actual side: {m}"))?;
    if rt_e != rt_a {
        return Err(format!("result type {rt_a}, expected {rt_e}"));
    }
    let mut problems = Vec::new();
    for k in e.keys().filter(|k| !a.contains_key(*k)) {
        problems.push(format!("missing series {k}"));
    }
    for k in a.keys().filter(|k| !e.contains_key(*k)) {
        problems.push(format!("unexpected series {k}"));
    }
    let mut compared = 0;
    for (k, pe) in &e {
        let Some(pa) = a.get(k) else { continue };
        let te: Vec<i64> = pe.iter().map(|p| p.0).collect();
        let ta: Vec<i64> = pa.iter().map(|p| p.0).collect();
        if te != ta {
            let only_e: Vec<_> = te.iter().filter(|t| !ta.contains(t)).take(3).collect();
            let only_a: Vec<_> = ta.iter().filter(|t| !te.contains(t)).take(3).collect();
            problems.push(format!(
                "{k}: timestamps differ ({} vs {} points; expected only {only_e:?}, actual only {only_a:?})",
                te.len(),
                ta.len()
            ));
            continue;
        }
        for ((t, ve), (_, va)) in pe.iter().zip(pa) {
            compared += 1;
            if !values_equal(*ve, *va) {
                problems.push(format!("{k} at {t}: {va}, expected {ve}"));
                break;
            }
        }
    }
    if problems.is_empty() {
        Ok(compared)
    } else {
        let n = problems.len();
        problems.truncate(4);
        if n > 4 {
            problems.push(format!("... {} more", n - 4));
        }
        Err(problems.join("; "))
    }
}
