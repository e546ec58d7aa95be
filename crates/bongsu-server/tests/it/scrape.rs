//! The server with `scrape.config_file`: scrapes land in the `metrics` topic, the scraper's
//! numbers are on `/metrics`, an invalid scrape file stops the start with the reason.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use bongsu_model::MetricsRecord;
use bongsu_server::{router, Config, Server};
use bongsu_stream::FetchOptions;
use tower::ServiceExt as _;

fn config(dir: &std::path::Path, scrape_file: &std::path::Path) -> Config {
    Config::from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[auth]\nmetrics_anonymous = true\n[stream]\ndefault_partitions = 1\n[scrape]\nconfig_file = {:?}\n",
        dir.join("data").display().to_string(),
        scrape_file.display().to_string()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_land_in_the_metrics_topic_and_self_metrics_are_served() {
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = target.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { "# TYPE m gauge\nm 42\n" }),
    );
    let target_task = tokio::spawn(async move {
        let _ = axum::serve(target, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.yml");
    std::fs::write(
        &file,
        format!("scrape_configs:\n  - job_name: t\n    scrape_interval: 200ms\n    static_configs: [{{targets: ['{addr}']}}]\n"),
    )
    .unwrap();
    let server = Server::start(config(dir.path(), &file)).await.unwrap();
    let state = server.state().clone();
    let stream = state.stream().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let record = loop {
        let opts = FetchOptions {
            fetch_max_wait_ms: 100,
            ..FetchOptions::default()
        };
        let got = stream.fetch("metrics", 0, 0, opts).await.unwrap();
        if let Some(r) = got.records.first() {
            break MetricsRecord::decode(&r.value).unwrap();
        }
        assert!(Instant::now() < deadline, "no scrape in the metrics topic");
    };
    let m = record
        .series
        .iter()
        .find(|s| s.labels.metric_name() == Some("m"))
        .unwrap();
    assert_eq!(m.labels.get("job"), Some("t"));
    assert_eq!(m.labels.get("instance"), Some(addr.to_string().as_str()));
    assert_eq!(m.samples[0].value, 42.0);
    let up = record
        .series
        .iter()
        .find(|s| s.labels.metric_name() == Some("up"))
        .unwrap();
    assert_eq!(up.samples[0].value, 1.0);

    let resp = router(state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains("bongsu_scrape_targets{job=\"t\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE bongsu_scrape_duration_seconds histogram"));
    assert!(text.contains("bongsu_scrape_scrapes_total{job=\"t\"}"));

    // Shutdown stops the scraper (its hook runs before the stream's) and finishes cleanly.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    tx.send(()).unwrap();
    serving.await.unwrap().unwrap();
    target_task.abort();
}

#[tokio::test]
async fn an_invalid_scrape_file_stops_the_start_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape.yml");
    std::fs::write(
        &file,
        "scrape_configs:\n  - job_name: t\n    scrape_intervall: 1s\n",
    )
    .unwrap();
    let err = Server::start(config(dir.path(), &file))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("scrape.config_file"), "{err}");
    assert!(err.contains("unknown field `scrape_intervall`"), "{err}");
    let missing = dir.path().join("missing.yml");
    let err = Server::start(config(dir.path(), &missing))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read scrape config"), "{err}");
}
