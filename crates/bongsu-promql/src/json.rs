//! Rendering results in the shape of the Prometheus HTTP API's `data` field.

use std::fmt::Write;

use bongsu_model::Labels;

use crate::native::FloatHistogram;
use crate::value::Value;

/// Formats a sample value as Prometheus does: shortest round-trip digits without an
/// exponent, `+Inf`, `-Inf` and `NaN`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// Formats a millisecond timestamp as Unix seconds with up to three decimals.
fn format_timestamp(out: &mut String, ts_ms: i64) {
    let neg = ts_ms < 0;
    let abs = ts_ms.unsigned_abs();
    let (secs, ms) = (abs / 1000, abs % 1000);
    if neg {
        out.push('-');
    }
    let _ = write!(out, "{secs}");
    if ms != 0 {
        let digits = [ms / 100, ms / 10 % 10, ms % 10];
        let used = if ms % 100 == 0 {
            1
        } else if ms % 10 == 0 {
            2
        } else {
            3
        };
        out.push('.');
        for d in &digits[..used] {
            out.push(char::from(b'0' + *d as u8));
        }
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_metric(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, &l.name);
        out.push(':');
        push_json_string(out, &l.value);
    }
    out.push('}');
}

/// `[ts,"value"]` for a float, formatted straight into `out` (the same text as
/// [`format_float`]).
fn push_float_point(out: &mut String, ts_ms: i64, v: f64) {
    out.push('[');
    format_timestamp(out, ts_ms);
    out.push_str(",\"");
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
    out.push_str("\"]");
}

fn push_point(out: &mut String, ts_ms: i64, v: &str) {
    out.push('[');
    format_timestamp(out, ts_ms);
    out.push(',');
    push_json_string(out, v);
    out.push(']');
}

/// `{"count":"4","sum":"10","buckets":[[0,"1","2","3"]]}`: populated buckets in
/// ascending order, each `[boundary rule, lower, upper, count]` where the rule is 0 for
/// `(lower, upper]`, 1 for `[lower, upper)`, 2 for an open and 3 for a closed interval.
fn push_histogram(out: &mut String, h: &FloatHistogram) {
    out.push_str("{\"count\":");
    push_json_string(out, &format_float(h.count));
    out.push_str(",\"sum\":");
    push_json_string(out, &format_float(h.sum));
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(if first { ",\"buckets\":[" } else { "," });
        first = false;
        let rule = match (b.lower_inclusive, b.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        };
        let _ = write!(out, "[{rule},");
        push_json_string(out, &format_float(b.lower));
        out.push(',');
        push_json_string(out, &format_float(b.upper));
        out.push(',');
        push_json_string(out, &format_float(b.count));
        out.push(']');
    }
    if !first {
        out.push(']');
    }
    out.push('}');
}

fn push_histogram_point(out: &mut String, ts_ms: i64, h: &FloatHistogram) {
    out.push('[');
    format_timestamp(out, ts_ms);
    out.push(',');
    push_histogram(out, h);
    out.push(']');
}

/// Renders `value` as the JSON object the Prometheus HTTP API returns under `data`:
/// `{"resultType":"vector","result":[{"metric":{...},"value":[1700000000.5,"1"]}]}`.
pub fn to_prometheus_json(value: &Value) -> String {
    let mut out = String::with_capacity(match value {
        Value::Matrix(m) => m.iter().map(|s| 100 + s.points.len() * 24).sum(),
        Value::Vector(v) => v.len() * 120,
        _ => 64,
    });
    match value {
        Value::Scalar {
            timestamp_ms,
            value,
        } => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            push_float_point(&mut out, *timestamp_ms, *value);
        }
        Value::String {
            timestamp_ms,
            value,
        } => {
            out.push_str("{\"resultType\":\"string\",\"result\":");
            push_point(&mut out, *timestamp_ms, value);
        }
        Value::Vector(v) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_metric(&mut out, &s.labels);
                match &s.histogram {
                    Some(h) => {
                        out.push_str(",\"histogram\":");
                        push_histogram_point(&mut out, s.timestamp_ms, h);
                    }
                    None => {
                        out.push_str(",\"value\":");
                        push_float_point(&mut out, s.timestamp_ms, s.value);
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(m) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                push_metric(&mut out, &s.labels);
                if !s.points.is_empty() || s.histograms.is_empty() {
                    out.push_str(",\"values\":[");
                    for (j, (t, v)) in s.points.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        push_float_point(&mut out, *t, *v);
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        push_histogram_point(&mut out, *t, h);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{InstantSample, RangeSeries};

    #[test]
    fn floats_format_like_prometheus() {
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(-2.5), "-2.5");
        assert_eq!(format_float(3.0), "3");
    }

    proptest::proptest! {
        #[test]
        fn float_text_round_trips(v in proptest::num::f64::ANY) {
            let s = format_float(v);
            let back: f64 = match s.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                "NaN" => f64::NAN,
                other => other.parse().unwrap(),
            };
            proptest::prop_assert!(back == v || (back.is_nan() && v.is_nan()));
            proptest::prop_assert!(!s.contains('e'));
        }
    }

    #[test]
    fn renders_vector_matrix_scalar() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]).unwrap();
        let v = Value::Vector(vec![InstantSample {
            labels: l.clone(),
            timestamp_ms: 1_500,
            value: 1.0,
            histogram: None,
        }]);
        assert_eq!(
            to_prometheus_json(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1.5,"1"]}]}"#
        );
        let m = Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            points: vec![(0, f64::NAN), (60_010, f64::NEG_INFINITY)],
            histograms: Vec::new(),
        }]);
        assert_eq!(
            to_prometheus_json(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"NaN"],[60.01,"-Inf"]]}]}"#
        );
        let h = crate::native::parse_histogram_literal(
            "{{schema:0 count:4 sum:10 z_bucket:1 z_bucket_w:0.5 buckets:[2] n_buckets:[0 1]}}",
        )
        .unwrap();
        let hv = Value::Vector(vec![InstantSample {
            labels: Labels::empty(),
            timestamp_ms: 2_000,
            value: 0.0,
            histogram: Some(h.clone()),
        }]);
        assert_eq!(
            to_prometheus_json(&hv),
            r#"{"resultType":"vector","result":[{"metric":{},"histogram":[2,{"count":"4","sum":"10","buckets":[[1,"-2","-1","1"],[3,"-0.5","0.5","1"],[0,"0.5","1","2"]]}]}]}"#
        );
        let hm = Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            points: Vec::new(),
            histograms: vec![(0, FloatHistogram::default())],
        }]);
        assert_eq!(
            to_prometheus_json(&hm),
            r#"{"resultType":"matrix","result":[{"metric":{},"histograms":[[0,{"count":"0","sum":"0"}]]}]}"#
        );
        let s = Value::Scalar {
            timestamp_ms: -1_000,
            value: 2.0,
        };
        assert_eq!(
            to_prometheus_json(&s),
            r#"{"resultType":"scalar","result":[-1,"2"]}"#
        );
    }
}
