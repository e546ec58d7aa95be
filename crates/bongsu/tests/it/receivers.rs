//! The push receivers end to end: a hand-built remote_write body (protobuf in snappy, both
//! written here byte by byte) and a Loki JSON push, sent to the real binary over TCP; after
//! the server stopped, the stream CLI finds one record in each topic.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Running;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited protobuf field (wire type 2).
fn field_bytes(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// `prometheus.WriteRequest` with one series `up{job="e2e"}` and two samples.
fn write_request() -> Vec<u8> {
    let label = |name: &str, value: &str| {
        let mut l = Vec::new();
        field_bytes(1, name.as_bytes(), &mut l);
        field_bytes(2, value.as_bytes(), &mut l);
        l
    };
    let sample = |value: f64, ts: i64| {
        let mut s = Vec::new();
        s.push(1 << 3 | 1); // value: double (fixed64)
        s.extend_from_slice(&value.to_le_bytes());
        s.push(2 << 3); // timestamp: int64 varint
        varint(ts as u64, &mut s);
        s
    };
    let mut series = Vec::new();
    field_bytes(1, &label("__name__", "up"), &mut series);
    field_bytes(1, &label("job", "e2e"), &mut series);
    field_bytes(2, &sample(1.0, 1_700_000_000_000), &mut series);
    field_bytes(2, &sample(0.0, 1_700_000_015_000), &mut series);
    let mut req = Vec::new();
    field_bytes(1, &series, &mut req);
    req
}

/// Snappy block format with literals only: the uncompressed length, then literal chunks of
/// at most 60 bytes (one tag byte each).
fn snappy_literal(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(raw.len() as u64, &mut out);
    for chunk in raw.chunks(60) {
        out.push(((chunk.len() - 1) as u8) << 2);
        out.extend_from_slice(chunk);
    }
    out
}

/// One POST with `Connection: close`; returns the status and body.
fn post(
    addr: SocketAddr,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {text}"));
    (status, text)
}

/// Records in a topic: the sum of the END column of `bongsu stream topics describe` (nothing
/// was deleted, so every partition starts at 0).
fn record_count(data: &std::path::Path, topic: &str) -> u64 {
    let desc = super::stream_cli::ok(data, &["topics", "describe", topic], "");
    let mut lines = desc
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("PARTITION"));
    assert!(lines.next().is_some(), "{desc}");
    lines
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(cols[1], "0", "{desc}");
            cols[2].parse::<u64>().unwrap_or_else(|_| panic!("{desc}"))
        })
        .sum()
}

#[test]
fn remote_write_and_loki_push_each_append_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Running::start(&data);
    let token = server
        .admin_token
        .clone()
        .expect("first start prints an admin token");
    server.wait_ready();

    let body = snappy_literal(&write_request());
    let (status, text) = post(
        server.addr,
        "/api/v1/write",
        &token,
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &body,
    );
    assert_eq!(status, 204, "{text}");

    let push = br#"{"streams":[{"stream":{"job":"e2e"},"values":[["1700000000000000000","hello from e2e"]]}]}"#;
    let (status, text) = post(
        server.addr,
        "/loki/api/v1/push",
        &token,
        &[("Content-Type", "application/json")],
        push,
    );
    assert_eq!(status, 204, "{text}");

    // A malformed body is refused and appends nothing.
    let (status, text) = post(
        server.addr,
        "/api/v1/write",
        &token,
        &[("Content-Type", "application/x-protobuf")],
        b"\xff\xff\xff\xff\xff",
    );
    assert_eq!(status, 400, "{text}");

    let (_, metrics) = server.get("/metrics", Some(&token));
    assert!(
        metrics.contains("bongsu_ingest_requests_total{receiver=\"loki\",outcome=\"accepted\"} 1"),
        "{metrics}"
    );

    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");

    assert_eq!(record_count(&data, "metrics"), 1);
    assert_eq!(record_count(&data, "logs"), 1);
    // The records are binary: `consume` reads them back; only their count is asserted.
    for topic in ["metrics", "logs"] {
        let out = super::bongsu()
            .arg("stream")
            .arg("--data-dir")
            .arg(&data)
            .args(["consume", "-t", topic, "-e"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{topic}: nothing consumed");
    }
}
