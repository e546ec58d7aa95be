//! Rendering results in the shape of the Prometheus HTTP API's `data` field.

use std::fmt::Write;

use bongsu_model::Labels;

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
        let frac = format!("{ms:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
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

fn push_point(out: &mut String, ts_ms: i64, v: &str) {
    out.push('[');
    format_timestamp(out, ts_ms);
    out.push(',');
    push_json_string(out, v);
    out.push(']');
}

/// Renders `value` as the JSON object the Prometheus HTTP API returns under `data`:
/// `{"resultType":"vector","result":[{"metric":{...},"value":[1700000000.5,"1"]}]}`.
pub fn to_prometheus_json(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Scalar {
            timestamp_ms,
            value,
        } => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            push_point(&mut out, *timestamp_ms, &format_float(*value));
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
                out.push_str(",\"value\":");
                push_point(&mut out, s.timestamp_ms, &format_float(s.value));
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
                out.push_str(",\"values\":[");
                for (j, (t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_point(&mut out, *t, &format_float(*v));
                }
                out.push_str("]}");
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
        }]);
        assert_eq!(
            to_prometheus_json(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1.5,"1"]}]}"#
        );
        let m = Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            points: vec![(0, f64::NAN), (60_010, f64::NEG_INFINITY)],
        }]);
        assert_eq!(
            to_prometheus_json(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"NaN"],[60.01,"-Inf"]]}]}"#
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
