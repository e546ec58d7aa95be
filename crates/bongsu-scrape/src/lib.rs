//! bongsu's scraper: Prometheus-style scraping into the `metrics` topic.
//!
//! - [`ScrapeConfig`]: a `prometheus.yml`-format file (`global`, `scrape_configs` with static
//!   and file-based discovery, relabeling, limits, credentials), validated at load; unknown
//!   keys are refused with the key named.
//! - [`Scraper`]: one loop per target at a stable offset within its interval; each scrape
//!   appends one [`bongsu_model::MetricsRecord`] through a [`MetricsSink`]: the scraped samples
//!   with the target's labels, staleness markers for series that disappeared (all of them
//!   when the scrape failed or the target went away), and the synthetic series
//!   [`REPORT_SERIES`] (`up`, `scrape_duration_seconds`, …).
//! - [`ScrapeStats`]: per-job self-metrics for the server's `/metrics`.
//! - [`relabel`] / [`parse_relabel_rules`]: Prometheus relabeling, usable on its own.
//!
//! The crate does not know the server: the server implements [`MetricsSink`] over its stream.

mod config;
mod discovery;
mod duration;
mod error;
mod http;
mod manager;
mod relabel;
mod scrape;
mod sink;
mod stats;
mod target;

pub use config::{Auth, FileSdConfig, JobConfig, Scheme, ScrapeConfig, Secret, TargetGroup};
pub use error::{Error, Result};
pub use http::ACCEPT_HEADER;
pub use manager::{Clock, ScrapeOptions, Scraper, SystemClock};
pub use relabel::{parse_relabel_rules, relabel, RelabelAction, RelabelRule};
pub use scrape::REPORT_SERIES;
pub use sink::MetricsSink;
pub use stats::{JobStats, ScrapeStats, StatsSnapshot, DURATION_BUCKETS};
pub use target::Target;
