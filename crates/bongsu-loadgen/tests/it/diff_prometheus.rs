//! Differential test of bongsu's store and PromQL engine against a real Prometheus 2.42: the
//! same generated hour of samples goes to Prometheus by remote_write and into a `Tsdb`
//! queried through `bongsu_promql::Engine`; every query of the set, instant and range, must
//! give the same series, timestamps and values (1e-9 relative).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bongsu_loadgen::{
    client, compare_answers, encode_body, run_query, sample_count, send_bodies, Body, Query,
    SendOptions, Workload, QUERIES,
};
use bongsu_model::{Labels, Sample};
use bongsu_promql::{to_prometheus_json, Engine, EngineOptions, SelectHints, Storage};
use bongsu_tsdb::Tsdb;

/// Differences allowed: the query's name, the expression bongsu must evaluate to give
/// Prometheus 2.42's answer (checked, so the difference is exactly the stated one), and why.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "subquery_max_rate",
        r#"max_over_time(rate(node_cpu_seconds_total{mode="system"}[2m])[10m1ms:1m])"#,
        "Prometheus 2.x subqueries include the step on the window's left boundary ([t-10m, t]); \
         Prometheus 3.x and bongsu take left-open windows ((t-10m, t]); widening bongsu's \
         window by 1 ms gives 2.x's answer",
    ),
    (
        "subquery_avg",
        "avg_over_time(sum by (instance) (node_load1)[15m1ms:30s])",
        "Prometheus 2.x subqueries include the step on the window's left boundary ([t-15m, t]); \
         Prometheus 3.x and bongsu take left-open windows ((t-15m, t]); widening bongsu's \
         window by 1 ms gives 2.x's answer",
    ),
];

/// The same query with another expression.
fn with_expr(q: &Query, e: &str) -> Query {
    match q {
        Query::Instant { time_ms, .. } => Query::Instant {
            expr: e.to_owned(),
            time_ms: *time_ms,
        },
        Query::Range {
            start_ms,
            end_ms,
            step_ms,
            ..
        } => Query::Range {
            expr: e.to_owned(),
            start_ms: *start_ms,
            end_ms: *end_ms,
            step_ms: *step_ms,
        },
    }
}

/// A running Prometheus, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// Starts Prometheus with its remote_write receiver on a free port, or returns None (with
/// the reason printed) when it is not installed and peers are not required.
fn start_prometheus(dir: &Path) -> Option<Prometheus> {
    let installed = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("BONGSU_REQUIRE_PEERS").is_none(),
            "prometheus is not installed but BONGSU_REQUIRE_PEERS is set: apt-get install prometheus"
        );
        eprintln!("skipping: prometheus is not installed (apt-get install prometheus)");
        return None;
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 15s\n").unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("start prometheus");
    Some(Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
    })
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = http
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The store behind the engine, as the server wires it.
struct TsdbStorage(Tsdb);

impl Storage for TsdbStorage {
    fn select(
        &self,
        matchers: &[bongsu_promql::Matcher],
        hints: &SelectHints,
    ) -> bongsu_promql::Result<Vec<bongsu_promql::Series>> {
        let ms = matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    bongsu_promql::MatchOp::Equal => bongsu_tsdb::MatchOp::Equal,
                    bongsu_promql::MatchOp::NotEqual => bongsu_tsdb::MatchOp::NotEqual,
                    bongsu_promql::MatchOp::RegexMatch => bongsu_tsdb::MatchOp::Regex,
                    bongsu_promql::MatchOp::RegexNoMatch => bongsu_tsdb::MatchOp::NotRegex,
                };
                bongsu_tsdb::Matcher::new(op, m.name.clone(), m.value.clone())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bongsu_promql::Error::Storage(e.to_string()))?;
        let found = self
            .0
            .select(&ms, hints.start_ms, hints.end_ms)
            .map_err(|e| bongsu_promql::Error::Storage(e.to_string()))?;
        Ok(found
            .into_iter()
            .map(|s| bongsu_promql::Series {
                labels: s.labels,
                samples: s.samples,
            })
            .collect())
    }
}

/// bongsu's answer in the API's JSON shape.
fn bongsu_answer(engine: &Engine, storage: &TsdbStorage, q: &Query) -> serde_json::Value {
    let res = match q {
        Query::Instant { expr, time_ms } => engine.instant_query(storage, expr, *time_ms),
        Query::Range {
            expr,
            start_ms,
            end_ms,
            step_ms,
        } => engine.range_query(storage, expr, *start_ms, *end_ms, *step_ms),
    };
    match res {
        Ok(r) => serde_json::json!({
            "status": "success",
            "data": serde_json::from_str::<serde_json::Value>(&to_prometheus_json(&r.value))
                .expect("engine renders valid JSON"),
        }),
        Err(e) => {
            serde_json::json!({"status": "error", "errorType": "execution", "error": e.to_string()})
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_set_matches_prometheus_on_the_same_samples() {
    let dir = tempfile::tempdir().unwrap();
    let Some(prom) = start_prometheus(dir.path()) else {
        return;
    };
    let http = client(None).unwrap();
    wait_ready(&http, &prom.base).await;

    // One hour of 3 hosts (about 1000 series), ending on a whole minute in the recent past
    // so Prometheus's head accepts every sample.
    let w = Workload {
        seed: 42,
        hosts: 3,
        ..Workload::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let end = now - now.rem_euclid(60_000);
    let start = end - 3_600_000;

    let mut reqs = w.requests(start, end, 1, 8);
    let bodies: Vec<Body> = std::iter::from_fn(|| reqs.next_with_lane())
        .map(|(lane, r)| Body {
            samples: sample_count(&r),
            bytes: encode_body(&r).into(),
            lane,
        })
        .collect();
    let report = send_bodies(
        &http,
        &format!("{}/api/v1/write", prom.base),
        bodies.into_iter(),
        &SendOptions::default(),
    )
    .await
    .expect("prometheus accepts the workload");
    assert_eq!(report.samples as usize, w.series_count() * 240);

    // The same samples into bongsu's store.
    let db = Tsdb::open(dir.path().join("tsdb"), bongsu_tsdb::Options::default()).unwrap();
    for s in w.series() {
        let labels =
            Labels::from_pairs(s.labels().iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap();
        let samples: Vec<Sample> = s
            .timestamps(start, end, w.interval_ms)
            .map(|t| Sample::new(t, s.value_at(t, w.interval_ms)))
            .collect();
        db.append(&labels, &samples).unwrap();
    }
    let storage = TsdbStorage(db);
    let engine = Engine::new(EngineOptions::default());

    // Instant queries at the end, range queries over the last 50 minutes at 1-minute steps.
    let mut passed = 0;
    let mut allowed = 0;
    let mut failed = Vec::new();
    let mut total = 0;
    let mut points = 0;
    for d in QUERIES {
        for q in [
            Query::Instant {
                expr: d.expr.to_owned(),
                time_ms: end - 7_000,
            },
            Query::Range {
                expr: d.expr.to_owned(),
                start_ms: end - 3_000_000,
                end_ms: end,
                step_ms: 60_000,
            },
        ] {
            total += 1;
            let kind = if matches!(q, Query::Instant { .. }) {
                "instant"
            } else {
                "range"
            };
            let expected = run_query(&http, &prom.base, &q).await.unwrap();
            let actual = bongsu_answer(&engine, &storage, &q);
            match compare_answers(&expected, &actual) {
                Ok(n) => {
                    passed += 1;
                    points += n;
                    println!("PASS {kind:7} {:22} {n} points", d.name);
                }
                Err(m) => {
                    println!("DIFF {kind:7} {:22} {}: {m}", d.name, d.expr);
                    // A listed difference must vanish with the stated equivalent expression.
                    let known = KNOWN_DIFFERENCES.iter().find(|k| k.0 == d.name);
                    let explained = match known {
                        Some((_, equivalent, _)) => {
                            let alt = bongsu_answer(&engine, &storage, &with_expr(&q, equivalent));
                            match compare_answers(&expected, &alt) {
                                Ok(_) => true,
                                Err(m2) => {
                                    println!("     with {equivalent}: still differs: {m2}");
                                    false
                                }
                            }
                        }
                        None => false,
                    };
                    if explained {
                        allowed += 1;
                        println!("     allowed: the listed 2.x/3.x difference, checked");
                    } else {
                        failed.push((d.name, kind, m));
                    }
                }
            }
        }
    }
    println!(
        "metrics diff vs prometheus 2.42: {passed}/{total} equal, {allowed} listed differences, {} unexplained ({} queries, instant and range; {points} points compared)",
        failed.len(),
        QUERIES.len()
    );
    for (name, _, reason) in KNOWN_DIFFERENCES {
        println!("listed difference {name}: {reason}");
    }
    assert!(QUERIES.len() >= 50);
    assert!(failed.is_empty(), "differences: {failed:#?}");
}
