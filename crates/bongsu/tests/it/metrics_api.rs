//! Metrics end to end: remote_write into the real binary, then every endpoint of the
//! Prometheus query API and `bongsu query`; Prometheus in agent mode forwarding a real
//! node_exporter, queried with `promtool`; SIGKILL during heavy remote_write.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{bongsu, wait_for, Running};

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

/// A `prometheus.WriteRequest`: series of (labels, samples) and counter metadata for the
/// given families.
/// One series to write: label pairs and `(timestamp ms, value)` samples.
type SeriesSpec<'a> = (Vec<(&'a str, &'a str)>, Vec<(i64, f64)>);

fn write_request(series: &[SeriesSpec<'_>], counters: &[&str]) -> Vec<u8> {
    let mut req = Vec::new();
    for (labels, samples) in series {
        let mut ts = Vec::new();
        for (n, v) in labels {
            let mut l = Vec::new();
            field_bytes(1, n.as_bytes(), &mut l);
            field_bytes(2, v.as_bytes(), &mut l);
            field_bytes(1, &l, &mut ts);
        }
        for &(t, v) in samples {
            let mut s = vec![1 << 3 | 1];
            s.extend_from_slice(&v.to_le_bytes());
            s.push(2 << 3);
            varint(t as u64, &mut s);
            field_bytes(2, &s, &mut ts);
        }
        field_bytes(1, &ts, &mut req);
    }
    for family in counters {
        let mut m = vec![1 << 3, 1]; // type: COUNTER
        field_bytes(2, family.as_bytes(), &mut m);
        field_bytes(4, b"requests served", &mut m);
        field_bytes(3, &m, &mut req);
    }
    snappy_literal(&req)
}

fn snappy_literal(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(raw.len() as u64, &mut out);
    for chunk in raw.chunks(60) {
        out.push(((chunk.len() - 1) as u8) << 2);
        out.extend_from_slice(chunk);
    }
    out
}

/// One request with `Connection: close`; returns the status and body.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
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
    Ok((status, body))
}

fn remote_write(addr: SocketAddr, token: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    request(
        addr,
        "POST",
        "/api/v1/write",
        Some(token),
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        body,
    )
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

fn query_string(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// GET `path?params`, parsed as JSON.
fn get_json(addr: SocketAddr, token: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let p = if params.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query_string(params))
    };
    let (status, body) = request(addr, "GET", &p, Some(token), &[], b"").unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{p}: {e}: {body}"));
    (status, v)
}

fn post_form(addr: SocketAddr, token: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let body = query_string(params);
    let (status, text) = request(
        addr,
        "POST",
        path,
        Some(token),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn result(v: &Value) -> &Vec<Value> {
    v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("no result in {v}"))
}

#[test]
fn remote_write_then_every_query_endpoint_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start_with_env(
        &dir.path().join("data"),
        &[
            ("BONGSU_TSDB_MAX_SERIES_PER_METRIC", "3"),
            ("BONGSU_QUERY_MAX_SAMPLES", "9"),
        ],
    );
    let token = server.admin_token.clone().expect("admin token");
    server.wait_ready();
    let addr = server.addr;

    let t0 = (now_ms() / 1000) * 1000 - 60_000;
    let counter: Vec<(i64, f64)> = (0..5).map(|i| (t0 + i * 15_000, (i * 30) as f64)).collect();
    let body = write_request(
        &[
            (
                vec![
                    ("__name__", "e2e_requests_total"),
                    ("code", "200"),
                    ("job", "api"),
                ],
                counter,
            ),
            (
                vec![("__name__", "e2e_up"), ("job", "api")],
                (0..5).map(|i| (t0 + i * 15_000, 1.0)).collect(),
            ),
        ],
        &["e2e_requests_total"],
    );
    let (status, text) = remote_write(addr, &token, &body).unwrap();
    assert_eq!(status, 204, "{text}");
    let at = secs(t0 + 60_000);

    // The consumer applies the record shortly after the acknowledgement; the two series may
    // sit on different partitions, applied independently, so wait for both.
    // (One query each: the server's sample limit here is 9.)
    wait_for("the written samples to be queryable", || {
        ["e2e_up", "e2e_requests_total"].iter().all(|q| {
            let (_, v) = get_json(
                addr,
                &token,
                "/api/v1/query",
                &[("query", q), ("time", &at)],
            );
            v["status"] == "success" && result(&v).len() == 1
        })
    });

    // Instant query, GET: a rate over the counter (30 per 15 s).
    let (status, v) = get_json(
        addr,
        &token,
        "/api/v1/query",
        &[
            ("query", "sum by (job) (rate(e2e_requests_total[5m]))"),
            ("time", &at),
        ],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    let r = result(&v);
    assert_eq!(r[0]["metric"], serde_json::json!({"job": "api"}));
    // 120 over the 60 s sampled, not extrapolated towards the start (the counter starts at
    // 0, Prometheus's zero point), divided by the 300 s range.
    let rate: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!((rate - 0.4).abs() < 1e-9, "{v}");

    // POST form, RFC 3339 time.
    let rfc = "2100-01-01T00:00:00Z";
    let (status, v) = post_form(
        addr,
        &token,
        "/api/v1/query",
        &[("query", "1 + 1"), ("time", rfc)],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["result"], serde_json::json!([4102444800u64, "2"]));

    // Range query with a duration step.
    let (start, end) = (secs(t0), secs(t0 + 60_000));
    for step in ["15s", "15"] {
        let (status, v) = post_form(
            addr,
            &token,
            "/api/v1/query_range",
            &[
                ("query", "e2e_up"),
                ("start", &start),
                ("end", &end),
                ("step", step),
            ],
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"]["resultType"], "matrix");
        assert_eq!(result(&v)[0]["values"].as_array().unwrap().len(), 5, "{v}");
    }

    // Series, labels, label values.
    let (status, v) = get_json(
        addr,
        &token,
        "/api/v1/series",
        &[("match[]", "e2e_up"), ("match[]", "{code=\"200\"}")],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["data"],
        serde_json::json!([
            {"__name__": "e2e_requests_total", "code": "200", "job": "api"},
            {"__name__": "e2e_up", "job": "api"}
        ])
    );
    let (_, v) = get_json(addr, &token, "/api/v1/labels", &[]);
    assert_eq!(v["data"], serde_json::json!(["__name__", "code", "job"]));
    let (_, v) = get_json(addr, &token, "/api/v1/label/__name__/values", &[]);
    assert_eq!(
        v["data"],
        serde_json::json!(["e2e_requests_total", "e2e_up"])
    );
    let (_, v) = get_json(
        addr,
        &token,
        "/api/v1/label/job/values",
        &[("match[]", "e2e_up")],
    );
    assert_eq!(v["data"], serde_json::json!(["api"]));

    // Metadata, build info, tsdb status.
    let (_, v) = get_json(addr, &token, "/api/v1/metadata", &[]);
    assert_eq!(
        v["data"]["e2e_requests_total"],
        serde_json::json!([{"type": "counter", "help": "requests served", "unit": ""}]),
        "{v}"
    );
    let (_, v) = get_json(addr, &token, "/api/v1/status/buildinfo", &[]);
    assert!(
        v["data"]["version"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    let (_, v) = get_json(addr, &token, "/api/v1/status/tsdb", &[]);
    assert_eq!(v["data"]["headStats"]["numSeries"], 2, "{v}");
    assert_eq!(
        v["data"]["seriesCountByMetricName"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{v}"
    );

    // Errors in Prometheus's shapes.
    for (path, params, code, kind) in [
        ("/api/v1/query", vec![("query", "sum(")], 400, "bad_data"),
        (
            "/api/v1/query",
            vec![("query", "up"), ("time", "yesterday")],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            vec![("query", "up"), ("start", "1"), ("end", "2"), ("step", "0")],
            400,
            "bad_data",
        ),
        ("/api/v1/series", vec![], 400, "bad_data"),
        (
            "/api/v1/query",
            vec![("query", "e2e_up"), ("time", at.as_str())],
            200,
            "",
        ),
    ] {
        let (status, v) = get_json(addr, &token, path, &params);
        assert_eq!(status, code, "{path} {params:?}: {v}");
        if code != 200 {
            assert_eq!(v["status"], "error");
            assert_eq!(v["errorType"], kind, "{v}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    let (status, _) = request(addr, "GET", "/api/v1/query?query=up", None, &[], b"").unwrap();
    assert_eq!(status, 401);
    // query.max_samples is 9: loading the 10 samples of both series is refused.
    let (status, v) = get_json(
        addr,
        &token,
        "/api/v1/query",
        &[("query", "{__name__=~\"e2e_.*\"}[10m]"), ("time", &at)],
    );
    assert_eq!(
        (status, &v["errorType"]),
        (422, &Value::from("execution")),
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("limit 9"), "{v}");

    // A sample older than tsdb.ooo_window (10m) behind its series' newest is counted, and
    // reported by /api/v1/status/tsdb.
    let old = write_request(
        &[(
            vec![("__name__", "e2e_up"), ("job", "api")],
            vec![(t0 - 3_600_000, 1.0)],
        )],
        &[],
    );
    let (status, text) = remote_write(addr, &token, &old).unwrap();
    assert_eq!(status, 204, "{text}");
    wait_for("the out-of-window sample to be counted", || {
        let (_, v) = get_json(addr, &token, "/api/v1/status/tsdb", &[]);
        v["data"]["outOfWindowSamplesTotal"] == 1
    });

    // Cardinality: a fourth series of one metric is refused whole, naming metric and limit.
    let card = |n: usize| -> Vec<SeriesSpec<'static>> {
        const IDS: [&str; 4] = ["a", "b", "c", "d"];
        IDS[..n]
            .iter()
            .map(|id| (vec![("__name__", "e2e_card"), ("id", *id)], vec![(t0, 1.0)]))
            .collect()
    };
    let (status, text) = remote_write(addr, &token, &write_request(&card(3), &[])).unwrap();
    assert_eq!(status, 204, "{text}");
    wait_for("three e2e_card series", || {
        let (_, v) = get_json(addr, &token, "/api/v1/series", &[("match[]", "e2e_card")]);
        v["data"].as_array().is_some_and(|a| a.len() == 3)
    });
    let (status, text) = remote_write(addr, &token, &write_request(&card(4), &[])).unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("e2e_card") && text.contains("more than 3 series"),
        "{text}"
    );
    let (_, metrics) = server.get("/metrics", Some(&token));
    for want in [
        "bongsu_ingest_cardinality_rejections_total 1",
        "bongsu_tsdb_out_of_window_samples_total 1",
        "bongsu_tsdb_samples_appended_total 13",
        "bongsu_stream_consumer_lag_records{group=\"tsdb\"",
    ] {
        assert!(metrics.contains(want), "{want} missing from:\n{metrics}");
    }

    // The CLI: a table, the raw JSON, a range.
    let url = format!("http://{addr}");
    let out = bongsu()
        .args(["query", "--server", &url, "--at", &at, "e2e_up"])
        .env("BONGSU_TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("SERIES"), "{stdout}");
    assert!(stdout.contains("e2e_up{job=\"api\"}"), "{stdout}");
    let out = bongsu()
        .args([
            "query", "--server", &url, "--token", &token, "--json", "--start", &start, "--end",
            &end, "--step", "30s", "e2e_up",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result(&v)[0]["values"].as_array().unwrap().len(), 3, "{v}");
    let out = bongsu()
        .args(["query", "--server", &url, "--token", &token, "sum("])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_data"));

    let (status, _, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

/// Whether a peer binary is installed; panics when it is missing but required.
fn have_peer(bin: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("BONGSU_REQUIRE_PEERS").is_none(),
            "{bin} is required (BONGSU_REQUIRE_PEERS is set): install it with scripts/test-all.sh"
        );
        println!("skipping: {bin} is not installed (scripts/test-all.sh installs it)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (SIGKILL) and reaped when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool").args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn prometheus_agent_forwards_node_exporter_and_promtool_queries_bongsu() {
    if !["prometheus", "promtool", "prometheus-node-exporter"]
        .iter()
        .all(|b| have_peer(b))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(&dir.path().join("data"));
    let token = server.admin_token.clone().expect("admin token");
    server.wait_ready();
    let addr = server.addr;

    let node_port = free_port();
    let _node = Peer(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{node_port}"))
            .arg("--no-collector.systemd")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let config = dir.path().join("prom.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\n\
             remote_write:\n  - url: http://{addr}/api/v1/write\n    authorization:\n      credentials: {token}\n\
             \x20   queue_config:\n      batch_send_deadline: 1s\n    metadata_config:\n      send_interval: 1s\n"
        ),
    )
    .unwrap();
    let prom_log = dir.path().join("prometheus.log");
    let _prom = Peer(
        Command::new("prometheus")
            .arg("--enable-feature=agent")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.agent.path={}",
                dir.path().join("agent").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&prom_log).unwrap())
            .spawn()
            .unwrap(),
    );

    // Wait (up to a minute: Prometheus starts, scrapes, batches) for node_exporter's series.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // A few scrapes, so rates have samples; `up` is appended after a scrape's samples and
        // may come in a later batch.
        let (_, v) = get_json(
            addr,
            &token,
            "/api/v1/query",
            &[(
                "query",
                "count_over_time(node_load1[1m]) >= 3 and on() (up{job=\"node\"} == 1)",
            )],
        );
        if v["status"] == "success" && !result(&v).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no node_exporter series arrived; prometheus log:\n{}",
            std::fs::read_to_string(&prom_log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(200));
    }

    // promtool speaks to bongsu as to Prometheus; the token goes as the basic-auth password.
    let url = format!("http://promtool:{token}@{addr}");
    let out = promtool(&["query", "instant", &url, "node_load1"]);
    assert!(
        out.contains("node_load1{") && out.contains("job=\"node\""),
        "{out}"
    );
    let out = promtool(&["query", "instant", &url, "count(up{job=\"node\"} == 1)"]);
    assert!(out.contains("=> 1 @"), "{out}");
    let now = now_ms() / 1000;
    let out = promtool(&[
        "query",
        "range",
        "--start",
        &(now - 60).to_string(),
        "--end",
        &now.to_string(),
        "--step",
        "5s",
        &url,
        "sum by (mode) (rate(node_cpu_seconds_total[30s]))",
    ]);
    assert!(out.contains("mode=\"idle\""), "{out}");
    let out = promtool(&["query", "series", "--match", "node_cpu_seconds_total", &url]);
    assert!(
        out.contains("__name__=\"node_cpu_seconds_total\"") && out.contains("cpu=\"0\""),
        "{out}"
    );
    let out = promtool(&["query", "labels", &url, "job"]);
    assert!(out.lines().any(|l| l.trim() == "node"), "{out}");
    let out = promtool(&["query", "labels", &url, "__name__"]);
    let names = out.lines().filter(|l| l.starts_with("node_")).count();
    assert!(names > 50, "only {names} node_ metric names:\n{out}");

    // Metadata arrived with the samples.
    let (_, v) = get_json(
        addr,
        &token,
        "/api/v1/metadata",
        &[("metric", "node_cpu_seconds_total")],
    );
    assert_eq!(
        v["data"]["node_cpu_seconds_total"][0]["type"], "counter",
        "{v}"
    );
}

#[test]
fn sigkill_during_heavy_remote_write_loses_no_acknowledged_sample() {
    const WRITERS: usize = 8;
    const SAMPLES_PER_REQUEST: i64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Running::start(&data);
    let token = server.admin_token.clone().expect("admin token");
    server.wait_ready();
    let addr = server.addr;

    let base = now_ms() - 20 * 60_000;
    let stop = Arc::new(AtomicBool::new(false));
    let acked_total = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<Vec<Vec<i64>>>> = Arc::new(Mutex::new(vec![Vec::new(); WRITERS]));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (stop, acked, acked_total, token) = (
                stop.clone(),
                acked.clone(),
                acked_total.clone(),
                token.clone(),
            );
            thread::spawn(move || {
                let id = w.to_string();
                let mut i = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    let ts: Vec<i64> = (0..SAMPLES_PER_REQUEST)
                        .map(|j| base + i * SAMPLES_PER_REQUEST + j)
                        .collect();
                    let body = write_request(
                        &[(
                            vec![("__name__", "e2e_crash"), ("writer", &id)],
                            ts.iter().map(|&t| (t, t as f64)).collect(),
                        )],
                        &[],
                    );
                    match remote_write(addr, &token, &body) {
                        Ok((204, _)) => {
                            acked.lock().unwrap()[w].extend(&ts);
                            acked_total.fetch_add(1, Ordering::SeqCst);
                        }
                        // Refused while saturated: not acknowledged, try again.
                        Ok((429, _)) => continue,
                        Ok((s, body)) => panic!("unexpected {s}: {body}"),
                        Err(_) => return, // the server is gone
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Kill while the writers are busy.
    wait_for("acknowledged writes", || {
        acked_total.load(Ordering::SeqCst) >= 300
    });
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    drop(server);

    let server = Running::start(&data);
    server.wait_ready();
    let addr = server.addr;
    let acked = acked.lock().unwrap().clone();
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(total >= 300 * SAMPLES_PER_REQUEST as usize);
    let at = secs(base + 10 * 60_000);
    for (w, want) in acked.iter().enumerate() {
        let q = format!("e2e_crash{{writer=\"{w}\"}}[15m]");
        let mut have: Vec<i64> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, v) = get_json(
                addr,
                &token,
                "/api/v1/query",
                &[("query", &q), ("time", &at)],
            );
            if let Some(s) = v["data"]["result"].as_array().and_then(|r| r.first()) {
                have = s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_f64().unwrap() * 1000.0).round() as i64)
                    .collect();
            }
            if have.len() >= want.len() || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let have: std::collections::HashSet<i64> = have.into_iter().collect();
        let missing: Vec<&i64> = want.iter().filter(|t| !have.contains(t)).collect();
        assert!(
            missing.is_empty(),
            "writer {w}: {} of {} acknowledged samples missing after restart, first {:?}",
            missing.len(),
            want.len(),
            missing.first()
        );
    }
    println!("crash test: {total} acknowledged samples all queryable after SIGKILL and restart");
}
