//! Loki push decoding with hand-built protobuf and JSON bodies.

use std::io::Write;

use bongsu_ingest::logproto::{
    EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp,
};
use bongsu_ingest::{decode_loki_push, parse_stream_selector, Error, Limits};
use bongsu_model::Label;
use prost::Message;

fn proto_body(req: &PushRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

fn one_stream(labels: &str, line: &str) -> PushRequest {
    PushRequest {
        streams: vec![StreamAdapter {
            labels: labels.into(),
            entries: vec![EntryAdapter {
                timestamp: Some(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5,
                }),
                line: line.into(),
                structured_metadata: vec![LabelPairAdapter {
                    name: "trace_id".into(),
                    value: "abc".into(),
                }],
            }],
            hash: 0,
        }],
    }
}

#[test]
fn protobuf_snappy_push() {
    let req = one_stream(r#"{env="prod", app="api"}"#, "GET /health 200");
    let rec = decode_loki_push(
        &proto_body(&req),
        Some("application/x-protobuf"),
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(rec.streams.len(), 1);
    let s = &rec.streams[0];
    assert_eq!(s.labels.to_string(), r#"{app="api", env="prod"}"#);
    assert_eq!(s.entries[0].timestamp_ns, 1_700_000_000_000_000_005);
    assert_eq!(s.entries[0].line, "GET /health 200");
    assert_eq!(
        s.entries[0].structured_metadata,
        vec![Label::new("trace_id", "abc")]
    );
}

#[test]
fn json_push_plain_and_gzip() {
    let json = br#"{"streams":[{"stream":{"app":"x","env":"y"},"values":[["1700000000000000001","one"],["1700000000000000002","two",{"user":"u1"}]]}]}"#;
    let rec = decode_loki_push(json, Some("application/json"), None, &Limits::default()).unwrap();
    let s = &rec.streams[0];
    assert_eq!(s.labels.to_string(), r#"{app="x", env="y"}"#);
    assert_eq!(s.entries.len(), 2);
    assert_eq!(s.entries[1].timestamp_ns, 1_700_000_000_000_000_002);
    assert_eq!(
        s.entries[1].structured_metadata,
        vec![Label::new("user", "u1")]
    );

    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(json).unwrap();
    let gz = enc.finish().unwrap();
    let rec2 = decode_loki_push(
        &gz,
        Some("application/json; charset=utf-8"),
        Some("gzip"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(rec2, rec);
}

#[test]
fn malformed_json_is_refused_whole() {
    let limits = Limits::default();
    for bad in [
        &br#"{"streams":[{"stream":{"app":"x"},"values":[["notanumber","l"]]}]}"#[..],
        br#"{"streams":[{"stream":{"app":"x"},"values":[["1"]]}]}"#,
        br#"{"streams":[{"stream":{"app":"x"},"values":[["1","l",{},"extra"]]}]}"#,
        br#"{"streams":[{"stream":{},"values":[["1","l"]]}]}"#,
        br#"{"streams":[{"stream":{"bad-name":"x"},"values":[["1","l"]]}]}"#,
        br#"{"streams":"#,
    ] {
        let e = decode_loki_push(bad, Some("application/json"), None, &limits).unwrap_err();
        assert_eq!(e.kind().http_status(), 400, "{e}");
    }
}

#[test]
fn stream_selectors_are_parsed_strictly() {
    let l = Limits::default();
    let ok = parse_stream_selector(r#"{ a = "x\"y\\z\n\u00e9" ,b="\x41"}"#, &l, 0).unwrap();
    assert_eq!(ok.get("a"), Some("x\"y\\z\né"));
    assert_eq!(ok.get("b"), Some("A"));
    for bad in [
        "",
        "app=\"x\"",
        "{app=\"x\"",
        "{app=~\"x\"}",
        "{app!=\"x\"}",
        "{app='x'}",
        "{app=\"x\",,b=\"y\"}",
        "{app=\"x\"} extra",
        "{app=\"x\", app=\"y\"}",
        "{app=\"\\q\"}",
        "{}",
        "{1a=\"x\"}",
    ] {
        assert!(
            parse_stream_selector(bad, &l, 0).is_err(),
            "{bad:?} should fail"
        );
    }
}

#[test]
fn limits_name_what_to_raise() {
    let req = one_stream(r#"{app="x"}"#, &"l".repeat(100));
    let body = proto_body(&req);
    let short = Limits {
        max_line_bytes: 50,
        ..Limits::default()
    };
    let e = decode_loki_push(&body, None, None, &short).unwrap_err();
    assert!(e.to_string().contains("ingest.max_line_bytes"), "{e}");
    assert_eq!(e.kind().http_status(), 400);

    let mut many = one_stream(r#"{app="x"}"#, "l");
    many.streams.push(many.streams[0].clone());
    let few = Limits {
        max_streams_per_request: 1,
        ..Limits::default()
    };
    let e = decode_loki_push(&proto_body(&many), None, None, &few).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TooManyItems {
                what: "streams",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind().http_status(), 413);

    let few_entries = Limits {
        max_entries_per_request: 1,
        ..Limits::default()
    };
    let e = decode_loki_push(&proto_body(&many), None, None, &few_entries).unwrap_err();
    assert!(
        e.to_string().contains("ingest.max_entries_per_request"),
        "{e}"
    );

    let tiny = Limits {
        max_body_bytes: 5,
        ..Limits::default()
    };
    assert_eq!(
        decode_loki_push(&body, None, None, &tiny)
            .unwrap_err()
            .kind()
            .http_status(),
        413
    );

    let e = decode_loki_push(&body, Some("text/plain"), None, &Limits::default()).unwrap_err();
    assert_eq!(e.kind().http_status(), 415);
    let e = decode_loki_push(&body, None, Some("br"), &Limits::default()).unwrap_err();
    assert_eq!(e.kind().http_status(), 415);
}

#[test]
fn truncated_protobuf_bodies_never_half_accept() {
    let req = one_stream(r#"{app="x"}"#, "hello");
    let raw = req.encode_to_vec();
    for cut in 0..raw.len() {
        let body = snap::raw::Encoder::new().compress_vec(&raw[..cut]).unwrap();
        // Either an error, or (for cuts on a message boundary) a smaller but valid request.
        if let Ok(rec) = decode_loki_push(&body, None, None, &Limits::default()) {
            for s in &rec.streams {
                assert!(!s.labels.is_empty());
            }
        }
    }
}
