//! Wiring of the scraper (`bongsu-scrape`): when `scrape.config_file` is set, the server loads
//! that Prometheus-format file at start, scrapes its targets and appends one record per scrape
//! to the `metrics` topic. SIGHUP reloads the file (a bad file is logged and the running
//! configuration kept). The scraper's per-job numbers are a metrics source, and it is stopped
//! by a shutdown hook before the stream is closed.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bongsu_model::MetricsRecord;
use bongsu_scrape::{MetricsSink, ScrapeConfig, ScrapeOptions, ScrapeStats, Scraper};
use bongsu_stream::Stream;

use crate::clock::Clock;
use crate::metrics::{MetricKind, MetricsSource, MetricsWriter};
use crate::state::AppState;
use crate::{Error, Result};

/// Appends each scrape as one record of the `metrics` topic.
struct StreamSink {
    stream: Arc<dyn Stream>,
    clock: Arc<dyn Clock>,
    /// Partitions of the `metrics` topic, described on the first scrape.
    partitions: std::sync::OnceLock<u32>,
}

#[async_trait]
impl MetricsSink for StreamSink {
    async fn append(&self, record: MetricsRecord) -> bongsu_scrape::Result<()> {
        let partitions =
            crate::metrics_partition::metrics_partitions(self.stream.as_ref(), &self.partitions)
                .await
                .map_err(bongsu_scrape::Error::sink)?;
        // Each series to its own partition, so the store applies it in order.
        let parts = crate::metrics_partition::encode_by_partition(record, partitions);
        let now = self.clock.now_ms();
        match crate::metrics_partition::append_parts(self.stream.as_ref(), parts, now).await {
            Ok(()) => Ok(()),
            Err(bongsu_stream::Error::RecordTooLarge { size, limit, .. }) => Err(
                bongsu_scrape::Error::sink(format!(
                    "the scrape encodes to {size} bytes, over the metrics topic's max.message.bytes ({limit}): drop series with metric_relabel_configs or raise stream.max_message_bytes (new topics only)"
                )),
            ),
            Err(e) => Err(bongsu_scrape::Error::sink(e)),
        }
    }
}

/// The scraper's clock is the server's.
struct ServerClock(Arc<dyn Clock>);

impl bongsu_scrape::Clock for ServerClock {
    fn now_ms(&self) -> i64 {
        self.0.now_ms()
    }
}

async fn load(path: PathBuf) -> Result<ScrapeConfig> {
    tokio::task::spawn_blocking(move || ScrapeConfig::load(&path))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
        .map_err(|e| Error::ConfigValue {
            key: "scrape.config_file".to_owned(),
            message: e.to_string(),
        })
}

/// Starts scraping when `scrape.config_file` is set: loads the file (an invalid one fails the
/// start), registers the self-metrics and a shutdown hook, and reloads on SIGHUP.
pub(crate) async fn start(state: &AppState, stream: Arc<dyn Stream>) -> Result<()> {
    let path = state.config().scrape.config_file.clone();
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    let config = load(path.clone()).await?;
    let jobs = config.jobs.len();
    let sink = Arc::new(StreamSink {
        stream,
        clock: state.clock().clone(),
        partitions: std::sync::OnceLock::new(),
    });
    let opts = ScrapeOptions {
        limits: state.config().ingest.limits(),
        clock: Arc::new(ServerClock(state.clock().clone())),
    };
    let scraper = Arc::new(Scraper::start(config, sink, opts));
    state.add_metrics_source(Arc::new(ScrapeMetricsSource(scraper.stats())));
    let reloader = tokio::spawn(reload_on_sighup(scraper.clone(), path.clone()));
    state.add_shutdown_hook("scrape", move || async move {
        reloader.abort();
        scraper.shutdown().await;
    });
    tracing::info!(file = %path.display(), jobs, "scraping");
    Ok(())
}

#[cfg(unix)]
async fn reload_on_sighup(scraper: Arc<Scraper>, path: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: scrape config reload is off");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match load(path.clone()).await {
            Ok(config) => scraper.reload(config).await,
            Err(e) => {
                tracing::error!(error = %e, "scrape config not reloaded: keeping the running one")
            }
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_scraper: Arc<Scraper>, _path: PathBuf) {}

/// The scraper's per-job numbers on `/metrics`.
struct ScrapeMetricsSource(Arc<ScrapeStats>);

impl MetricsSource for ScrapeMetricsSource {
    fn collect(&self, out: &mut MetricsWriter) {
        let snap = self.0.snapshot();
        type Field = fn(&bongsu_scrape::JobStats) -> u64;
        let families: [(&str, &str, MetricKind, Field); 6] = [
            (
                "bongsu_scrape_targets",
                "Targets being scraped, by job.",
                MetricKind::Gauge,
                |j| j.targets,
            ),
            (
                "bongsu_scrape_targets_up",
                "Targets whose last scrape succeeded and was stored, by job.",
                MetricKind::Gauge,
                |j| j.targets_up,
            ),
            (
                "bongsu_scrape_scrapes_total",
                "Scrapes done, by job.",
                MetricKind::Counter,
                |j| j.scrapes_total,
            ),
            (
                "bongsu_scrape_scrapes_failed_total",
                "Scrapes that failed (target down, bad response, limit exceeded, not stored), by job.",
                MetricKind::Counter,
                |j| j.scrapes_failed_total,
            ),
            (
                "bongsu_scrape_appends_failed_total",
                "Scrapes whose record the metrics topic refused, by job.",
                MetricKind::Counter,
                |j| j.appends_failed_total,
            ),
            (
                "bongsu_scrape_samples_appended_total",
                "Samples appended by scrapes (staleness markers and report series included), by job.",
                MetricKind::Counter,
                |j| j.samples_appended_total,
            ),
        ];
        for (name, help, kind, field) in families {
            out.family(name, help, kind);
            for j in &snap {
                out.sample(name, &[("job", &j.job)], field(j) as f64);
            }
        }
        let name = "bongsu_scrape_duration_seconds";
        out.family(
            name,
            "Time to scrape a target and store the result, by job.",
            MetricKind::Histogram,
        );
        for j in &snap {
            for (le, n) in bongsu_scrape::DURATION_BUCKETS
                .iter()
                .zip(&j.duration_buckets)
            {
                let le = le.to_string();
                out.sample(
                    "bongsu_scrape_duration_seconds_bucket",
                    &[("job", &j.job), ("le", &le)],
                    *n as f64,
                );
            }
            out.sample(
                "bongsu_scrape_duration_seconds_bucket",
                &[("job", &j.job), ("le", "+Inf")],
                j.duration_count as f64,
            );
            out.sample(
                "bongsu_scrape_duration_seconds_sum",
                &[("job", &j.job)],
                j.duration_sum_seconds,
            );
            out.sample(
                "bongsu_scrape_duration_seconds_count",
                &[("job", &j.job)],
                j.duration_count as f64,
            );
        }
    }
}
