//! Test helpers: a sink over the in-memory stream, a test HTTP target whose exposition can be
//! changed while it is scraped, and waiting on the `metrics` topic with a deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use bongsu_model::{Labels, MetricsRecord, Sample};
use bongsu_scrape::{Error, MetricsSink};
use bongsu_stream::{FetchOptions, MemoryStream, Record, Stream, StreamOptions, TopicConfig};

/// Appends each scrape to the `metrics` topic of a stream, as the server does.
pub(crate) struct StreamSink(pub(crate) Arc<MemoryStream>);

#[async_trait]
impl MetricsSink for StreamSink {
    async fn append(&self, record: MetricsRecord) -> bongsu_scrape::Result<()> {
        self.0
            .append("metrics", None, vec![Record::new(record.encode(), 0)])
            .await
            .map(|_| ())
            .map_err(Error::sink)
    }
}

pub(crate) async fn stream() -> Arc<MemoryStream> {
    let s = MemoryStream::new(StreamOptions::default());
    s.create_topic(
        "metrics",
        TopicConfig {
            partitions: 1,
            ..TopicConfig::default()
        },
    )
    .await
    .unwrap();
    s
}

/// Every record of the `metrics` topic so far, decoded.
pub(crate) async fn records(s: &MemoryStream) -> Vec<MetricsRecord> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let opts = FetchOptions {
            fetch_max_wait_ms: 0,
            ..FetchOptions::default()
        };
        let r = s.fetch("metrics", 0, offset, opts).await.unwrap();
        if r.records.is_empty() {
            return out;
        }
        for rec in r.records {
            offset = rec.offset + 1;
            out.push(MetricsRecord::decode(&rec.value).unwrap());
        }
    }
}

/// Waits until `pred` holds for the topic's records; panics with `what` after 20 s.
pub(crate) async fn wait_for<F>(s: &MemoryStream, what: &str, mut pred: F) -> Vec<MetricsRecord>
where
    F: FnMut(&[MetricsRecord]) -> bool,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recs = records(s).await;
        if pred(&recs) {
            return recs;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sample of the series named `name` whose labels include `with`, in `rec`.
pub(crate) fn find(rec: &MetricsRecord, name: &str, with: &[(&str, &str)]) -> Option<Sample> {
    rec.series
        .iter()
        .find(|s| {
            s.labels.metric_name() == Some(name)
                && with.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| s.samples[0])
}

/// Labels of the stale series of a record.
pub(crate) fn stale(rec: &MetricsRecord) -> Vec<Labels> {
    rec.series
        .iter()
        .filter(|s| s.samples.iter().any(|x| x.is_stale()))
        .map(|s| s.labels.clone())
        .collect()
}

/// What a test target answers, and the headers of the last request it got.
#[derive(Default)]
pub(crate) struct TargetState {
    pub(crate) body: String,
    pub(crate) content_type: String,
    pub(crate) status: u16,
    pub(crate) last_headers: Option<HeaderMap>,
    pub(crate) last_query: Option<String>,
    pub(crate) requests: u64,
}

/// A test HTTP target on a loopback port, serving `/metrics`.
pub(crate) struct TestTarget {
    pub(crate) addr: String,
    pub(crate) state: Arc<Mutex<TargetState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    State(state): State<Arc<Mutex<TargetState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    let mut s = state.lock().unwrap();
    s.requests += 1;
    s.last_headers = Some(headers);
    s.last_query = uri.query().map(str::to_owned);
    let status = StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, s.content_type.clone())],
        s.body.clone(),
    )
}

impl TestTarget {
    pub(crate) async fn start(body: &str) -> TestTarget {
        let state = Arc::new(Mutex::new(TargetState {
            body: body.to_owned(),
            content_type: "text/plain; version=0.0.4".to_owned(),
            status: 200,
            ..TargetState::default()
        }));
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(serve))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestTarget { addr, state, task }
    }

    pub(crate) fn set_body(&self, body: &str) {
        self.state.lock().unwrap().body = body.to_owned();
    }

    pub(crate) fn set(&self, f: impl FnOnce(&mut TargetState)) {
        f(&mut self.state.lock().unwrap());
    }
}
