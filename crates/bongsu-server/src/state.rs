//! The server's shared state and the seams for other parts: metrics sources and shutdown hooks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bongsu_state::StateStore;
use bongsu_stream::Stream;

use crate::agents::Agents;
use crate::auth::{Authenticator, Failure};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::ingest::Receivers;
use crate::metrics::{BuildInfo, CounterVec, HistogramVec, MetricsSource, DURATION_BUCKETS};
use crate::process::ProcessMetrics;
use crate::tsdb_consumer::MetricsStore;

type HookFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type HookFn = Box<dyn FnOnce() -> HookFuture + Send>;

/// A named step run once during shutdown, after in-flight requests have drained.
pub(crate) struct ShutdownHook {
    pub(crate) name: String,
    pub(crate) run: HookFn,
}

/// HTTP request metrics, filled by the tracking middleware.
#[derive(Debug)]
pub(crate) struct HttpMetrics {
    pub(crate) requests: Arc<CounterVec>,
    pub(crate) durations: Arc<HistogramVec>,
    pub(crate) auth_failures: Arc<CounterVec>,
}

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Arc<StateStore>,
    clock: Arc<dyn Clock>,
    auth: Authenticator,
    ready: AtomicBool,
    sources: RwLock<Vec<Arc<dyn MetricsSource>>>,
    http: HttpMetrics,
    hooks: Mutex<Vec<ShutdownHook>>,
    stream: OnceLock<Arc<dyn Stream>>,
    logs: OnceLock<Arc<crate::logs_consumer::Logs>>,
    receivers: Receivers,
    metrics_store: OnceLock<Arc<MetricsStore>>,
    agents: Agents,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("listen", &self.inner.config.server.listen)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over an open store, with the system clock. Not ready until [`crate::run`] starts
    /// serving.
    pub fn new(config: Config, store: Arc<StateStore>) -> AppState {
        AppState::with_clock(config, store, Arc::new(SystemClock))
    }

    /// Like [`AppState::new`] with a chosen clock (tests).
    pub fn with_clock(config: Config, store: Arc<StateStore>, clock: Arc<dyn Clock>) -> AppState {
        let ttl_ms = i64::try_from(config.auth.token_cache_ttl.as_millis()).unwrap_or(i64::MAX);
        let http = HttpMetrics {
            requests: Arc::new(CounterVec::new(
                "bongsu_http_requests_total",
                "HTTP requests answered, by route, method and status code.",
                &["route", "method", "code"],
            )),
            durations: Arc::new(HistogramVec::new(
                "bongsu_http_request_duration_seconds",
                "Time to answer HTTP requests, by route and method.",
                &["route", "method"],
                DURATION_BUCKETS,
            )),
            auth_failures: Arc::new(CounterVec::new(
                "bongsu_http_auth_failures_total",
                "Requests refused by authentication, by reason (missing, invalid, forbidden).",
                &["reason"],
            )),
        };
        let receivers = Receivers::new(config.ingest.max_inflight_requests, config.ingest.limits());
        let agents = Agents::new(config.ingest.max_inflight_requests);
        let sources: Vec<Arc<dyn MetricsSource>> = vec![
            Arc::new(BuildInfo),
            Arc::new(ProcessMetrics),
            http.requests.clone(),
            http.durations.clone(),
            http.auth_failures.clone(),
            receivers.requests.clone(),
            receivers.items.clone(),
            agents.pushes.clone(),
            agents.items.clone(),
        ];
        AppState {
            inner: Arc::new(Inner {
                auth: Authenticator::new(store.clone(), clock.clone(), ttl_ms),
                config,
                store,
                clock,
                ready: AtomicBool::new(false),
                sources: RwLock::new(sources),
                http,
                hooks: Mutex::new(Vec::new()),
                stream: OnceLock::new(),
                logs: OnceLock::new(),
                receivers,
                metrics_store: OnceLock::new(),
                agents,
            }),
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The state store.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.inner.store
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Adds a source of metrics to `/metrics` (e.g. the stream's counters).
    pub fn add_metrics_source(&self, source: Arc<dyn MetricsSource>) {
        self.inner
            .sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Registers a step to run at shutdown, after in-flight requests drained (e.g. flushing and
    /// closing the stream). Hooks run in registration order, each bounded by what is left of
    /// `server.shutdown_timeout`.
    pub fn add_shutdown_hook<F, Fut>(&self, name: &str, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let run: HookFn = Box::new(move || Box::pin(hook()) as HookFuture);
        self.inner
            .hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ShutdownHook {
                name: name.to_owned(),
                run,
            });
    }

    /// Attaches the stream the receivers append to (once; later calls are ignored and return
    /// false). Until then the receivers answer 503.
    pub fn attach_stream(&self, stream: Arc<dyn Stream>) -> bool {
        self.inner.stream.set(stream).is_ok()
    }

    /// The stream the receivers append to, once attached.
    pub fn stream(&self) -> Option<&Arc<dyn Stream>> {
        self.inner.stream.get()
    }

    /// Attaches the log store the Loki query API reads and the push receiver checks stream
    /// limits against (once; later calls are ignored). Until then the query API answers 503.
    pub(crate) fn attach_logs(&self, logs: Arc<crate::logs_consumer::Logs>) {
        let _ = self.inner.logs.set(logs);
    }

    /// The log store, once attached.
    pub(crate) fn logs(&self) -> Option<&Arc<crate::logs_consumer::Logs>> {
        self.inner.logs.get()
    }

    /// Whether `/-/ready` answers 200.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Flips readiness. [`crate::run`] sets it when serving starts and clears it on shutdown.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    /// Attaches the time-series store the query API reads (once).
    pub(crate) fn attach_metrics_store(&self, store: Arc<MetricsStore>) -> bool {
        self.inner.metrics_store.set(store).is_ok()
    }

    /// The time-series store, once attached.
    pub(crate) fn metrics_store(&self) -> Option<&Arc<MetricsStore>> {
        self.inner.metrics_store.get()
    }

    pub(crate) fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    pub(crate) fn receivers(&self) -> &Receivers {
        &self.inner.receivers
    }

    pub(crate) fn agents(&self) -> &Agents {
        &self.inner.agents
    }

    pub(crate) fn http_metrics(&self) -> &HttpMetrics {
        &self.inner.http
    }

    pub(crate) fn count_auth_failure(&self, f: Failure) {
        self.inner.http.auth_failures.with(&[f.as_str()]).inc();
    }

    pub(crate) fn metrics_sources(&self) -> Vec<Arc<dyn MetricsSource>> {
        self.inner
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn take_shutdown_hooks(&self) -> Vec<ShutdownHook> {
        std::mem::take(&mut *self.inner.hooks.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
