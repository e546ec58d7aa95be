//! The scrape loop against test HTTP targets: records on the topic, request headers,
//! staleness, failures, OpenMetrics, file discovery, reload and shutdown.

use std::sync::Arc;
use std::time::Duration;

use bongsu_scrape::{ScrapeConfig, ScrapeOptions, Scraper, ACCEPT_HEADER};

use crate::common::{find, stale, stream, wait_for, StreamSink, TestTarget};

fn config(yaml: &str, dir: &std::path::Path) -> ScrapeConfig {
    ScrapeConfig::parse(yaml, dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_with_prometheus_headers_and_marks_vanished_series_stale() {
    let t = TestTarget::start("# TYPE a gauge\na 1\nb{x=\"1\"} 2\n").await;
    let s = stream().await;
    let yaml = format!(
        "global: {{scrape_interval: 200ms}}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{}'], labels: {{env: test}}}}]\n",
        t.addr
    );
    let scraper = Scraper::start(
        config(&yaml, std::path::Path::new("/")),
        Arc::new(StreamSink(s.clone())),
        ScrapeOptions::default(),
    );
    let inst = t.addr.as_str();
    let recs = wait_for(&s, "a first scrape", |r| !r.is_empty()).await;
    let first = &recs[0];
    let labels = [("job", "app"), ("instance", inst), ("env", "test")];
    assert_eq!(find(first, "a", &labels).unwrap().value, 1.0);
    assert_eq!(find(first, "b", &[("x", "1")]).unwrap().value, 2.0);
    assert_eq!(find(first, "up", &labels).unwrap().value, 1.0);
    assert_eq!(
        find(first, "scrape_samples_scraped", &labels)
            .unwrap()
            .value,
        2.0
    );
    assert_eq!(
        find(first, "scrape_series_added", &labels).unwrap().value,
        2.0
    );
    assert!(find(first, "scrape_duration_seconds", &labels).is_some());
    assert_eq!(first.metadata[0].family, "a");
    {
        let st = t.state.lock().unwrap();
        let h = st.last_headers.as_ref().unwrap();
        assert_eq!(h["accept"], ACCEPT_HEADER);
        assert!(h["accept"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        assert_eq!(h["x-prometheus-scrape-timeout-seconds"], "0.2");
        assert_eq!(h["accept-encoding"], "gzip");
        assert!(h["user-agent"].to_str().unwrap().starts_with("bongsu/"));
    }
    // b disappears: the next scrape carries a staleness marker for it, once.
    let n = crate::common::records(&s).await.len();
    t.set_body("# TYPE a gauge\na 3\n");
    let recs = wait_for(&s, "a staleness marker for b", |r| {
        r[n..].iter().any(|rec| !stale(rec).is_empty())
    })
    .await;
    let i = recs.iter().position(|rec| !stale(rec).is_empty()).unwrap();
    let marked = stale(&recs[i]);
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].metric_name(), Some("b"));
    assert_eq!(marked[0].get("instance"), Some(inst));
    let ts_up = find(&recs[i], "up", &[]).unwrap().timestamp_ms;
    assert_eq!(find(&recs[i], "b", &[]).unwrap().timestamp_ms, ts_up);
    let recs = wait_for(&s, "two more scrapes", |r| r.len() >= i + 3).await;
    assert!(recs[i + 1..].iter().all(|rec| stale(rec).is_empty()));
    // Timestamps increase scrape to scrape.
    let ts: Vec<i64> = recs
        .iter()
        .map(|r| find(r, "up", &[]).unwrap().timestamp_ms)
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
    let stats = scraper.stats().snapshot();
    assert_eq!(stats[0].job, "app");
    assert_eq!((stats[0].targets, stats[0].targets_up), (1, 1));
    assert!(stats[0].scrapes_total >= 3);
    scraper.shutdown().await;
    // After shutdown nothing more is appended, and no staleness markers were written.
    let after = crate::common::records(&s).await;
    let requests = t.state.lock().unwrap().requests;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(crate::common::records(&s).await.len(), after.len());
    assert_eq!(t.state.lock().unwrap().requests, requests);
    assert!(stale(after.last().unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_report_down_and_openmetrics_is_strict() {
    let t = TestTarget::start("a 1\n").await;
    let s = stream().await;
    let yaml = format!(
        "scrape_configs:\n  - job_name: app\n    scrape_interval: 200ms\n    body_size_limit: 1KB\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr
    );
    let scraper = Scraper::start(
        config(&yaml, std::path::Path::new("/")),
        Arc::new(StreamSink(s.clone())),
        ScrapeOptions::default(),
    );
    let up = |rec: &bongsu_model::MetricsRecord| find(rec, "up", &[]).map(|x| x.value);
    wait_for(&s, "up", |r| r.iter().any(|x| up(x) == Some(1.0))).await;
    // HTTP 500: down, and the series of the last good scrape go stale.
    t.set(|st| st.status = 500);
    let recs = wait_for(&s, "up == 0 after a 500", |r| {
        r.iter().any(|x| up(x) == Some(0.0))
    })
    .await;
    let down = recs.iter().find(|x| up(x) == Some(0.0)).unwrap();
    assert_eq!(stale(down).len(), 1);
    assert_eq!(scraper.stats().snapshot()[0].targets_up, 0);
    // The OpenMetrics content type makes the parser strict: no "# EOF" is an error...
    t.set(|st| {
        st.status = 200;
        st.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8".into();
        st.body = "# TYPE c counter\nc_total 1\n".into();
    });
    let n = crate::common::records(&s).await.len();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let r = crate::common::records(&s).await;
            if r.len() >= n + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let r = crate::common::records(&s).await;
    assert!(r[n + 1..].iter().all(|x| up(x) == Some(0.0)));
    // ...and with it the scrape succeeds.
    t.set(|st| st.body = "# TYPE c counter\nc_total 1\n# EOF\n".into());
    let recs = wait_for(&s, "an OpenMetrics scrape", |r| {
        r.iter().any(|x| find(x, "c_total", &[]).is_some())
    })
    .await;
    assert_eq!(up(recs.last().unwrap()), Some(1.0));
    // A body over body_size_limit fails the scrape.
    t.set(|st| {
        st.content_type = "text/plain".into();
        st.body = "a 1\n".repeat(1000);
    });
    let n = recs.len();
    wait_for(&s, "a failure over the body limit", |r| {
        r[n..].iter().any(|x| up(x) == Some(0.0))
    })
    .await;
    scraper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_discovery_adds_and_removes_targets_with_staleness() {
    let a = TestTarget::start("m 1\n").await;
    let b = TestTarget::start("m 2\n").await;
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("sd");
    std::fs::create_dir(&sd).unwrap();
    let write = |name: &str, targets: &[&str]| {
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let tmp = sd.join(".tmp");
        std::fs::write(
            &tmp,
            format!(
                "[{{\"targets\": [{}], \"labels\": {{\"team\": \"a\"}}}}]",
                list.join(",")
            ),
        )
        .unwrap();
        std::fs::rename(&tmp, sd.join(name)).unwrap();
    };
    write("web.json", &[&a.addr]);
    let yaml = "scrape_configs:\n  - job_name: web\n    scrape_interval: 200ms\n    file_sd_configs: [{files: ['sd/*.json']}]\n    relabel_configs:\n      - {source_labels: [__meta_filepath], regex: '.*/(.*)\\.json', target_label: sdfile}\n";
    let s = stream().await;
    let scraper = Scraper::start(
        config(yaml, dir.path()),
        Arc::new(StreamSink(s.clone())),
        ScrapeOptions::default(),
    );
    let has = |r: &[bongsu_model::MetricsRecord], addr: &str| {
        r.iter().any(|x| {
            find(
                x,
                "m",
                &[("instance", addr), ("team", "a"), ("sdfile", "web")],
            )
            .is_some_and(|v| !v.is_stale())
        })
    };
    wait_for(&s, "target a", |r| has(r, &a.addr)).await;
    // A second target appears in the file.
    write("web.json", &[&a.addr, &b.addr]);
    wait_for(&s, "target b", |r| has(r, &b.addr)).await;
    assert_eq!(scraper.stats().snapshot()[0].targets, 2);
    // Target a leaves: all its series, up included, get staleness markers.
    write("web.json", &[&b.addr]);
    let recs = wait_for(&s, "staleness markers for target a", |r| {
        r.iter()
            .any(|x| find(x, "up", &[("instance", &a.addr)]).is_some_and(|v| v.is_stale()))
    })
    .await;
    let end = recs
        .iter()
        .find(|x| find(x, "up", &[("instance", &a.addr)]).is_some_and(|v| v.is_stale()))
        .unwrap();
    assert!(find(end, "m", &[("instance", &a.addr)]).unwrap().is_stale());
    assert_eq!(end.series.len(), 6, "m and the five report series");
    assert_eq!(scraper.stats().snapshot()[0].targets, 1);
    let requests_a = a.state.lock().unwrap().requests;
    // b keeps being scraped; a does not.
    let n = recs.len();
    wait_for(&s, "more scrapes of b", |r| {
        r[n..]
            .iter()
            .filter(|x| find(x, "m", &[("instance", &b.addr)]).is_some())
            .count()
            >= 2
    })
    .await;
    assert_eq!(a.state.lock().unwrap().requests, requests_a);
    // The discovery file is deleted: b goes too.
    std::fs::remove_file(sd.join("web.json")).unwrap();
    wait_for(&s, "staleness markers for target b", |r| {
        r.iter()
            .any(|x| find(x, "up", &[("instance", &b.addr)]).is_some_and(|v| v.is_stale()))
    })
    .await;
    assert_eq!(scraper.stats().snapshot()[0].targets, 0);
    scraper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_stops_removed_jobs_and_starts_new_ones() {
    let a = TestTarget::start("m 1\n").await;
    let s = stream().await;
    let job = |name: &str| {
        format!(
            "scrape_configs:\n  - job_name: {name}\n    scrape_interval: 200ms\n    static_configs: [{{targets: ['{}']}}]\n",
            a.addr
        )
    };
    let dir = std::path::Path::new("/");
    let scraper = Scraper::start(
        config(&job("one"), dir),
        Arc::new(StreamSink(s.clone())),
        ScrapeOptions::default(),
    );
    wait_for(&s, "job one", |r| {
        r.iter().any(|x| find(x, "up", &[("job", "one")]).is_some())
    })
    .await;
    scraper.reload(config(&job("two"), dir)).await;
    let recs = wait_for(&s, "job two", |r| {
        r.iter().any(|x| find(x, "up", &[("job", "two")]).is_some())
    })
    .await;
    // Job one ended with staleness markers before job two started.
    let end = recs
        .iter()
        .position(|x| find(x, "up", &[("job", "one")]).is_some_and(|v| v.is_stale()))
        .expect("staleness markers for job one");
    let start = recs
        .iter()
        .position(|x| find(x, "up", &[("job", "two")]).is_some())
        .unwrap();
    assert!(end < start);
    let snap = scraper.stats().snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].job, "two");
    scraper.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_params_are_sent() {
    let basic = TestTarget::start("m 1\n").await;
    let bearer = TestTarget::start("m 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let yaml = format!(
        r#"
scrape_configs:
  - job_name: basic
    scrape_interval: 200ms
    params: {{module: [a, b]}}
    basic_auth: {{username: me, password_file: pw}}
    static_configs: [{{targets: ['{}']}}]
    relabel_configs:
      - {{target_label: __param_module, replacement: first}}
  - job_name: bearer
    scrape_interval: 200ms
    bearer_token: tok
    static_configs: [{{targets: ['{}']}}]
"#,
        basic.addr, bearer.addr
    );
    let s = stream().await;
    let scraper = Scraper::start(
        config(&yaml, dir.path()),
        Arc::new(StreamSink(s.clone())),
        ScrapeOptions::default(),
    );
    wait_for(&s, "both jobs scraped", |r| {
        ["basic", "bearer"].iter().all(|j| {
            r.iter()
                .any(|x| find(x, "up", &[("job", j)]).is_some_and(|v| v.value == 1.0))
        })
    })
    .await;
    scraper.shutdown().await;
    let st = basic.state.lock().unwrap();
    // "me:s3cret" in base64; the file's trailing newline is not part of the password.
    assert_eq!(
        st.last_headers.as_ref().unwrap()["authorization"],
        "Basic bWU6czNjcmV0"
    );
    // __param_module replaced the first value; the second stays.
    assert_eq!(st.last_query.as_deref(), Some("module=first&module=b"));
    let st = bearer.state.lock().unwrap();
    assert_eq!(
        st.last_headers.as_ref().unwrap()["authorization"],
        "Bearer tok"
    );
    assert_eq!(st.last_query, None);
}
