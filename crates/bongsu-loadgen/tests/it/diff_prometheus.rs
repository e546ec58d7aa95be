//! Differential test of bongsu's store and PromQL engine against a real Prometheus 2.42: the
//! same generated hour of samples goes to Prometheus by remote_write and into a `Tsdb`
//! queried through `bongsu_promql::Engine`; every query of the set, instant and range, must
//! give the same series, timestamps and values (1e-9 relative).

use bongsu_loadgen::{
    client, diff_query_set, encode_body, sample_count, send_bodies, Body, HttpTarget,
    PrometheusPeer, Query, QueryTarget, SendOptions, Workload, KNOWN_DIFFERENCES, QUERIES,
};
use bongsu_model::{Labels, Sample};
use bongsu_promql::{to_prometheus_json, Engine, EngineOptions, SelectHints, Storage};
use bongsu_tsdb::Tsdb;

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

/// bongsu's store and engine, in process, answering in the API's JSON shape.
struct InProcess {
    engine: Engine,
    storage: TsdbStorage,
}

impl QueryTarget for InProcess {
    async fn answer(&self, q: &Query) -> bongsu_loadgen::Result<serde_json::Value> {
        let res = match q {
            Query::Instant { expr, time_ms } => {
                self.engine.instant_query(&self.storage, expr, *time_ms)
            }
            Query::Range {
                expr,
                start_ms,
                end_ms,
                step_ms,
            } => self
                .engine
                .range_query(&self.storage, expr, *start_ms, *end_ms, *step_ms),
        };
        Ok(match res {
            Ok(r) => serde_json::json!({
                "status": "success",
                "data": serde_json::from_str::<serde_json::Value>(&to_prometheus_json(&r.value))
                    .expect("engine renders valid JSON"),
            }),
            Err(e) => {
                serde_json::json!({"status": "error", "errorType": "execution", "error": e.to_string()})
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_set_matches_prometheus_on_the_same_samples() {
    let dir = tempfile::tempdir().unwrap();
    if !PrometheusPeer::installed() {
        assert!(
            std::env::var_os("BONGSU_REQUIRE_PEERS").is_none(),
            "prometheus is not installed but BONGSU_REQUIRE_PEERS is set: apt-get install prometheus"
        );
        eprintln!("skipping: prometheus is not installed (apt-get install prometheus)");
        return;
    }
    let http = client(None).unwrap();
    let prom = PrometheusPeer::start(dir.path(), &http).await.unwrap();

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
    let bongsu = InProcess {
        engine: Engine::new(EngineOptions::default()),
        storage: TsdbStorage(db),
    };
    let reference = HttpTarget {
        client: http.clone(),
        base: prom.base.clone(),
    };
    // Instant queries just before the end, range queries over the last 50 minutes at
    // 1-minute steps.
    let r = diff_query_set(
        &reference,
        &bongsu,
        end - 7_000,
        (end - 3_000_000, end, 60_000),
    )
    .await
    .unwrap();
    for l in &r.lines {
        println!("{l}");
    }
    println!(
        "metrics diff (store + engine in process) vs prometheus 2.42: {}/{} equal, {} listed differences, {} unexplained ({} queries, instant and range; {} points compared)",
        r.passed,
        r.total,
        r.allowed,
        r.failed.len(),
        QUERIES.len(),
        r.points
    );
    for k in KNOWN_DIFFERENCES {
        println!("listed difference {}: {}", k.name, k.reason);
    }
    assert!(QUERIES.len() >= 50);
    assert_eq!(
        r.passed + r.allowed,
        r.total,
        "differences: {:#?}",
        r.failed
    );
}
