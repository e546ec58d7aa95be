//! The log path end to end through the real binary: Loki push (protobuf + snappy, JSON, gzip)
//! → `logs` topic → logs consumer → log store → Loki query API, the live tail, the CLI, a real
//! Loki client from PyPI, and SIGKILL during concurrent pushes.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{bongsu, wait_for, Running, DEADLINE};

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(tag: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Loki's `logproto.PushRequest`: streams of (labels text, entries of (timestamp, line)).
fn push_request(streams: &[(&str, &[(i64, &str)])]) -> Vec<u8> {
    let mut req = Vec::new();
    for (labels, entries) in streams {
        let mut s = Vec::new();
        field_bytes(1, labels.as_bytes(), &mut s);
        for (ts, line) in *entries {
            let mut t = Vec::new();
            t.push(1 << 3);
            varint(ts.div_euclid(1_000_000_000) as u64, &mut t);
            t.push(2 << 3);
            varint(ts.rem_euclid(1_000_000_000) as u64, &mut t);
            let mut e = Vec::new();
            field_bytes(1, &t, &mut e);
            field_bytes(2, line.as_bytes(), &mut e);
            field_bytes(2, &e, &mut s);
        }
        field_bytes(1, &s, &mut req);
    }
    req
}

/// Snappy block format with literals only.
fn snappy_literal(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(raw.len() as u64, &mut out);
    for chunk in raw.chunks(60) {
        out.push(((chunk.len() - 1) as u8) << 2);
        out.extend_from_slice(chunk);
    }
    out
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

/// One request with `Connection: close`; returns status, headers and body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {text}")))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        super::dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, head.to_owned(), body))
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Api<'a> {
    addr: SocketAddr,
    token: &'a str,
}

impl Api<'_> {
    fn push(&self, headers: &[(&str, &str)], body: &[u8]) -> u16 {
        request(
            self.addr,
            "POST",
            "/loki/api/v1/push",
            Some(self.token),
            headers,
            body,
        )
        .unwrap()
        .0
    }

    /// GET `path?k=v&…`; returns status and body.
    fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        let (status, _, body) = request(
            self.addr,
            "GET",
            &format!("{path}?{}", q.join("&")),
            Some(self.token),
            &[],
            b"",
        )
        .unwrap();
        (status, body)
    }

    fn ok(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, body) = self.get(path, params);
        assert_eq!(status, 200, "{path} {params:?}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        v
    }

    /// Lines of a log query over the last hour, oldest first.
    fn lines(&self, query: &str) -> Vec<String> {
        let v = self.ok(
            "/loki/api/v1/query_range",
            &[
                ("query", query),
                ("direction", "forward"),
                ("limit", "5000"),
            ],
        );
        assert_eq!(v["data"]["resultType"], "streams", "{v}");
        let mut out: Vec<(i64, String)> = Vec::new();
        for s in v["data"]["result"].as_array().unwrap() {
            for e in s["values"].as_array().unwrap() {
                out.push((
                    e[0].as_str().unwrap().parse().unwrap(),
                    e[1].as_str().unwrap().to_owned(),
                ));
            }
        }
        out.sort();
        out.into_iter().map(|e| e.1).collect()
    }
}

fn start() -> (tempfile::TempDir, Running, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(&dir.path().join("data"));
    let token = server
        .admin_token
        .clone()
        .expect("first start prints a token");
    server.wait_ready();
    (dir, server, token)
}

#[test]
fn pushed_lines_come_back_through_every_loki_endpoint_and_the_cli() {
    let (_dir, server, token) = start();
    let api = Api {
        addr: server.addr,
        token: &token,
    };
    let t0 = now_ns() - 60_000_000_000;
    // Protobuf + snappy, as Loki clients send by default.
    let pb = push_request(&[
        (
            r#"{app="shop", env="prod"}"#,
            &[
                (t0, r#"level=info msg="order placed" duration=12ms"#),
                (t0 + 1, r#"level=error msg="payment failed" duration=250ms"#),
            ],
        ),
        (
            r#"{app="shop", env="dev"}"#,
            &[(t0 + 2, r#"level=info msg="order placed" duration=3ms"#)],
        ),
    ]);
    let status = api.push(
        &[("Content-Type", "application/x-protobuf")],
        &snappy_literal(&pb),
    );
    assert_eq!(status, 204);
    // JSON, gzip-encoded.
    let json = format!(
        r#"{{"streams":[{{"stream":{{"app":"billing"}},"values":[["{}","{{\"user\":\"kim\",\"amount\":30,\"status\":\"ok\"}}"],["{}","{{\"user\":\"lee\",\"amount\":7,\"status\":\"declined\"}}"]]}}]}}"#,
        t0 + 3,
        t0 + 4
    );
    let status = api.push(
        &[
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
        ],
        &gzip(json.as_bytes()),
    );
    assert_eq!(status, 204);

    // Searchable once the consumer applied the records.
    wait_for("pushed lines searchable", || {
        api.lines(r#"{app=~"shop|billing"}"#).len() == 5
    });

    // Line filters and parsers.
    assert_eq!(
        api.lines(r#"{app="shop"} |= "payment""#),
        [r#"level=error msg="payment failed" duration=250ms"#]
    );
    assert_eq!(api.lines(r#"{app="shop", env="dev"} != "error""#).len(), 1);
    assert_eq!(
        api.lines(r#"{app="shop"} | logfmt | duration > 10ms"#)
            .len(),
        2
    );
    assert_eq!(
        api.lines(r#"{app="billing"} | json | amount > 10"#),
        [r#"{"user":"kim","amount":30,"status":"ok"}"#]
    );
    assert_eq!(
        api.lines(r#"{app="billing"} |~ "declin(ed)?" | json | line_format "{{.user}}""#),
        ["lee"]
    );

    // Direction and limit: the newest entry first.
    let v = api.ok(
        "/loki/api/v1/query_range",
        &[("query", r#"{app="shop"}"#), ("limit", "1")],
    );
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["values"][0][0], (t0 + 2).to_string());
    assert!(v["data"]["stats"]["summary"].is_object(), "{v}");

    // Metric queries: instant (vector) and range (matrix).
    let v = api.ok(
        "/loki/api/v1/query",
        &[(
            "query",
            r#"sum by (env) (count_over_time({app="shop"}[10m]))"#,
        )],
    );
    assert_eq!(v["data"]["resultType"], "vector");
    let mut got: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["env"].as_str().unwrap().to_owned(),
                s["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("dev".into(), "1".into()), ("prod".into(), "2".into())]
    );
    // A metric range query with start in nanoseconds and step as a duration.
    let start = (t0 - 120_000_000_000).to_string();
    let v = api.ok(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"sum(count_over_time({app=~".+"}[5m]))"#),
            ("start", &start),
            ("step", "60s"),
        ],
    );
    assert_eq!(v["data"]["resultType"], "matrix", "{v}");
    let last = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last[1], "5", "{v}");
    let v = api.ok(
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="billing"}"#),
            ("start", "2000-01-01T00:00:00Z"),
            ("end", &format!("{:.3}", now_ns() as f64 / 1e9)),
        ],
    );
    assert_eq!(
        v["data"]["result"][0]["values"].as_array().unwrap().len(),
        2
    );

    // Start as RFC 3339 text and end as unix seconds with a fraction.
    // POST with a form body, as Grafana sends.
    let (status, _, body) = request(
        server.addr,
        "POST",
        "/loki/api/v1/query_range",
        Some(&token),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!("query={}&limit=10", enc(r#"{env="dev"}"#)).as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("order placed"), "{body}");

    // Labels, label values, series, volume.
    let v = api.ok("/loki/api/v1/labels", &[]);
    assert_eq!(v["data"], serde_json::json!(["app", "env"]));
    let v = api.ok("/loki/api/v1/label/app/values", &[]);
    assert_eq!(v["data"], serde_json::json!(["billing", "shop"]));
    let v = api.ok(
        "/loki/api/v1/label/env/values",
        &[("query", r#"{app="shop"}"#)],
    );
    assert_eq!(v["data"], serde_json::json!(["dev", "prod"]));
    let v = api.ok("/loki/api/v1/series", &[("match[]", r#"{env="prod"}"#)]);
    assert_eq!(
        v["data"],
        serde_json::json!([{"app": "shop", "env": "prod"}])
    );
    let (status, body) = api.get(
        "/loki/api/v1/index/stats",
        &[("query", r#"{app="shop"} |= "x""#)],
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["streams"].as_u64(), v["entries"].as_u64()),
        (Some(2), Some(3)),
        "{v}"
    );
    // Volume over the last hour: the bytes of the shop lines, grouped by app.
    let v = api.ok("/loki/api/v1/index/volume", &[("query", r#"{app="shop"}"#)]);
    let shop_bytes = [
        r#"level=info msg="order placed" duration=12ms"#,
        r#"level=error msg="payment failed" duration=250ms"#,
        r#"level=info msg="order placed" duration=3ms"#,
    ]
    .iter()
    .map(|l| l.len())
    .sum::<usize>();
    assert_eq!(v["data"]["resultType"], "vector", "{v}");
    assert_eq!(
        v["data"]["result"][0]["metric"],
        serde_json::json!({"app": "shop"})
    );
    assert_eq!(
        v["data"]["result"][0]["value"][1],
        shop_bytes.to_string(),
        "{v}"
    );

    // Loki's errors: 400 with a plain-text reason; a missing token is 401.
    let (status, body) = api.get("/loki/api/v1/query_range", &[("query", r#"{app="#)]);
    assert_eq!(status, 400);
    assert!(body.contains("parse error"), "{body}");
    let (status, body) = api.get(
        "/loki/api/v1/query_range",
        &[("query", r#"{app="shop"}"#), ("limit", "100000")],
    );
    assert_eq!(status, 400);
    assert!(body.contains("max entries limit"), "{body}");
    let (status, body) = api.get(
        "/loki/api/v1/query_range",
        &[("query", r#"{app="shop"}"#), ("start", "yesterday")],
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = api.get("/loki/api/v1/series", &[]);
    assert_eq!(status, 400, "{body}");
    let (status, ..) = request(server.addr, "GET", "/loki/api/v1/labels", None, &[], b"").unwrap();
    assert_eq!(status, 401);

    // A stream with too many labels is refused before anything is appended, naming the limit.
    let labels: Vec<String> = (0..16).map(|i| format!(r#""l{i}":"v""#)).collect();
    let body = format!(
        r#"{{"streams":[{{"stream":{{{}}},"values":[["{}","x"]]}}]}}"#,
        labels.join(","),
        now_ns()
    );
    let (status, _, text) = request(
        server.addr,
        "POST",
        "/loki/api/v1/push",
        Some(&token),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("logs.max_labels_per_stream"), "{text}");

    // The CLI.
    let url = format!("http://{}", server.addr);
    let out = bongsu()
        .args([
            "logs",
            "--server",
            &url,
            "query",
            r#"{app="shop"} |= "payment""#,
        ])
        .args(["--since", "1h"])
        .env("BONGSU_TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains(r#"{app="shop", env="prod"} level=error msg="payment failed""#),
        "{stdout}"
    );
    let out = bongsu()
        .args(["logs", "--server", &url, "--token", &token, "query"])
        .args([r#"{app="shop"}"#, "--forward", "--limit", "2", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data"]["resultType"], "streams");
    let out = bongsu()
        .args(["logs", "--server", &url, "query", r#"{app="#])
        .env("BONGSU_TOKEN", &token)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("400") && err.contains("parse error"), "{err}");

    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

/// Log volumes (`index/volume`, `index/volume_range`) and `interval` on log queries, with
/// exact bodies: lines pushed at known offsets from a 10 s boundary.
#[test]
fn volumes_and_interval_answer_with_loki_bodies() {
    use serde_json::json;
    let (_dir, server, token) = start();
    let api = Api {
        addr: server.addr,
        token: &token,
    };
    const S: i64 = 1_000_000_000;
    let base = now_ns().div_euclid(10 * S) * (10 * S) - 120 * S;
    let pb = push_request(&[
        (
            r#"{app="api", env="prod"}"#,
            &[
                (base + S, "aaaa"),
                (base + 2 * S, "bb"),
                (base + 15 * S, "cccccc"),
            ],
        ),
        (r#"{app="api", env="dev"}"#, &[(base + 3 * S, "ddd")]),
        (
            r#"{app="web", env="prod"}"#,
            &[(base + 12 * S, "eeeeeeeeee")],
        ),
    ]);
    let status = api.push(
        &[("Content-Type", "application/x-protobuf")],
        &snappy_literal(&pb),
    );
    assert_eq!(status, 204);
    wait_for("pushed lines searchable", || {
        api.lines(r#"{app=~"api|web"}"#).len() == 5
    });
    let (start, end) = (base.to_string(), (base + 30 * S).to_string());
    let secs = |ns: i64| json!(ns.div_euclid(1_000_000) as f64 / 1000.0);
    let range = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, String)> {
        let mut p = vec![("start", start.clone()), ("end", end.clone())];
        p.extend(extra.iter().map(|&(k, v)| (k, v.to_owned())));
        p
    };
    let vol = |path: &str, query: &str, extra: &[(&'static str, &'static str)]| -> Value {
        let mut p = range(extra);
        p.push(("query", query.to_owned()));
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        api.ok(path, &p)["data"].clone()
    };
    let vector = |result: Value| json!({"resultType": "vector", "result": result});
    let t_end = secs(base + 30 * S);

    // Grouped by the selector's labels (app), biggest first.
    assert_eq!(
        vol("/loki/api/v1/index/volume", r#"{app=~".+"}"#, &[]),
        vector(json!([
            {"metric": {"app": "api"}, "value": [t_end, "15"]},
            {"metric": {"app": "web"}, "value": [t_end, "10"]},
        ]))
    );
    // By target labels instead, POSTed as a form like Grafana does; limit cuts the smaller.
    let (status, _, body) = request(
        server.addr,
        "POST",
        "/loki/api/v1/index/volume",
        Some(&token),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        format!(
            "query={}&start={start}&end={end}&targetLabels=env",
            enc(r#"{app=~".+"}"#)
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"status": "success", "data": vector(json!([
            {"metric": {"env": "prod"}, "value": [t_end, "22"]},
            {"metric": {"env": "dev"}, "value": [t_end, "3"]},
        ]))})
    );
    assert_eq!(
        vol(
            "/loki/api/v1/index/volume",
            r#"{app=~".+"}"#,
            &[("targetLabels", "env"), ("limit", "1")]
        ),
        vector(json!([{"metric": {"env": "prod"}, "value": [t_end, "22"]}]))
    );
    // By label name: each label's streams' bytes, the value empty.
    assert_eq!(
        vol(
            "/loki/api/v1/index/volume",
            r#"{env="prod"}"#,
            &[("aggregateBy", "labels"), ("targetLabels", "app,env")]
        ),
        vector(json!([
            {"metric": {"app": ""}, "value": [t_end, "22"]},
            {"metric": {"env": ""}, "value": [t_end, "22"]},
        ]))
    );
    // Ranges: buckets of 10 s stamped with their last millisecond; the empty third is left out.
    let matrix = |result: Value| json!({"resultType": "matrix", "result": result});
    let (b0, b1) = (secs(base + 10 * S - 1), secs(base + 20 * S - 1));
    assert_eq!(
        vol(
            "/loki/api/v1/index/volume_range",
            r#"{app=~".+"}"#,
            &[("targetLabels", "env"), ("step", "10s")]
        ),
        matrix(json!([
            {"metric": {"env": "prod"}, "values": [[b0, "6"], [b1, "16"]]},
            {"metric": {"env": "dev"}, "values": [[b0, "3"]]},
        ]))
    );
    assert_eq!(
        vol(
            "/loki/api/v1/index/volume_range",
            r#"{app="api"}"#,
            &[("step", "10"), ("limit", "1")]
        ),
        matrix(json!([{"metric": {"app": "api"}, "values": [[b0, "9"], [b1, "6"]]}]))
    );
    for (params, why) in [
        (
            vec![("query", r#"{app="api"}"#), ("aggregateBy", "streams")],
            "aggregateBy",
        ),
        (vec![("query", r#"{app="api"} |= "a""#)], "parse error"),
        (vec![("query", r#"{app="api"}"#), ("limit", "0")], "limit"),
    ] {
        let (status, body) = api.get("/loki/api/v1/index/volume", &params);
        assert_eq!(status, 400, "{params:?}: {body}");
        assert!(body.contains(why), "{body}");
    }

    // interval: over both streams in direction order, entries at least 5 s apart.
    let thinned = |extra: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
        let mut p = range(extra);
        p.push(("query", r#"{app=~".+"}"#.to_owned()));
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let v = api.ok("/loki/api/v1/query_range", &p);
        let mut out = Vec::new();
        for s in v["data"]["result"].as_array().unwrap() {
            for e in s["values"].as_array().unwrap() {
                out.push((
                    e[0].as_str().unwrap().to_owned(),
                    e[1].as_str().unwrap().to_owned(),
                ));
            }
        }
        out.sort();
        out
    };
    let at = |s: i64, line: &str| ((base + s * S).to_string(), line.to_owned());
    assert_eq!(
        thinned(&[("direction", "forward"), ("interval", "5s")]),
        [at(1, "aaaa"), at(12, "eeeeeeeeee")]
    );
    assert_eq!(
        thinned(&[("direction", "backward"), ("interval", "5")]),
        [at(3, "ddd"), at(15, "cccccc")]
    );
    assert_eq!(
        thinned(&[("direction", "forward"), ("interval", "5s"), ("limit", "1")]),
        [at(1, "aaaa")]
    );
    assert_eq!(thinned(&[("direction", "forward")]).len(), 5);
    // Metric queries ignore it; a bad one is refused.
    let p = range(&[("interval", "5s"), ("step", "10s")]);
    let mut p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    p.push(("query", r#"sum(count_over_time({app="api"}[10s]))"#));
    assert_eq!(
        api.ok("/loki/api/v1/query_range", &p)["data"]["resultType"],
        "matrix"
    );
    let (status, body) = api.get(
        "/loki/api/v1/query_range",
        &[("query", r#"{app="api"}"#), ("interval", "soon")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid interval"), "{body}");
}

#[test]
fn live_tail_receives_lines_pushed_after_it_connected() {
    let (_dir, server, token) = start();
    let api = Api {
        addr: server.addr,
        token: &token,
    };
    let push = |line: &str| {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"app":"tail"}},"values":[["{}","{line}"]]}}]}}"#,
            now_ns()
        );
        assert_eq!(
            api.push(&[("Content-Type", "application/json")], body.as_bytes()),
            204
        );
    };
    push("before the tail");
    wait_for("first line searchable", || {
        api.lines(r#"{app="tail"}"#).len() == 1
    });

    let mut child = bongsu()
        .args(["logs", "--server", &format!("http://{}", server.addr)])
        .args(["tail", r#"{app="tail"} != "noise""#])
        .env("BONGSU_TOKEN", &token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_line = |want: &str| {
        let deadline = Instant::now() + DEADLINE;
        while !seen.iter().any(|l: &String| l.ends_with(want)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(l) => seen.push(l),
                Err(_) => panic!("tail did not print {want:?}; got {seen:?}"),
            }
        }
        seen.clone()
    };
    // History first: the tail is connected once it printed it.
    wait_line("before the tail");
    push("noise, filtered out");
    push("after the tail");
    let got = wait_line("after the tail");
    assert!(got.iter().all(|l| !l.contains("noise")), "{got:?}");
    assert!(
        got.iter()
            .any(|l| l.contains(r#"{app="tail"} after the tail"#)),
        "{got:?}"
    );
    assert_eq!(
        got.iter()
            .filter(|l| l.ends_with("before the tail"))
            .count(),
        1,
        "history is sent once: {got:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

/// The interpreter of a virtualenv holding PyPI's `python-logging-loki`
/// (scripts/test-all.sh creates it under target/peers/pyloki), or BONGSU_PYLOKI_PYTHON.
fn python_with_logging_loki() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("BONGSU_PYLOKI_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/peers/pyloki/bin/python")
        });
    let ok = std::process::Command::new(&python)
        .args(["-c", "import logging_loki"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("BONGSU_REQUIRE_PEERS").is_none(),
        "python-logging-loki is missing at {}: run scripts/test-all.sh (it installs it)",
        python.display()
    );
    None
}

#[test]
fn a_python_logging_loki_handler_pushes_and_the_query_returns_it() {
    let Some(python) = python_with_logging_loki() else {
        eprintln!(
            "skipped: python-logging-loki is not installed (scripts/test-all.sh installs it)"
        );
        return;
    };
    let (_dir, server, token) = start();
    let script = r#"
import logging, sys, logging_loki
url, token = sys.argv[1], sys.argv[2]
handler = logging_loki.LokiHandler(url=url, tags={"app": "pyclient"}, version="1")
handler.emitter.session.headers["Authorization"] = "Bearer " + token
log = logging.getLogger("e2e")
log.setLevel(logging.INFO)
log.addHandler(handler)
log.info("hello from python %d", 1)
log.error("payment failed for order %s", "A-17")
handler.close()
"#;
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(format!("http://{}/loki/api/v1/push", server.addr))
        .arg(&token)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let api = Api {
        addr: server.addr,
        token: &token,
    };
    wait_for("python lines searchable", || {
        api.lines(r#"{app="pyclient"}"#).len() == 2
    });
    assert_eq!(
        api.lines(r#"{app="pyclient", severity="error", logger="e2e"}"#),
        ["payment failed for order A-17"]
    );
    assert_eq!(
        api.lines(r#"{app="pyclient", severity="info"}"#),
        ["hello from python 1"]
    );
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn every_acknowledged_line_is_searchable_after_sigkill_during_concurrent_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Segments and checkpoints are written while the writers push, so the restart replays
    // the logs topic from a checkpoint in the middle of it.
    let env = [
        ("BONGSU_LOGS_FLUSH_INTERVAL", "100ms"),
        ("BONGSU_LOGS_MAINTAIN_INTERVAL", "50ms"),
    ];
    let mut server = Running::start_with_env(&data, &env);
    let token = server
        .admin_token
        .clone()
        .expect("first start prints a token");
    server.wait_ready();
    let addr = server.addr;

    const WRITERS: usize = 4;
    const LINES: usize = 20;
    let acked: Arc<Mutex<Vec<HashSet<String>>>> =
        Arc::new(Mutex::new(vec![HashSet::new(); WRITERS]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let (acked, stop, token) = (acked.clone(), stop.clone(), token.clone());
        handles.push(thread::spawn(move || {
            let mut n = 0usize;
            // At most 200 requests: 4000 lines per writer, within one query's limit.
            while !stop.load(Ordering::Relaxed) && n < 200 {
                let base = now_ns();
                let lines: Vec<String> = (0..LINES).map(|i| format!("w{w} r{n} l{i}")).collect();
                let values: Vec<String> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!(r#"["{}","{l}"]"#, base + i as i64))
                    .collect();
                let body = format!(
                    r#"{{"streams":[{{"stream":{{"app":"crash","writer":"w{w}"}},"values":[{}]}}]}}"#,
                    values.join(",")
                );
                match request(
                    addr,
                    "POST",
                    "/loki/api/v1/push",
                    Some(&token),
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                ) {
                    Ok((204, ..)) => acked.lock().unwrap()[w].extend(lines),
                    Ok(_) | Err(_) => break,
                }
                n += 1;
            }
        }));
    }
    // Kill once a good number of pushes were acknowledged and the store wrote a checkpoint,
    // while the writers keep pushing.
    let checkpoint = data.join("logs").join("CHECKPOINT");
    wait_for("pushes acknowledged and a checkpoint written", || {
        acked
            .lock()
            .unwrap()
            .iter()
            .map(HashSet::len)
            .sum::<usize>()
            >= 100 * LINES
            && checkpoint.exists()
    });
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    drop(server);
    assert!(
        data.join("logs").join("CHECKPOINT").exists(),
        "no checkpoint was written before the kill"
    );

    let server = Running::start_with_env(&data, &env);
    server.wait_ready();
    let api = Api {
        addr: server.addr,
        token: &token,
    };
    let acked = acked.lock().unwrap().clone();
    for (w, want) in acked.iter().enumerate() {
        let q = format!(r#"{{app="crash", writer="w{w}"}}"#);
        let mut missing = Vec::new();
        wait_for("every acknowledged line searchable after restart", || {
            let got: HashSet<String> = api.lines(&q).into_iter().collect();
            missing = want.difference(&got).cloned().collect();
            missing.is_empty()
        });
        assert!(missing.is_empty(), "writer {w} lost {missing:?}");
    }
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

/// The value of an unlabelled or fully labelled sample line in a `/metrics` body.
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn stream_limits_refuse_pushes_and_bad_records_and_late_entries_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("BONGSU_LOGS_MAX_STREAMS", "2")];
    let server = Running::start_with_env(&data, &env);
    let token = server
        .admin_token
        .clone()
        .expect("first start prints a token");
    server.wait_ready();
    let api = Api {
        addr: server.addr,
        token: &token,
    };
    let push = |api: &Api, app: &str, ts: i64, line: &str| {
        let body = format!(
            r#"{{"streams":[{{"stream":{{"app":"{app}"}},"values":[["{ts}","{line}"]]}}]}}"#
        );
        request(
            api.addr,
            "POST",
            "/loki/api/v1/push",
            Some(api.token),
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let now = now_ns();
    assert_eq!(push(&api, "a", now, "first").0, 204);
    assert_eq!(push(&api, "b", now, "second").0, 204);
    // A third stream is over logs.max_streams: 400 naming the limit; known streams still work.
    let (status, _, body) = push(&api, "c", now, "third");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("logs.max_streams"), "{body}");
    assert_eq!(push(&api, "a", now + 1, "more").0, 204);
    // An entry older than the stream's newest by more than logs.out_of_order_window (1h) is
    // acknowledged by the stream but left out by the store, and counted.
    assert_eq!(
        push(&api, "b", now - 2 * 3600 * 1_000_000_000, "too late").0,
        204
    );
    wait_for("late entry counted", || {
        let (_, m) = api.get("/metrics", &[]);
        metric(
            &m,
            r#"bongsu_logs_entries_rejected_total{reason="out_of_order"}"#,
        ) == Some(1.0)
    });
    assert_eq!(api.lines(r#"{app="a"}"#), ["first", "more"]);
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");

    // A record that does not decode (written to the topic directly) is logged, counted and
    // skipped; the records after it are applied. The stream limit still holds after a restart.
    super::stream_cli::ok(
        &data,
        &["produce", "-t", "logs", "-p", "0"],
        "not a logs record\n",
    );
    let server = Running::start_with_env(&data, &env);
    server.wait_ready();
    let api = Api {
        addr: server.addr,
        token: &token,
    };
    assert_eq!(push(&api, "b", now_ns(), "after restart").0, 204);
    assert_eq!(push(&api, "c", now_ns(), "third").0, 400);
    wait_for("bad record skipped and the next applied", || {
        let (_, m) = api.get("/metrics", &[]);
        metric(&m, "bongsu_logs_records_skipped_total") == Some(1.0)
            && api.lines(r#"{app="b"}"#).last().map(String::as_str) == Some("after restart")
    });
    assert!(
        server.stderr.lock().unwrap().contains("does not decode"),
        "the bad record is logged"
    );
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn the_server_compacts_written_segments_and_every_line_stays_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("BONGSU_LOGS_MAINTAIN_INTERVAL", "100ms")];
    let mut token = None;
    let mut want: Vec<String> = Vec::new();
    let now = now_ns();
    // Three runs of the server, each pushing a round of lines: each shutdown flushes the
    // round into a segment of its own.
    for round in 0..4i64 {
        let server = Running::start_with_env(&data, &env);
        if token.is_none() {
            token = server.admin_token.clone();
        }
        let token = token.as_deref().expect("first start prints a token");
        server.wait_ready();
        let api = Api {
            addr: server.addr,
            token,
        };
        let counter = |name: &str| {
            let (_, m) = api.get("/metrics", &[]);
            metric(&m, name).unwrap_or(0.0)
        };
        if round == 3 {
            // The last start compacts the three segments: same lines, same answers.
            wait_for("a compaction step installed", || {
                counter("bongsu_logs_compactions_total") >= 1.0
            });
            assert_eq!(counter("bongsu_logs_maintain_errors_total"), 0.0);
            assert_eq!(api.lines(r#"{app="compact"}"#), want);
            // A substring inside a token, answered through the rebuilt filters.
            let sub: Vec<String> = want
                .iter()
                .filter(|l| l.contains("req-000007d"))
                .cloned()
                .collect();
            assert_eq!(sub.len(), 16);
            assert_eq!(api.lines(r#"{app="compact"} |= "req-000007d""#), sub);
        } else {
            let lines: Vec<(i64, String)> = (0..200i64)
                .map(|i| {
                    (
                        now + round * 1_000 + i,
                        format!("round {round} line {i} id=req-{:08x}", round * 1000 + i),
                    )
                })
                .collect();
            let refs: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
            let body = push_request(&[(r#"{app="compact", env="test"}"#, &refs)]);
            let status = api.push(
                &[("Content-Type", "application/x-protobuf")],
                &snappy_literal(&body),
            );
            assert_eq!(status, 204);
            want.extend(lines.into_iter().map(|l| l.1));
            wait_for("the round applied", || {
                api.lines(r#"{app="compact"}"#).len() == want.len()
            });
        }
        let (status, _, stderr) = server.terminate();
        assert!(status.success(), "{stderr}");
    }

    // The compacted segment opens again after a restart, with the same answers.
    let server = Running::start_with_env(&data, &env);
    server.wait_ready();
    let api = Api {
        addr: server.addr,
        token: token.as_deref().unwrap(),
    };
    assert_eq!(api.lines(r#"{app="compact"}"#), want);
    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}
