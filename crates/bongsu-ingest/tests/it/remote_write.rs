//! remote_write 1.0 decoding with bodies built by prost, as a sender would.

use bongsu_ingest::prompb::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
use bongsu_ingest::{
    classify_remote_write, decode_remote_write, Error, ErrorKind, Limits, RemoteWriteVersion,
};
use bongsu_model::{MetricKind, Sample as ModelSample};
use prost::Message;

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

fn series(labels: Vec<Label>, samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels,
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        exemplars: vec![],
        histograms: vec![],
    }
}

fn body(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

#[test]
fn decodes_series_samples_and_metadata() {
    let mut ts = series(
        vec![
            label("job", "node"),
            label("__name__", "up"),
            label("instance", "a:9100"),
        ],
        &[(1000, 1.0), (2000, 0.0)],
    );
    ts.exemplars.push(
        Exemplar {
            labels: vec![label("trace_id", "abc")],
            value: 1.0,
            timestamp: 1000,
        }
        .encode_to_vec(),
    );
    let req = WriteRequest {
        timeseries: vec![ts, series(vec![label("__name__", "x")], &[(5, f64::NAN)])],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let got = decode_remote_write(&body(&req), &Limits::default()).unwrap();
    assert_eq!(got.exemplars_dropped, 1);
    assert_eq!(got.histograms_dropped, 0);
    let rec = got.record;
    assert_eq!(rec.series.len(), 2);
    // Labels were sorted.
    assert_eq!(
        rec.series[0].labels.to_string(),
        r#"up{instance="a:9100", job="node"}"#
    );
    assert_eq!(
        rec.series[0].samples,
        vec![ModelSample::new(1000, 1.0), ModelSample::new(2000, 0.0)]
    );
    assert!(rec.series[1].samples[0].value.is_nan());
    assert_eq!(rec.metadata[0].kind, MetricKind::Counter);
    assert_eq!(rec.metadata[0].family, "http_requests");
    // The record survives its own encoding.
    let bytes = rec.encode();
    assert_eq!(bongsu_model::MetricsRecord::decode(&bytes).unwrap(), rec);
}

#[test]
fn refuses_duplicate_and_invalid_labels() {
    let dup = WriteRequest {
        timeseries: vec![series(
            vec![label("__name__", "up"), label("a", "1"), label("a", "2")],
            &[(1, 1.0)],
        )],
        metadata: vec![],
    };
    let e = decode_remote_write(&body(&dup), &Limits::default()).unwrap_err();
    assert!(
        matches!(e, Error::DuplicateLabel { ref name, .. } if name == "a"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::BadRequest);

    let bad = WriteRequest {
        timeseries: vec![series(
            vec![label("__name__", "up"), label("bad-name", "1")],
            &[(1, 1.0)],
        )],
        metadata: vec![],
    };
    let e = decode_remote_write(&body(&bad), &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidLabelName { .. }), "{e}");

    let nameless = WriteRequest {
        timeseries: vec![series(vec![label("job", "x")], &[(1, 1.0)])],
        metadata: vec![],
    };
    let e = decode_remote_write(&body(&nameless), &Limits::default()).unwrap_err();
    assert!(matches!(e, Error::MissingMetricName { .. }), "{e}");
}

#[test]
fn enforces_limits_with_the_key_to_raise() {
    let req = WriteRequest {
        timeseries: vec![series(
            vec![label("__name__", "up"), label("v", &"x".repeat(100))],
            &[(1, 1.0), (2, 2.0), (3, 3.0)],
        )],
        metadata: vec![],
    };
    let b = body(&req);
    let small_body = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let e = decode_remote_write(&b, &small_body).unwrap_err();
    assert_eq!(e.kind().http_status(), 413);
    assert!(e.to_string().contains("ingest.max_body_bytes"), "{e}");

    let small_raw = Limits {
        max_decompressed_bytes: 20,
        ..Limits::default()
    };
    let e = decode_remote_write(&b, &small_raw).unwrap_err();
    assert!(matches!(e, Error::DecompressedTooLarge { .. }), "{e}");

    let few_samples = Limits {
        max_samples_per_request: 2,
        ..Limits::default()
    };
    let e = decode_remote_write(&b, &few_samples).unwrap_err();
    assert!(
        e.to_string().contains("ingest.max_samples_per_request"),
        "{e}"
    );
    assert_eq!(e.kind().http_status(), 413);

    let short_values = Limits {
        max_label_value_bytes: 50,
        ..Limits::default()
    };
    let e = decode_remote_write(&b, &short_values).unwrap_err();
    assert!(
        e.to_string().contains("ingest.max_label_value_bytes"),
        "{e}"
    );
    assert_eq!(e.kind().http_status(), 400);

    let few_labels = Limits {
        max_labels_per_series: 1,
        ..Limits::default()
    };
    let e = decode_remote_write(&b, &few_labels).unwrap_err();
    assert!(
        e.to_string().contains("ingest.max_labels_per_series"),
        "{e}"
    );
}

#[test]
fn malformed_bodies_are_bad_requests() {
    let limits = Limits::default();
    // Not snappy at all.
    let e = decode_remote_write(b"\xff\xff\xff\xff\xff\xff", &limits).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    // Snappy around garbage protobuf.
    let junk = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff\xff\x0f")
        .unwrap();
    let e = decode_remote_write(&junk, &limits).unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e}");
    // Invalid UTF-8 in a label value.
    let mut raw = WriteRequest {
        timeseries: vec![series(vec![label("__name__", "ab")], &[(1, 1.0)])],
        metadata: vec![],
    }
    .encode_to_vec();
    let pos = raw.windows(2).position(|w| w == b"ab").unwrap();
    raw[pos] = 0xff;
    let e = decode_remote_write(
        &snap::raw::Encoder::new().compress_vec(&raw).unwrap(),
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    // Truncated snappy.
    let good = body(&WriteRequest {
        timeseries: vec![series(vec![label("__name__", "up")], &[(1, 1.0)])],
        metadata: vec![],
    });
    for cut in 0..good.len() {
        assert!(decode_remote_write(&good[..cut], &limits).is_err());
    }
}

#[test]
fn classifies_headers_as_the_specs_require() {
    use RemoteWriteVersion::V1;
    let ok = |ct, ce, v| classify_remote_write(ct, ce, v);
    assert_eq!(
        ok(
            Some("application/x-protobuf"),
            Some("snappy"),
            Some("0.1.0")
        ),
        Ok(V1)
    );
    assert_eq!(ok(None, None, None), Ok(V1));
    assert_eq!(
        ok(
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            Some("snappy"),
            Some("2.0.0")
        ),
        Ok(V1)
    );
    let e = ok(
        Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        Some("snappy"),
        Some("2.0.0"),
    )
    .unwrap_err();
    assert_eq!(e.kind().http_status(), 415);
    assert!(e.to_string().contains("remote write 2.0"), "{e}");
    assert_eq!(
        ok(Some("application/json"), None, None)
            .unwrap_err()
            .kind()
            .http_status(),
        415
    );
    assert_eq!(
        ok(Some("application/x-protobuf"), Some("gzip"), None)
            .unwrap_err()
            .kind()
            .http_status(),
        415
    );
    assert_eq!(
        ok(Some("application/x-protobuf;proto=foo.Bar"), None, None)
            .unwrap_err()
            .kind()
            .http_status(),
        415
    );
    assert_eq!(
        ok(Some("garbage"), None, None)
            .unwrap_err()
            .kind()
            .http_status(),
        400
    );
    assert_eq!(
        ok(Some("application/x-protobuf;junk"), None, None)
            .unwrap_err()
            .kind()
            .http_status(),
        400
    );
    assert_eq!(
        ok(Some("application/x-protobuf"), None, Some("banana"))
            .unwrap_err()
            .kind()
            .http_status(),
        400
    );
}

#[test]
fn real_prometheus_2_42_requests() {
    // Bodies a Prometheus 2.42 agent sent while scraping node_exporter, as received, with
    // these headers: Content-Type application/x-protobuf, Content-Encoding snappy,
    // X-Prometheus-Remote-Write-Version 0.1.0.
    assert_eq!(
        classify_remote_write(
            Some("application/x-protobuf"),
            Some("snappy"),
            Some("0.1.0")
        ),
        Ok(RemoteWriteVersion::V1)
    );
    let limits = Limits::default();
    let first = decode_remote_write(
        include_bytes!("../data/prometheus_2.42_remote_write_samples.bin"),
        &limits,
    )
    .unwrap();
    let second = decode_remote_write(
        include_bytes!("../data/prometheus_2.42_remote_write_2.bin"),
        &limits,
    )
    .unwrap();
    let all: Vec<_> = first
        .record
        .series
        .iter()
        .chain(second.record.series.iter())
        .collect();
    assert_eq!(first.record.series.len(), 500);
    assert_eq!(second.record.series.len(), 10);
    assert!(all.iter().all(|s| s.samples.len() == 1));
    let up = all
        .iter()
        .find(|s| s.labels.metric_name() == Some("up"))
        .expect("an up series");
    assert_eq!(up.labels.get("job"), Some("node"));
    assert_eq!(up.labels.get("instance"), Some("127.0.0.1:19100"));
    assert_eq!(up.samples[0].value, 1.0);
    assert!(up.samples[0].timestamp_ms > 1_700_000_000_000);
    // Everything survives the metrics record encoding.
    let bytes = first.record.encode();
    assert_eq!(
        bongsu_model::MetricsRecord::decode(&bytes).unwrap(),
        first.record
    );
}
