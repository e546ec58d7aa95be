//! The push receivers through the real router: what they append to the stream, and what they
//! refuse without appending anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bongsu_ingest::prompb;
use bongsu_model::{Labels, LogEntry, LogsRecord, MetricsRecord, Sample};
use bongsu_server::{router, Config, BUILTIN_TOPICS};
use bongsu_stream::{FetchOptions, MemoryStream, Stream, StreamOptions, TopicConfig};
use prost::Message as _;
use tower::ServiceExt as _;

use super::{fixture_with, Answer, Fixture};

/// A fixture whose state appends to an in-memory stream with the built-in topics (one
/// partition each, so offsets are easy to follow).
async fn ingest_fixture(config: Config) -> (Fixture, Router, Arc<MemoryStream>) {
    let f = fixture_with(config);
    let stream = MemoryStream::new(StreamOptions::default());
    for topic in BUILTIN_TOPICS {
        stream
            .create_topic(
                topic,
                TopicConfig {
                    partitions: 1,
                    max_message_bytes: 64 * 1024,
                    ..TopicConfig::default()
                },
            )
            .await
            .unwrap();
    }
    assert!(f.state.attach_stream(stream.clone()));
    let app = router(f.state.clone());
    (f, app, stream)
}

async fn end_offset(stream: &MemoryStream, topic: &str) -> u64 {
    stream.describe_topic(topic).await.unwrap().partitions[0].high_watermark
}

/// The values of every record of the topic's partition 0.
async fn values(stream: &MemoryStream, topic: &str) -> Vec<Bytes> {
    let opts = FetchOptions {
        fetch_max_wait_ms: 0,
        ..FetchOptions::default()
    };
    let fetched = stream.fetch(topic, 0, 0, opts).await.unwrap();
    fetched.records.into_iter().map(|r| r.value).collect()
}

fn remote_write_body(series: usize) -> Vec<u8> {
    let req = prompb::WriteRequest {
        timeseries: (0..series)
            .map(|i| prompb::TimeSeries {
                labels: vec![
                    prompb::Label {
                        name: "__name__".into(),
                        value: "node_cpu_seconds_total".into(),
                    },
                    prompb::Label {
                        name: "cpu".into(),
                        value: i.to_string(),
                    },
                ],
                samples: vec![
                    prompb::Sample {
                        value: 1.5,
                        timestamp: 1_700_000_000_000,
                    },
                    prompb::Sample {
                        value: 2.5,
                        timestamp: 1_700_000_015_000,
                    },
                ],
                exemplars: vec![],
                histograms: vec![],
            })
            .collect(),
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

async fn post(
    app: &Router,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Answer {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

const RW_HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/x-protobuf"),
    ("content-encoding", "snappy"),
    ("x-prometheus-remote-write-version", "0.1.0"),
];

#[tokio::test]
async fn remote_write_appends_one_metrics_record_then_answers_204() {
    let (f, app, stream) = ingest_fixture(Config::default()).await;
    let a = post(
        &app,
        "/api/v1/write",
        &f.write,
        RW_HEADERS,
        remote_write_body(3),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let got = values(&stream, "metrics").await;
    assert_eq!(got.len(), 1);
    let record = MetricsRecord::decode(&got[0]).unwrap();
    let expected: Vec<bongsu_model::Series> = (0..3)
        .map(|i| bongsu_model::Series {
            labels: Labels::from_pairs([
                ("__name__", "node_cpu_seconds_total".to_owned()),
                ("cpu", i.to_string()),
            ])
            .unwrap(),
            samples: vec![
                Sample {
                    timestamp_ms: 1_700_000_000_000,
                    value: 1.5,
                },
                Sample {
                    timestamp_ms: 1_700_000_015_000,
                    value: 2.5,
                },
            ],
        })
        .collect();
    assert_eq!(record.series, expected);
    assert_eq!(end_offset(&stream, "logs").await, 0, "nothing goes to logs");

    let m = super::call(&app, "GET", "/metrics", Some(&f.read), None).await;
    assert!(
        m.body.contains(
            "bongsu_ingest_requests_total{receiver=\"remote_write\",outcome=\"accepted\"} 1"
        ),
        "{}",
        m.body
    );
    assert!(
        m.body.contains(
            "bongsu_ingest_items_total{receiver=\"remote_write\",unit=\"samples\",outcome=\"accepted\"} 6"
        ),
        "{}",
        m.body
    );
}

#[tokio::test]
async fn remote_write_refusals_append_nothing() {
    let mut config = Config::default();
    config.ingest.max_body_bytes = 4096;
    let (f, app, stream) = ingest_fixture(config).await;

    // malformed: not snappy
    let a = post(
        &app,
        "/api/v1/write",
        &f.write,
        RW_HEADERS,
        "not snappy at all",
    )
    .await;
    a.assert_error(StatusCode::BAD_REQUEST, "bad_data");
    // body over ingest.max_body_bytes
    let a = post(&app, "/api/v1/write", &f.write, RW_HEADERS, vec![0u8; 5000]).await;
    a.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("ingest.max_body_bytes"));
    // a record over the topic's max.message.bytes (64 KiB here): refused whole
    let big = remote_write_body(2000);
    assert!(big.len() < 4096 * 4, "the test body compresses well");
    let mut config = Config::default();
    config.ingest.max_body_bytes = 1 << 20;
    let (f2, app2, stream2) = ingest_fixture(config).await;
    let a = post(&app2, "/api/v1/write", &f2.write, RW_HEADERS, big).await;
    a.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert!(a.json()["error"]
        .as_str()
        .unwrap()
        .contains("max.message.bytes"));
    assert_eq!(end_offset(&stream2, "metrics").await, 0);
    // remote write 2.0
    let a = post(
        &app,
        "/api/v1/write",
        &f.write,
        &[
            (
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            ),
            ("content-encoding", "snappy"),
        ],
        remote_write_body(1),
    )
    .await;
    a.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert!(a.json()["error"].as_str().unwrap().contains("2.0"));
    // a read-scope token may not write; no token at all is 401
    let a = post(
        &app,
        "/api/v1/write",
        &f.read,
        RW_HEADERS,
        remote_write_body(1),
    )
    .await;
    a.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let a = post(&app, "/loki/api/v1/push", &f.read, &[], "{}").await;
    a.assert_error(StatusCode::FORBIDDEN, "forbidden");

    assert_eq!(end_offset(&stream, "metrics").await, 0);
    assert_eq!(end_offset(&stream, "logs").await, 0);
    let m = super::call(&app, "GET", "/metrics", Some(&f.read), None).await;
    assert!(
        m.body.contains(
            "bongsu_ingest_requests_total{receiver=\"remote_write\",outcome=\"rejected\"} 3"
        ),
        "{}",
        m.body
    );
}

#[tokio::test]
async fn loki_json_push_appends_one_logs_record_then_answers_204() {
    let (f, app, stream) = ingest_fixture(Config::default()).await;
    let body = r#"{"streams":[{"stream":{"job":"api","level":"info"},"values":[["1700000000000000001","first line"],["1700000000000000002","second line"]]}]}"#;
    let a = post(
        &app,
        "/loki/api/v1/push",
        &f.write,
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let got = values(&stream, "logs").await;
    assert_eq!(got.len(), 1);
    let record = LogsRecord::decode(&got[0]).unwrap();
    assert_eq!(record.streams.len(), 1);
    let s = &record.streams[0];
    assert_eq!(
        s.labels,
        Labels::from_pairs([("job", "api"), ("level", "info")]).unwrap()
    );
    assert_eq!(
        s.entries,
        vec![
            LogEntry::new(1_700_000_000_000_000_001, "first line"),
            LogEntry::new(1_700_000_000_000_000_002, "second line"),
        ]
    );
    assert_eq!(end_offset(&stream, "metrics").await, 0);

    // malformed JSON and an unknown media type append nothing
    let a = post(
        &app,
        "/loki/api/v1/push",
        &f.write,
        &[("content-type", "application/json")],
        "{\"streams\":[",
    )
    .await;
    a.assert_error(StatusCode::BAD_REQUEST, "bad_data");
    let a = post(
        &app,
        "/loki/api/v1/push",
        &f.write,
        &[("content-type", "text/plain")],
        "hello",
    )
    .await;
    a.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    assert_eq!(end_offset(&stream, "logs").await, 1);
}

#[tokio::test]
async fn a_saturated_receiver_answers_429_with_retry_after() {
    let mut config = Config::default();
    config.ingest.max_inflight_requests = 1;
    let (f, app, stream) = ingest_fixture(config).await;

    // A request whose body never arrives holds the receiver's only slot. It may itself be
    // refused when it races one of the probes below: then it is sent again.
    let hold = || {
        let stuck = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
        let req = Request::builder()
            .method("POST")
            .uri("/api/v1/write")
            .header(header::AUTHORIZATION, format!("Bearer {}", f.write))
            .body(stuck)
            .unwrap();
        tokio::spawn(app.clone().oneshot(req))
    };
    let mut held = hold();
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let a = post(&app, "/api/v1/write", &f.write, RW_HEADERS, "garbage").await;
        if held.is_finished() {
            let resp = (&mut held).await.unwrap().unwrap();
            assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
            held = hold();
        } else if a.status == StatusCode::TOO_MANY_REQUESTS {
            break a;
        } else {
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
        }
        assert!(Instant::now() < deadline, "the slot was never taken");
        tokio::task::yield_now().await;
    };
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert_eq!(refused.headers[header::RETRY_AFTER], "1");

    // The Loki receiver has its own budget.
    let a = post(
        &app,
        "/loki/api/v1/push",
        &f.write,
        &[("content-type", "application/json")],
        r#"{"streams":[]}"#,
    )
    .await;
    assert_ne!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);

    // Once the stuck request goes away, its slot is free again.
    held.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = post(
            &app,
            "/api/v1/write",
            &f.write,
            RW_HEADERS,
            remote_write_body(1),
        )
        .await;
        if a.status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::task::yield_now().await;
    }
    assert_eq!(end_offset(&stream, "metrics").await, 1);
}

#[tokio::test]
async fn without_a_stream_receivers_answer_503() {
    let f = fixture_with(Config::default());
    let app = router(f.state.clone());
    let a = post(
        &app,
        "/api/v1/write",
        &f.write,
        RW_HEADERS,
        remote_write_body(1),
    )
    .await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}

#[tokio::test]
async fn loki_protobuf_push_appends_the_same_record_as_json() {
    use bongsu_ingest::logproto;
    let (f, app, stream) = ingest_fixture(Config::default()).await;
    let req = logproto::PushRequest {
        streams: vec![logproto::StreamAdapter {
            labels: r#"{job="api", level="info"}"#.into(),
            entries: vec![logproto::EntryAdapter {
                timestamp: Some(logproto::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 7,
                }),
                line: "from protobuf".into(),
                structured_metadata: vec![],
            }],
            hash: 0,
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let a = post(
        &app,
        "/loki/api/v1/push",
        &f.write,
        &[("content-type", "application/x-protobuf")],
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let got = values(&stream, "logs").await;
    assert_eq!(got.len(), 1);
    let record = LogsRecord::decode(&got[0]).unwrap();
    assert_eq!(
        record.streams[0].labels,
        Labels::from_pairs([("job", "api"), ("level", "info")]).unwrap()
    );
    assert_eq!(
        record.streams[0].entries,
        vec![LogEntry::new(1_700_000_000_000_000_007, "from protobuf")]
    );
}
