//! Answer comparison and OpenMetrics output.

use bongsu_loadgen::{compare_answers, values_equal, write_openmetrics, Workload};
use serde_json::json;

fn vector(samples: &[(&str, f64, &str)]) -> serde_json::Value {
    let result: Vec<_> = samples
        .iter()
        .map(|(inst, ts, v)| json!({"metric": {"__name__": "up", "instance": inst}, "value": [ts, v]}))
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

#[test]
fn equal_answers_pass_in_any_series_order() {
    let a = vector(&[("a", 1.5, "1"), ("b", 1.5, "NaN")]);
    let b = vector(&[("b", 1.5, "NaN"), ("a", 1.5, "1.0000000000001")]);
    assert_eq!(compare_answers(&a, &b), Ok(2));
}

#[test]
fn differences_are_named() {
    let e = vector(&[("a", 1.5, "1"), ("b", 1.5, "2")]);
    let missing = vector(&[("a", 1.5, "1")]);
    assert!(compare_answers(&e, &missing)
        .unwrap_err()
        .contains("missing series"));
    let value = vector(&[("a", 1.5, "1.001"), ("b", 1.5, "2")]);
    assert!(compare_answers(&e, &value)
        .unwrap_err()
        .contains("expected 1"));
    let ts = vector(&[("a", 2.5, "1"), ("b", 1.5, "2")]);
    assert!(compare_answers(&e, &ts)
        .unwrap_err()
        .contains("timestamps differ"));
    let err = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
    assert!(compare_answers(&e, &err)
        .unwrap_err()
        .contains("parse error"));
    let scalar =
        json!({"status": "success", "data": {"resultType": "scalar", "result": [1.5, "1"]}});
    assert!(compare_answers(&e, &scalar)
        .unwrap_err()
        .contains("result type"));
}

#[test]
fn tolerance_is_relative_with_an_absolute_floor() {
    assert!(values_equal(1e12, 1e12 + 1e2));
    assert!(!values_equal(1e12, 1e12 + 1e4));
    assert!(values_equal(0.0, 1e-13));
    assert!(!values_equal(f64::INFINITY, f64::NEG_INFINITY));
    assert!(values_equal(f64::NAN, f64::NAN));
    assert!(!values_equal(f64::NAN, 0.0));
}

#[test]
fn openmetrics_has_every_sample_and_ends_with_eof() {
    let w = Workload {
        hosts: 1,
        max_series_per_host: Some(5),
        ..Workload::default()
    };
    let mut out = Vec::new();
    let n = write_openmetrics(&w, 1_700_000_000_000, 1_700_000_060_000, &mut out).unwrap();
    assert_eq!(n, 5 * 4);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 21);
    assert_eq!(text.lines().last(), Some("# EOF"));
    assert!(text.starts_with("node_cpu_seconds_total{cpu=\"0\",instance=\"host-00000:9100\",job=\"node\",mode=\"idle\"} "));
}
