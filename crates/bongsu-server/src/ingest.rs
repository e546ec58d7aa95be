//! The push receivers: Prometheus remote_write 1.0 (`POST /api/v1/write`) and the Loki push
//! API (`POST /loki/api/v1/push`).
//!
//! Wiring only: the body is read within `ingest.max_body_bytes`, decoded by `bongsu-ingest`
//! (which refuses a whole request or accepts it whole), encoded as one record of
//! `docs/formats/records.md` and appended to the `metrics` or `logs` topic. The answer is 204
//! only after the stream acknowledged the append (durable under the topic's flush policy).
//!
//! A request whose record is larger than the topic's `max.message.bytes` is refused with 413
//! (nothing is appended): senders split their batches far below that size.
//!
//! Each receiver handles at most `ingest.max_inflight_requests` requests at once; the next one
//! is answered 429 with `Retry-After` at once, before its body is read.

use std::sync::Arc;

use axum::body::{to_bytes, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bongsu_ingest::{
    classify_remote_write, decode_loki_push, decode_write_request_view,
    decompress_remote_write_into, Limits,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api_error::{ApiError, ErrorCode};
use crate::metrics::CounterVec;
use crate::state::AppState;

/// The topic remote_write appends to.
pub(crate) const METRICS_TOPIC: &str = "metrics";
/// The topic Loki push appends to.
pub(crate) const LOGS_TOPIC: &str = "logs";

/// The two receivers, as metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    RemoteWrite,
    Loki,
}

impl Receiver {
    fn as_str(self) -> &'static str {
        match self {
            Receiver::RemoteWrite => "remote_write",
            Receiver::Loki => "loki",
        }
    }

    /// What the receiver counts: samples or log lines.
    fn unit(self) -> &'static str {
        match self {
            Receiver::RemoteWrite => "samples",
            Receiver::Loki => "lines",
        }
    }
}

/// Per-receiver saturation gates and self-metrics.
#[derive(Debug)]
pub(crate) struct Receivers {
    remote_write: Arc<Semaphore>,
    loki: Arc<Semaphore>,
    /// Requests by receiver and outcome (received, accepted, rejected).
    pub(crate) requests: Arc<CounterVec>,
    /// Samples or lines by receiver, unit and outcome (accepted, rejected).
    pub(crate) items: Arc<CounterVec>,
    limits: Limits,
    /// Partitions of the `metrics` topic, described on the first remote_write request.
    metrics_partitions: std::sync::OnceLock<u32>,
    /// Partitions of the `logs` topic, described on the first Loki push.
    logs_partitions: std::sync::OnceLock<u32>,
    /// Decompressed remote_write bodies' buffers, reused across requests.
    raw_buffers: Arc<BufferPool>,
}

/// Most bytes of buffers [`BufferPool`] keeps between requests.
const POOLED_BYTES: usize = 64 << 20;

/// Buffers kept between requests, so that a steady stream of requests does not allocate
/// (and fault in) a fresh buffer for each one. Keeps at most [`POOLED_BYTES`] in all; a
/// buffer that does not fit is freed.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    /// The buffers and the sum of their capacities.
    kept: std::sync::Mutex<(Vec<Vec<u8>>, usize)>,
}

impl BufferPool {
    /// A pool emptied before each trim of the allocator (see `allocator.rs`): buffers kept
    /// through a burst go back to the system with the rest of what it freed.
    pub(crate) fn new_released_on_trim() -> Arc<BufferPool> {
        let pool = Arc::new(BufferPool::default());
        let weak = Arc::downgrade(&pool);
        crate::allocator::before_trim(Box::new(move || {
            weak.upgrade().map(|p| p.clear()).is_some()
        }));
        pool
    }

    /// Frees every buffer kept.
    pub(crate) fn clear(&self) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        *kept = (Vec::new(), 0);
    }

    /// A buffer from the pool, or a new empty one.
    pub(crate) fn take(&self) -> Vec<u8> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        match kept.0.pop() {
            Some(b) => {
                kept.1 -= b.capacity();
                b
            }
            None => Vec::new(),
        }
    }

    /// Gives a buffer back for reuse.
    pub(crate) fn give(&self, mut b: Vec<u8>) {
        b.clear();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.1 + b.capacity() <= POOLED_BYTES {
            kept.1 += b.capacity();
            kept.0.push(b);
        }
    }
}

impl Receivers {
    pub(crate) fn new(max_inflight: usize, limits: Limits) -> Receivers {
        Receivers {
            remote_write: Arc::new(Semaphore::new(max_inflight)),
            loki: Arc::new(Semaphore::new(max_inflight)),
            requests: Arc::new(CounterVec::new(
                "bongsu_ingest_requests_total",
                "Push requests by receiver and outcome (received, accepted, rejected).",
                &["receiver", "outcome"],
            )),
            items: Arc::new(CounterVec::new(
                "bongsu_ingest_items_total",
                "Samples (remote_write) or log lines (loki) by receiver, unit and outcome (accepted, rejected). Items of a request refused before decoding are not counted.",
                &["receiver", "unit", "outcome"],
            )),
            limits,
            metrics_partitions: std::sync::OnceLock::new(),
            logs_partitions: std::sync::OnceLock::new(),
            raw_buffers: BufferPool::new_released_on_trim(),
        }
    }

    fn gate(&self, r: Receiver) -> &Arc<Semaphore> {
        match r {
            Receiver::RemoteWrite => &self.remote_write,
            Receiver::Loki => &self.loki,
        }
    }

    fn count(&self, r: Receiver, outcome: &str) {
        self.requests.with(&[r.as_str(), outcome]).inc();
    }

    fn count_items(&self, r: Receiver, outcome: &str, n: usize) {
        self.items
            .with(&[r.as_str(), r.unit(), outcome])
            .inc_by(n as f64);
    }
}

/// `POST /api/v1/write`.
pub(crate) async fn remote_write(State(state): State<AppState>, req: Request) -> Response {
    let store = state.metrics_store().cloned();
    let buffers = state.receivers().raw_buffers.clone();
    let check_headers = |headers: &HeaderMap| {
        classify_remote_write(
            header_str(headers, header::CONTENT_TYPE.as_str())?,
            header_str(headers, header::CONTENT_ENCODING.as_str())?,
            header_str(headers, "x-prometheus-remote-write-version")?,
        )
        .map_err(ingest_error)
        .map(drop)
    };
    let decode = move |(), body: Bytes, limits: Limits, partitions: u32| {
        let mut raw = buffers.take();
        let decoded = decompress_remote_write_into(&body, &limits, &mut raw)
            .map_err(ingest_error)
            .and_then(|()| encode_remote_write(&raw, &limits, store.as_deref(), partitions));
        buffers.give(raw);
        decoded
    };
    receive(state, Receiver::RemoteWrite, req, check_headers, decode).await
}

/// Decodes a decompressed remote_write body, checks it against the store's cardinality
/// limits and encodes it as one `metrics` record per partition.
fn encode_remote_write(
    raw: &[u8],
    limits: &Limits,
    store: Option<&crate::tsdb_consumer::MetricsStore>,
    partitions: u32,
) -> Result<Parts, Failed> {
    // Decoded in place: labels borrow the decompressed body, nothing per series is
    // allocated for series the store already knows.
    let view = decode_write_request_view(raw, limits).map_err(ingest_error)?;
    let n = view.sample_count();
    // Each series' labels hashed once: its partition and its cardinality-cache key.
    let hashes: Vec<u64> = view
        .series()
        .map(|s| crate::metrics_partition::label_hash(s.labels.iter().copied()))
        .collect();
    // Cardinality limits are checked before anything of the request is appended.
    crate::tsdb_consumer::check_cardinality_view(store, &view, &hashes).map_err(|e| (e, n))?;
    // Each series to its own partition, so the store applies it in order.
    let parts = crate::metrics_partition::encode_view_by_partition(&view, &hashes, partitions);
    Ok((parts, n))
}

/// `POST /loki/api/v1/push`.
pub(crate) async fn loki_push(State(state): State<AppState>, req: Request) -> Response {
    let logs = state.logs().cloned();
    let check_headers = |headers: &HeaderMap| {
        let content_type = header_str(headers, header::CONTENT_TYPE.as_str())?.map(str::to_owned);
        let content_encoding =
            header_str(headers, header::CONTENT_ENCODING.as_str())?.map(str::to_owned);
        Ok((content_type, content_encoding))
    };
    let decode = move |(content_type, content_encoding): (Option<String>, Option<String>),
                       body: Bytes,
                       limits: Limits,
                       partitions: u32| {
        let rec = decode_loki_push(
            &body,
            content_type.as_deref(),
            content_encoding.as_deref(),
            &limits,
        )
        .map_err(ingest_error)?;
        // Stream label limits of the log store ([logs]), before anything is appended.
        if let Some(logs) = logs {
            logs.check_push(&rec)
                .map_err(|m| (ApiError::new(ErrorCode::BadData, m), rec.entry_count()))?;
        }
        // Each stream to its own partition, so the store applies it in order.
        let n = rec.entry_count();
        Ok((
            crate::logs_partition::encode_by_partition(rec, partitions),
            n,
        ))
    };
    receive(state, Receiver::Loki, req, check_headers, decode).await
}

/// What a receiver's decoding makes of one request: `(partition, record value)` parts and
/// the number of items (samples or lines) they hold.
type Parts = (Vec<(u32, Vec<u8>)>, usize);

/// The steps both receivers share: the gate (429 with `Retry-After`, before anything is
/// read), `check_headers`, the body read within `ingest.max_body_bytes` (413), `decode` on the
/// blocking pool with the topic's partition count, the append of every part (204 once all are
/// acknowledged) and the request and item counters.
async fn receive<H, T, D>(
    state: AppState,
    r: Receiver,
    req: Request,
    check_headers: H,
    decode: D,
) -> Response
where
    H: FnOnce(&HeaderMap) -> Result<T, Failed>,
    T: Send + 'static,
    D: FnOnce(T, Bytes, Limits, u32) -> Result<Parts, Failed> + Send + 'static,
{
    let result = async {
        let permit = admit(&state, r)?;
        let checked = check_headers(req.headers())?;
        let limits = state.receivers().limits.clone();
        let body = read_body(req, &limits).await?;
        let partitions = partitions(&state, r).await?;
        let (parts, n) =
            tokio::task::spawn_blocking(move || decode(checked, body, limits, partitions))
                .await
                .map_err(join_error)??;
        append(&state, r, parts, n).await?;
        drop(permit);
        Ok(())
    }
    .await;
    finish(&state, r, result)
}

/// The partition count of the receiver's topic (1 without a stream: the append answers 503).
async fn partitions(state: &AppState, r: Receiver) -> Result<u32, Failed> {
    let Some(stream) = state.stream() else {
        return Ok(1);
    };
    let recv = state.receivers();
    match r {
        Receiver::RemoteWrite => {
            crate::metrics_partition::metrics_partitions(stream.as_ref(), &recv.metrics_partitions)
                .await
        }
        Receiver::Loki => {
            crate::logs_partition::logs_partitions(stream.as_ref(), &recv.logs_partitions).await
        }
    }
    .map_err(|e| (ApiError::internal(&e), 0))
}

/// A failed request: the error, and how many items it held when known.
type Failed = (ApiError, usize);

fn finish(state: &AppState, r: Receiver, result: Result<(), Failed>) -> Response {
    let recv = state.receivers();
    recv.count(r, "received");
    match result {
        Ok(()) => {
            recv.count(r, "accepted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err((err, n)) => {
            recv.count(r, "rejected");
            recv.count_items(r, "rejected", n);
            err.into_response()
        }
    }
}

/// Takes a slot of the receiver's gate, or refuses with 429.
fn admit(state: &AppState, r: Receiver) -> Result<OwnedSemaphorePermit, Failed> {
    state
        .receivers()
        .gate(r)
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            (
                ApiError::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "{} receiver is saturated: retry after the Retry-After delay, or raise ingest.max_inflight_requests",
                        r.as_str()
                    ),
                ),
                0,
            )
        })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Failed> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| {
            (
                ApiError::new(
                    ErrorCode::BadData,
                    format!("header {name} is not visible ASCII: send a plain value"),
                ),
                0,
            )
        }),
    }
}

/// Reads the body, refusing one larger than `limits.max_body_bytes` with 413.
async fn read_body(req: Request, limits: &Limits) -> Result<Bytes, Failed> {
    let too_large = |size: Option<u64>| {
        let size = size.map(|s| format!("{s} bytes, ")).unwrap_or_default();
        (
            ApiError::new(
                ErrorCode::TooLarge,
                format!(
                    "request body too large ({size}limit {}): send smaller batches or raise ingest.max_body_bytes",
                    limits.max_body_bytes
                ),
            ),
            0,
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large(declared));
    }
    to_bytes(req.into_body(), limits.max_body_bytes)
        .await
        .map_err(|e| {
            if is_length_limit(&e) {
                too_large(None)
            } else {
                (
                    ApiError::new(
                        ErrorCode::BadData,
                        "cannot read the request body: resend the request",
                    ),
                    0,
                )
            }
        })
}

/// Whether a body error is the length limit (axum wraps it in its own error type).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn ingest_error(e: bongsu_ingest::Error) -> Failed {
    let code = match e.kind() {
        bongsu_ingest::ErrorKind::BadRequest => ErrorCode::BadData,
        bongsu_ingest::ErrorKind::PayloadTooLarge => ErrorCode::TooLarge,
        bongsu_ingest::ErrorKind::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
    };
    // The decoders' messages describe the request, never server internals.
    (ApiError::new(code, e.to_string()), 0)
}

fn join_error(e: tokio::task::JoinError) -> Failed {
    (ApiError::internal(&e), 0)
}

/// Appends the per-partition parts of one request to the receiver's topic and waits until
/// all are acknowledged.
async fn append(
    state: &AppState,
    r: Receiver,
    parts: Vec<(u32, Vec<u8>)>,
    items: usize,
) -> Result<(), Failed> {
    let Some(stream) = state.stream() else {
        return Err((
            ApiError::new(
                ErrorCode::Unavailable,
                "the stream is not open: retry once the server is ready",
            ),
            items,
        ));
    };
    let now = state.clock().now_ms();
    let (appended, topic) = match r {
        Receiver::RemoteWrite => (
            crate::metrics_partition::append_parts(stream.as_ref(), parts, now).await,
            METRICS_TOPIC,
        ),
        Receiver::Loki => (
            crate::logs_partition::append_parts(stream.as_ref(), parts, now).await,
            LOGS_TOPIC,
        ),
    };
    match appended {
        Ok(()) => {
            state.receivers().count_items(r, "accepted", items);
            Ok(())
        }
        Err(e) => Err((append_error(e, topic), items)),
    }
}

/// The answer for a failed append.
fn append_error(e: bongsu_stream::Error, topic: &str) -> ApiError {
    match e {
        bongsu_stream::Error::RecordTooLarge { size, limit, .. } => ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "request encodes to a record of {size} bytes, over the {topic} topic's max.message.bytes ({limit}): send smaller batches or raise stream.max_message_bytes (new topics only)"
            ),
        ),
        e => ApiError::internal(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_pool_reuses_buffers_within_its_byte_budget() {
        let pool = BufferPool::default();
        let mut a = pool.take();
        assert_eq!(a.capacity(), 0, "an empty pool hands out new buffers");
        a.extend_from_slice(&[1; 1000]);
        let cap = a.capacity();
        pool.give(a);
        let b = pool.take();
        assert!(b.is_empty(), "a reused buffer comes back cleared");
        assert_eq!(b.capacity(), cap, "the same allocation is handed out again");
        assert_eq!(pool.take().capacity(), 0, "one buffer kept, one handed out");
        // A buffer over the budget is freed, not kept.
        pool.give(Vec::with_capacity(POOLED_BYTES + 1));
        assert_eq!(pool.take().capacity(), 0);
        pool.give(b);
        assert_eq!(pool.kept.lock().unwrap().1, cap);
        pool.clear();
        assert_eq!(pool.take().capacity(), 0, "a cleared pool keeps nothing");
    }
}
