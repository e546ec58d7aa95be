//! Prometheus text format 0.0.4 and OpenMetrics output details.

use bongsu_ingest::{parse_exposition, Error, ExpositionFormat, Limits};
use bongsu_model::{MetricKind, Sample};

const NOW: i64 = 1_700_000_000_000;

#[test]
fn prometheus_text_format() {
    let text = "# HELP http_requests_total The total number of HTTP requests.\n\
# TYPE http_requests_total counter\n\
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
http_requests_total{method=\"post\",code=\"400\",}    3 1395066363000\n\
\n\
# A plain comment\n\
msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
metric_without_timestamp_and_labels 12.47\n\
# TYPE rpc_duration_seconds summary\n\
rpc_duration_seconds{quantile=\"0.5\"} 4773\n\
rpc_duration_seconds_sum 1.7560473e+07\n\
something_weird{problem=\"division by zero\"} +Inf -3982045\n";
    let e = parse_exposition(
        text.as_bytes(),
        ExpositionFormat::PrometheusText,
        NOW,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(e.samples.len(), 7);
    assert_eq!(
        e.samples[0].0.to_string(),
        r#"http_requests_total{code="200", method="post"}"#
    );
    assert_eq!(e.samples[0].1, Sample::new(1_395_066_363_000, 1027.0));
    assert_eq!(e.samples[1].1.value, 3.0);
    assert_eq!(e.samples[2].0.get("path"), Some(r"C:\DIR\FILE.TXT"));
    assert_eq!(
        e.samples[2].0.get("error"),
        Some("Cannot find file:\n\"FILE.TXT\"")
    );
    assert_eq!(e.samples[3].1, Sample::new(NOW, 12.47));
    assert_eq!(e.samples[6].1, Sample::new(-3_982_045, f64::INFINITY));
    assert_eq!(e.metadata.len(), 2);
    assert_eq!(e.metadata[0].kind, MetricKind::Counter);
    assert_eq!(e.metadata[0].help, "The total number of HTTP requests.");
    assert_eq!(e.metadata[1].kind, MetricKind::Summary);
    let rec = e.into_record();
    assert_eq!(rec.series.len(), 7);
}

#[test]
fn prometheus_text_errors_carry_the_line() {
    let limits = Limits::default();
    for (text, line) in [
        ("a 1\nb{x=\"1\" 2\n", 2),
        ("a 1\n# TYPE a counter\n# TYPE a gauge\n", 3),
        ("a{x=\"1\",x=\"2\"} 1\n", 1),
        ("a nope\n", 1),
        ("a 1 1.5\n", 1),
        ("a-b 1\n", 1),
    ] {
        let e = parse_exposition(
            text.as_bytes(),
            ExpositionFormat::PrometheusText,
            NOW,
            &limits,
        )
        .unwrap_err();
        match e {
            Error::Exposition { line: l, .. } => assert_eq!(l, line, "{text:?}"),
            other => panic!("{text:?}: unexpected {other}"),
        }
    }
}

#[test]
fn openmetrics_output_and_metadata() {
    let text = "# TYPE a counter\n# HELP a help\n# UNIT a \na_total{x=\"1\"} 1 1.5 # {trace=\"t\"} 1\na_created 3\n# TYPE b_seconds gauge\n# UNIT b_seconds seconds\nb_seconds 2\n# EOF\n";
    let e = parse_exposition(
        text.as_bytes(),
        ExpositionFormat::OpenMetrics,
        NOW,
        &Limits::default(),
    )
    .unwrap();
    let names: Vec<String> = e.samples.iter().map(|(l, _)| l.to_string()).collect();
    assert_eq!(names, [r#"a_total{x="1"}"#, "a_created", "b_seconds"]);
    assert_eq!(e.samples[0].1.timestamp_ms, 1500);
    assert_eq!(e.samples[1].1.timestamp_ms, NOW);
    assert_eq!(e.metadata[0].family, "a");
    assert_eq!(e.metadata[0].kind, MetricKind::Counter);
    assert_eq!(e.metadata[1].unit, "seconds");
}

#[test]
fn bounded_input() {
    let limits = Limits {
        max_exposition_line_bytes: 16,
        max_samples_per_request: 2,
        max_labels_per_series: 2,
        ..Limits::default()
    };
    let long = format!("a{{x=\"{}\"}} 1\n", "v".repeat(20));
    let e = parse_exposition(
        long.as_bytes(),
        ExpositionFormat::PrometheusText,
        NOW,
        &limits,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("ingest.max_exposition_line_bytes"),
        "{e}"
    );
    let e = parse_exposition(
        b"a 1\nb 2\nc 3\n",
        ExpositionFormat::PrometheusText,
        NOW,
        &limits,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("ingest.max_samples_per_request"),
        "{e}"
    );
    let e = parse_exposition(
        b"a{x=\"1\",y=\"2\"} 1\n",
        ExpositionFormat::PrometheusText,
        NOW,
        &limits,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("ingest.max_labels_per_series"),
        "{e}"
    );
    assert!(parse_exposition(
        b"a \xff 1\n",
        ExpositionFormat::PrometheusText,
        NOW,
        &limits
    )
    .is_err());
}

#[test]
fn content_type_picks_the_format() {
    assert_eq!(
        ExpositionFormat::from_content_type(Some(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )),
        ExpositionFormat::OpenMetrics
    );
    assert_eq!(
        ExpositionFormat::from_content_type(Some("text/plain; version=0.0.4")),
        ExpositionFormat::PrometheusText
    );
    assert_eq!(
        ExpositionFormat::from_content_type(None),
        ExpositionFormat::PrometheusText
    );
}

mod never_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_text(s in "[a-z_{}=\",# 0-9.+\\-\\\\\n]{0,120}") {
            for f in [ExpositionFormat::OpenMetrics, ExpositionFormat::PrometheusText] {
                let _ = parse_exposition(s.as_bytes(), f, NOW, &Limits::default());
            }
        }

        #[test]
        fn arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            for f in [ExpositionFormat::OpenMetrics, ExpositionFormat::PrometheusText] {
                let _ = parse_exposition(&b, f, NOW, &Limits::default());
            }
        }
    }
}

#[test]
fn real_node_exporter_scrape() {
    // node_exporter 1.5's answer to a scrape, as checked in (nodename replaced).
    let text = include_bytes!("../data/node_exporter.prom.txt");
    let e = parse_exposition(
        text,
        ExpositionFormat::PrometheusText,
        NOW,
        &Limits::default(),
    )
    .unwrap();
    let sample_lines = std::str::from_utf8(text)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(e.samples.len(), sample_lines);
    assert!(e.samples.len() > 400);
    assert!(e
        .samples
        .iter()
        .all(|(l, s)| l.metric_name().is_some() && s.timestamp_ms == NOW));
    let gc = e
        .metadata
        .iter()
        .find(|m| m.family == "go_gc_duration_seconds")
        .expect("go_gc_duration_seconds metadata");
    assert_eq!(gc.kind, MetricKind::Summary);
    assert!(e
        .metadata
        .iter()
        .any(|m| m.family == "node_cpu_seconds_total" && m.kind == MetricKind::Counter));
    let uname = e
        .samples
        .iter()
        .find(|(l, _)| l.metric_name() == Some("node_uname_info"))
        .expect("node_uname_info");
    assert_eq!(uname.0.get("nodename"), Some("host1"));
    assert_eq!(uname.0.get("version"), Some("#1 SMP PREEMPT_DYNAMIC @0"));
}
