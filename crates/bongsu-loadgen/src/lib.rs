//! bongsu's metrics load generator and differential-test helpers.
//!
//! - [`Workload`]: node_exporter-like series per host (CPU, memory, filesystems, disks,
//!   network, an application's request counters and classic latency histogram, the
//!   exporter's self-report), values computed in closed form from a seed so any range can be
//!   generated in any order and regenerated identically: counters that rise with a
//!   day/night rate and per-scrape jitter and reset at reboots and restarts, gauges with
//!   waves, trends and noise, filling disks that get cleaned up.
//! - [`Workload::requests`] and [`encode_body`]: the remote_write 1.0 requests of a time
//!   range; [`send_bodies`]: posts them concurrently, bounded, retrying 429/503.
//! - [`QUERIES`]: the dashboard and alert-rule query set; [`run_query`] asks a
//!   Prometheus-compatible API; [`compare_answers`] compares two answers within tolerance.
//! - [`diff_query_set`]: the query set against a reference and a target, with the
//!   [`KNOWN_DIFFERENCES`] checked; [`PrometheusPeer`] runs a real Prometheus for it.
//! - [`write_openmetrics`]: the same samples as OpenMetrics text for backfilling tools.

mod compare;
mod diff;
mod error;
mod openmetrics;
mod peer;
mod queries;
mod send;
mod workload;

pub use compare::{compare_answers, values_equal, ABS_TOLERANCE, REL_TOLERANCE};
pub use diff::{
    diff_query_set, DiffReport, HttpTarget, KnownDifference, QueryTarget, KNOWN_DIFFERENCES,
};
pub use error::{Error, Result};
pub use openmetrics::write_openmetrics;
pub use peer::PrometheusPeer;
pub use queries::{QueryDef, QUERIES};
pub use send::{client, run_query, send_bodies, Body, Query, SendOptions, SendReport};
pub use workload::{encode_body, sample_count, Requests, SeriesDef, Workload, SERIES_PER_HOST};
