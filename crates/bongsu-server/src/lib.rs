//! bongsu's server: configuration, the HTTP listener, authentication, self-metrics and
//! graceful shutdown. It wires parts together and holds no business logic.
//!
//! - [`Config`] (with [`StreamSettings`]): TOML + `BONGSU_*` environment + flags.
//! - [`Server::start`] → [`Server::serve`]: what the binary calls.
//! - [`router`] and [`run`]: the testable pieces (no socket / an already-bound listener).
//! - [`AppState`]: shared state; the seam where other parts add a [`MetricsSource`] and
//!   shutdown hooks.
//! - [`ApiError`] / [`ErrorCode`]: the one place errors become HTTP responses.
//! - Receivers: `POST /api/v1/write` (remote_write 1.0) and `POST /loki/api/v1/push` decode
//!   with `bongsu-ingest` and append one record to the `metrics` / `logs` topic of the stream
//!   given to [`AppState::attach_stream`], answering 204 once it is durable.
//! - Syslog receivers ([`SyslogReceiver`], `[syslog]` in [`Config`]): UDP and TCP, batched
//!   into the `logs` topic; off unless a listen address is configured.
//! - Agents: `POST /api/v1/agent/push` (batches of docs/formats/agent.md, de-duplicated by
//!   agent, epoch and sequence, see [`recover_agents`]) and `/api/v1/agents` (list, enroll,
//!   revoke).
//! - The embedded stream is opened under `<data_dir>/stream` at start-up, its counters and
//!   consumer lag are a metrics source, and it is flushed and closed by a shutdown hook.
//! - Scraping: with `scrape.config_file` set, `bongsu-scrape` scrapes the targets of that
//!   Prometheus-format file into the `metrics` topic (reloaded on SIGHUP).

mod agents;
pub mod allocator;
mod api_error;
mod auth;
mod clock;
mod config;
mod error;
mod idle;
mod ingest;
mod logs_config;
mod logs_consumer;
mod logs_partition;
mod loki_api;
mod metrics;
mod metrics_partition;
mod metrics_storage;
mod process;
mod prom_api;
mod routes;
mod scrape;
mod server;
mod state;
mod stream;
mod syslog;
mod tsdb_admin;
mod tsdb_consumer;

pub use agents::recover_agents;
pub use api_error::{ApiError, ErrorCode};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    AuthConfig, Compression, Config, IngestSettings, QuerySettings, ScrapeSettings, ServerConfig,
    StreamSettings, TsdbSettings, ENV_PREFIX, MAX_TOKEN_CACHE_TTL,
};
pub use error::{Error, Result};
pub use logs_config::LogsSettings;
pub use metrics::{
    render as render_metrics, BuildInfo, Counter, CounterVec, Gauge, GaugeVec, Histogram,
    HistogramVec, MetricKind, MetricsSource, MetricsWriter, DURATION_BUCKETS, TEXT_CONTENT_TYPE,
};
pub use process::ProcessMetrics;
pub use routes::router;
pub use server::{run, shutdown_signal, Server};
pub use state::AppState;
pub use stream::{topic_config, BUILTIN_TOPICS};
pub use syslog::{SyslogReceiver, SyslogSettings};
