//! Scraping a real node_exporter 1.5 (Debian's `prometheus-node-exporter`, installed by
//! scripts/test-all.sh, which also sets BONGSU_REQUIRE_PEERS=1 so that a missing peer fails).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use bongsu_scrape::{ScrapeConfig, ScrapeOptions, Scraper};

use crate::common::{find, stream, wait_for, StreamSink};

/// A node_exporter child process, killed on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_node_exporter() -> Option<(Peer, String)> {
    let bin = "prometheus-node-exporter";
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = Command::new(bin)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--no-collector.systemd")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(c) => Some((Peer(c), format!("127.0.0.1:{port}"))),
        Err(e) if std::env::var_os("BONGSU_REQUIRE_PEERS").is_none() => {
            println!("skipped: cannot start {bin} ({e}); scripts/test-all.sh installs it");
            None
        }
        Err(e) => panic!("cannot start {bin}: {e}: install prometheus-node-exporter"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_node_exporter() {
    let Some((_peer, addr)) = start_node_exporter() else {
        return;
    };
    let s = stream().await;
    // Until node_exporter listens, scrapes fail with up == 0; wait for two good ones.
    let yaml = format!(
        "global: {{scrape_interval: 1s, external_labels: {{site: lab}}}}\nscrape_configs:\n  - job_name: node\n    static_configs: [{{targets: ['{addr}']}}]\n    metric_relabel_configs:\n      - {{source_labels: [__name__], regex: 'go_.*', action: drop}}\n"
    );
    let scraper = Scraper::start(
        ScrapeConfig::parse(&yaml, std::path::Path::new("/")).unwrap(),
        Arc::new(StreamSink(s.clone())),
        ScrapeOptions::default(),
    );
    let good = |x: &bongsu_model::MetricsRecord| find(x, "up", &[]).is_some_and(|v| v.value == 1.0);
    let recs = wait_for(&s, "two successful scrapes of node_exporter", |r| {
        r.iter().filter(|x| good(x)).count() >= 2
    })
    .await;
    scraper.shutdown().await;
    let rec = recs.iter().find(|x| good(x)).unwrap();
    let labels = [
        ("job", "node"),
        ("instance", addr.as_str()),
        ("site", "lab"),
    ];
    let scraped = find(rec, "scrape_samples_scraped", &labels).unwrap().value;
    let post = find(rec, "scrape_samples_post_metric_relabeling", &labels)
        .unwrap()
        .value;
    let samples = rec.series.len() - bongsu_scrape::REPORT_SERIES.len();
    println!(
        "node_exporter: {scraped} samples scraped, {post} kept after dropping go_*, {} families with metadata",
        rec.metadata.len()
    );
    assert!(scraped > 100.0, "{scraped} samples");
    assert!(post < scraped, "go_* series were dropped");
    assert_eq!(samples as f64, post);
    assert!(find(rec, "node_exporter_build_info", &labels).is_some());
    assert!(find(rec, "node_load1", &labels).is_some());
    assert!(find(rec, "go_goroutines", &[]).is_none());
    assert!(rec
        .series
        .iter()
        .all(|s| s.labels.get("job") == Some("node") && s.labels.get("site") == Some("lab")));
    assert!(rec.metadata.iter().any(|m| m.family == "node_load1"));
    // A second good scrape adds no series (node_exporter's set is stable over a second,
    // apart from the few whose label values change, such as a new process).
    let second = recs.iter().filter(|x| good(x)).nth(1).unwrap();
    let added = find(second, "scrape_series_added", &labels).unwrap().value;
    assert!(
        added < post / 2.0,
        "{added} series added on the second scrape"
    );
}
