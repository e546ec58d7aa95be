//! Differential test of the real binary against a real Prometheus 2.42: the same generated
//! hour of samples (3 hosts, about 1000 node_exporter-like series) is sent by remote_write
//! to both; then the dashboard and alert query set (63 queries, each as an instant and a
//! range query) must give equal answers over the Prometheus HTTP API: the same series, the
//! same timestamps, values within 1e-9 relative. Allowed differences are listed in
//! `bongsu_loadgen::KNOWN_DIFFERENCES` with their reason, and each is checked.

use std::time::{Duration, Instant};

use bongsu_loadgen::{
    client, diff_query_set, encode_body, run_query, sample_count, send_bodies, Body, HttpTarget,
    PrometheusPeer, Query, SendOptions, Workload, KNOWN_DIFFERENCES, QUERIES,
};

use super::Running;

#[test]
fn query_api_matches_prometheus_on_the_same_samples() {
    if !PrometheusPeer::installed() {
        assert!(
            std::env::var_os("BONGSU_REQUIRE_PEERS").is_none(),
            "prometheus is not installed but BONGSU_REQUIRE_PEERS is set: apt-get install prometheus"
        );
        eprintln!("skipping: prometheus is not installed (apt-get install prometheus)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(&dir.path().join("bongsu"));
    server.wait_ready();
    let token = server
        .admin_token
        .clone()
        .expect("first start prints an admin token");
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let plain = client(None).unwrap();
        let authed = client(Some(&token)).unwrap();
        let prom = PrometheusPeer::start(&prom_dir, &plain).await.unwrap();
        let bongsu_base = format!("http://{}", server.addr);

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
        let expected_samples = (w.series_count() * 240) as u64;
        for (http, base) in [(&plain, &prom.base), (&authed, &bongsu_base)] {
            let report = send_bodies(
                http,
                &format!("{base}/api/v1/write"),
                bodies.iter().cloned(),
                &SendOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{base} refused the workload: {e}"));
            assert_eq!(report.samples, expected_samples);
        }

        // bongsu acknowledges once the samples are durable in the stream; the store applies
        // them just after. Wait until every sample is queryable (the deadline is generous
        // for a loaded machine running the other end-to-end tests at the same time).
        let probe = Query::Instant {
            expr: "sum(count_over_time(node_time_seconds[2h]))".to_owned(),
            time_ms: end,
        };
        let want = format!("{}", w.hosts * 240);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let a = run_query(&authed, &bongsu_base, &probe).await.unwrap();
            if a["data"]["result"][0]["value"][1].as_str() == Some(want.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "bongsu did not make all samples queryable within 120 s: {a}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let reference = HttpTarget {
            client: plain.clone(),
            base: prom.base.clone(),
        };
        let target = HttpTarget {
            client: authed.clone(),
            base: bongsu_base.clone(),
        };
        let r = diff_query_set(&reference, &target, end - 7_000, (end - 3_000_000, end, 60_000))
            .await
            .unwrap();
        for l in &r.lines {
            println!("{l}");
        }
        println!(
            "metrics diff (bongsu binary, HTTP API) vs prometheus 2.42: {}/{} equal, {} listed differences, {} unexplained ({} queries, instant and range; {} points compared)",
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
        assert_eq!(r.passed + r.allowed, r.total, "differences: {:#?}", r.failed);
    });
}
