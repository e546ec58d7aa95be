//! Agents: enrollment and revocation (`/api/v1/agents`), the agent push receiver
//! (`POST /api/v1/agent/push`) and its de-duplication of re-sent batches.
//!
//! A push carries one batch of `docs/formats/agent.md`: the agent's queue epoch, a sequence
//! number and up to four sections. The metrics section is appended as one record to the
//! `metrics` topic, the logs section as one record to the `logs` topic, each keyed by
//! `(agent id, epoch, seq, part)`; the answer is 200 once both are durable and the agent's
//! shipping mark ((epoch, seq, parts appended) in the state database) is updated.
//!
//! De-duplication: a batch at or below the mark is acknowledged without appending; a part of
//! the batch at the mark that was already appended is skipped. The mark is written after the
//! appends, so a crash between the two leaves records in the stream the mark does not know:
//! on start, [`recover`] scans the topics from the last scan checkpoint and raises every mark
//! to the highest key it finds. The checkpoint (the topics' high watermarks) is taken every
//! [`CHECKPOINT_INTERVAL`] while no push is between its appends and its mark update (pushes
//! hold a read lock on a gate, the checkpoint a write lock), so every record below it is
//! covered by a mark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bongsu_agent::{
    decode_batch, BatchLimits, DecodedBatch, FOLLOWS_HEADER, PART_LOGS, PART_METRICS,
};
use bongsu_state::{format_rfc3339_ms, hash_token, AgentInfo, AgentReport, Scope, ShipMark};
use bongsu_stream::{FetchOptions, Record, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::api_error::{ApiError, ErrorCode};
use crate::auth;
use crate::ingest::{LOGS_TOPIC, METRICS_TOPIC};
use crate::metrics::CounterVec;
use crate::state::AppState;

/// How often the recovery scan's starting point moves forward.
pub(crate) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
/// The `meta` key holding the scan checkpoint: `topic:partition=offset` pairs, `;`-separated.
const META_SCAN_CHECKPOINT: &str = "agent_dedup_scan_checkpoint";
/// First byte of the stream record key of an agent's record.
const KEY_TAG: u8 = b'A';
const KEY_LEN: usize = 26;
/// The topics agent batches go to.
const TOPICS: [&str; 2] = [METRICS_TOPIC, LOGS_TOPIC];
/// How long a pipelined push waits for the batch it follows before answering 503.
pub(crate) const FOLLOWS_WAIT: Duration = Duration::from_secs(5);

/// The record key: tag, agent id, epoch, seq (little-endian) and the part bit.
fn record_key(agent: i64, epoch: u64, seq: u64, part: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(KEY_LEN);
    k.push(KEY_TAG);
    k.extend_from_slice(&agent.to_le_bytes());
    k.extend_from_slice(&epoch.to_le_bytes());
    k.extend_from_slice(&seq.to_le_bytes());
    k.push(part);
    k
}

fn parse_key(k: &[u8]) -> Option<(i64, u64, u64, u8)> {
    if k.len() != KEY_LEN || k[0] != KEY_TAG {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&k[1..9]);
    let agent = i64::from_le_bytes(a);
    a.copy_from_slice(&k[9..17]);
    let epoch = u64::from_le_bytes(a);
    a.copy_from_slice(&k[17..25]);
    Some((agent, epoch, u64::from_le_bytes(a), k[25]))
}

/// What a mark says about an incoming batch: the parts still to append (0: a duplicate).
fn parts_to_append(mark: ShipMark, epoch: u64, seq: u64, parts: u8) -> u8 {
    if mark.epoch != epoch || seq > mark.seq {
        parts
    } else if seq == mark.seq {
        parts & !mark.parts
    } else {
        0
    }
}

/// Raises `mark` by a record found in the stream.
fn raise(mark: &mut ShipMark, epoch: u64, seq: u64, part: u8) {
    // A different epoch replaces the mark only when the mark never saw a batch: the agent's
    // queue was reset, and which epoch is newer cannot be told from the keys alone.
    if mark.epoch == 0 && mark.seq == 0 {
        *mark = ShipMark {
            epoch,
            seq,
            parts: part,
        };
    } else if mark.epoch == epoch {
        if seq > mark.seq {
            *mark = ShipMark {
                epoch,
                seq,
                parts: part,
            };
        } else if seq == mark.seq {
            mark.parts |= part;
        }
    }
}

/// One agent's push serialization: appends and mark updates take `apply`, stored-mark writes
/// take `store` (so they are stored in order), `done` is the last batch fully applied (every
/// part it carried is in the stream) and `changed` wakes pushes waiting for it.
#[derive(Debug, Default)]
struct AgentSlot {
    apply: tokio::sync::Mutex<()>,
    store: tokio::sync::Mutex<()>,
    done: Mutex<Option<(u64, u64)>>,
    changed: tokio::sync::Notify,
}

impl AgentSlot {
    /// Whether the batch `follows` of `epoch` is fully applied.
    fn has_done(&self, epoch: u64, follows: u64) -> bool {
        matches!(*self.done.lock().unwrap_or_else(|p| p.into_inner()), Some((e, s)) if e == epoch && s >= follows)
    }

    fn set_done(&self, epoch: u64, seq: u64) {
        {
            let mut d = self.done.lock().unwrap_or_else(|p| p.into_inner());
            match *d {
                Some((e, s)) if e == epoch && s >= seq => {}
                _ => *d = Some((epoch, seq)),
            }
        }
        self.changed.notify_waiters();
    }

    /// Waits until the batch `follows` of `epoch` is fully applied; false after `limit`.
    async fn wait_done(&self, epoch: u64, follows: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.has_done(epoch, follows) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.has_done(epoch, follows);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct CachedAgent {
    id: i64,
    verified_at_ms: i64,
}

/// The push receiver's state: marks, per-agent locks, the checkpoint gate, counters.
#[derive(Debug)]
pub(crate) struct Agents {
    marks: Mutex<HashMap<i64, ShipMark>>,
    slots: Mutex<HashMap<i64, Arc<AgentSlot>>>,
    gate: tokio::sync::RwLock<()>,
    recovered: std::sync::atomic::AtomicBool,
    tokens: Mutex<HashMap<[u8; 32], CachedAgent>>,
    inflight: Arc<Semaphore>,
    /// Pushes by outcome (accepted, duplicate, malformed, rejected, failed).
    pub(crate) pushes: Arc<CounterVec>,
    /// Samples and lines appended from agents.
    pub(crate) items: Arc<CounterVec>,
}

impl Agents {
    pub(crate) fn new(max_inflight: usize) -> Agents {
        Agents {
            marks: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            gate: tokio::sync::RwLock::new(()),
            recovered: std::sync::atomic::AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            inflight: Arc::new(Semaphore::new(max_inflight.max(1))),
            pushes: Arc::new(CounterVec::new(
                "bongsu_agent_pushes_total",
                "Agent pushes by outcome (accepted, duplicate, malformed, rejected, failed).",
                &["outcome"],
            )),
            items: Arc::new(CounterVec::new(
                "bongsu_agent_items_total",
                "Samples and log lines appended from agent pushes, by unit.",
                &["unit"],
            )),
        }
    }

    fn mark(&self, agent: i64) -> ShipMark {
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&agent)
            .copied()
            .unwrap_or_default()
    }

    fn set_mark(&self, agent: i64, mark: ShipMark) {
        self.marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent, mark);
    }

    fn slot(&self, agent: i64) -> Arc<AgentSlot> {
        self.slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(agent)
            .or_default()
            .clone()
    }

    fn forget_agent(&self, id: i64) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, c| c.id != id);
    }

    fn count(&self, outcome: &str) {
        self.pushes.with(&[outcome]).inc();
    }
}

/// The agent routes: push (agent token), list (read), enroll and revoke (admin).
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let scoped =
        |scope: Scope| axum::middleware::from_fn_with_state((state.clone(), scope), auth::require);
    let read = Router::new()
        .route("/api/v1/agents", get(list_agents))
        .route_layer(scoped(Scope::Read));
    let admin = Router::new()
        .route("/api/v1/agents", post(enroll_agent))
        .route("/api/v1/agents/{id}", delete(revoke_agent))
        .route_layer(scoped(Scope::Admin));
    Router::new()
        .route("/api/v1/agent/push", post(push))
        .merge(read)
        .merge(admin)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

/// The agent id of the request's agent token.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<i64, ApiError> {
    let unauthorized = || {
        ApiError::new(
            ErrorCode::Unauthorized,
            "missing, invalid or revoked agent token: enroll the agent with `bongsu agents enroll` and pass its token",
        )
    };
    let secret = bearer(headers).ok_or_else(unauthorized)?;
    let key = hash_token(secret);
    let now = state.clock().now_ms();
    let ttl = i64::try_from(state.config().auth.token_cache_ttl.as_millis()).unwrap_or(0);
    let agents = state.agents();
    if let Some(c) = agents
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        if now.saturating_sub(c.verified_at_ms) < ttl {
            return Ok(c.id);
        }
    }
    let store = state.store().clone();
    let owned = secret.to_owned();
    let found = tokio::task::spawn_blocking(move || store.verify_agent_token(&owned))
        .await?
        .map_err(|e| ApiError::internal(&e))?;
    let mut cache = agents.tokens.lock().unwrap_or_else(|p| p.into_inner());
    match found {
        Some(info) => {
            if cache.len() >= 4096 {
                cache.clear();
            }
            cache.insert(
                key,
                CachedAgent {
                    id: info.id,
                    verified_at_ms: now,
                },
            );
            Ok(info.id)
        }
        None => {
            cache.remove(&key);
            Err(unauthorized())
        }
    }
}

/// The `bongsu-follows` header: the sequence number of the batch this one follows.
fn follows_header(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(FOLLOWS_HEADER) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadData,
                format!("the {FOLLOWS_HEADER} header must be a decimal sequence number"),
            )
        })
}

/// The answer to an accepted push.
#[derive(Debug, Serialize)]
struct PushAck {
    seq: u64,
    duplicate: bool,
}

/// `POST /api/v1/agent/push`.
async fn push(State(state): State<AppState>, req: Request) -> Response {
    match push_inner(&state, req).await {
        Ok(ack) => {
            state.agents().count(if ack.duplicate {
                "duplicate"
            } else {
                "accepted"
            });
            (StatusCode::OK, Json(success(ack))).into_response()
        }
        Err((outcome, err)) => {
            state.agents().count(outcome);
            err.into_response()
        }
    }
}

type Failed = (&'static str, ApiError);

async fn push_inner(state: &AppState, req: Request) -> Result<PushAck, Failed> {
    let agent = authenticate(state, req.headers())
        .await
        .map_err(|e| ("rejected", e))?;
    let _permit = state
        .agents()
        .inflight
        .clone()
        .try_acquire_owned()
        .map_err(|e| {
            let msg = match e {
                TryAcquireError::Closed => "the agent receiver is closed",
                TryAcquireError::NoPermits => {
                    "the agent receiver is saturated: retry after the Retry-After delay, or raise ingest.max_inflight_requests"
                }
            };
            ("rejected", ApiError::new(ErrorCode::TooManyRequests, msg))
        })?;
    let follows = follows_header(req.headers()).map_err(|e| ("malformed", e))?;
    let limits = state.config().ingest.limits();
    let body = to_bytes(req.into_body(), limits.max_body_bytes)
        .await
        .map_err(|_| {
            (
                "rejected",
                ApiError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "agent batch over ingest.max_body_bytes ({}) or unreadable: ship smaller batches",
                        limits.max_body_bytes
                    ),
                ),
            )
        })?;
    let batch_limits = BatchLimits {
        max_decompressed_bytes: limits.max_decompressed_bytes,
        ..BatchLimits::default()
    };
    let batch = tokio::task::spawn_blocking(move || decode_batch(&body, &batch_limits))
        .await
        .map_err(|e| ("failed", ApiError::internal(&e)))?
        .map_err(|e| {
            tracing::warn!(agent, error = %e, "dropping a malformed agent batch");
            (
                "malformed",
                ApiError::new(ErrorCode::BadData, e.to_string()),
            )
        })?;
    let agents = state.agents();
    if !agents.recovered.load(std::sync::atomic::Ordering::SeqCst) {
        return Err((
            "failed",
            ApiError::new(
                ErrorCode::Unavailable,
                "the agent receiver is recovering: retry shortly",
            ),
        ));
    }
    let Some(stream) = state.stream().cloned() else {
        return Err((
            "failed",
            ApiError::new(
                ErrorCode::Unavailable,
                "the stream is not open: retry once the server is ready",
            ),
        ));
    };
    let slot = agents.slot(agent);
    let is_duplicate = |mark: ShipMark| {
        let todo = parts_to_append(mark, batch.epoch, batch.seq, batch.parts());
        todo == 0 && mark.epoch == batch.epoch && batch.seq <= mark.seq
    };
    // A pipelined push is applied only after the batch it follows, so batches reach the
    // stream in the agent's order however their requests race (a duplicate needs no wait).
    if let Some(f) = follows {
        if !is_duplicate(agents.mark(agent)) && !slot.wait_done(batch.epoch, f, FOLLOWS_WAIT).await
        {
            return Err((
                "failed",
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!("batch {} follows batch {f}, which has not been applied: retry from the first unacknowledged batch", batch.seq),
                ),
            ));
        }
    }
    let _gate = agents.gate.read().await;
    let apply_guard = slot.apply.lock().await;
    let mark = agents.mark(agent);
    let todo = parts_to_append(mark, batch.epoch, batch.seq, batch.parts());
    if is_duplicate(mark) {
        slot.set_done(batch.epoch, batch.seq);
        return Ok(PushAck {
            seq: batch.seq,
            duplicate: true,
        });
    }
    let mut new_mark = if mark.epoch == batch.epoch && mark.seq == batch.seq {
        mark
    } else {
        ShipMark {
            epoch: batch.epoch,
            seq: batch.seq,
            parts: 0,
        }
    };
    let now = state.clock().now_ms();
    let DecodedBatch {
        epoch,
        seq,
        heartbeat,
        inventory,
        metrics,
        logs,
        ..
    } = batch;
    for (part, topic, section, unit) in [
        (PART_METRICS, METRICS_TOPIC, metrics, "samples"),
        (PART_LOGS, LOGS_TOPIC, logs, "lines"),
    ] {
        let Some((bytes, n)) = section else { continue };
        if todo & part == 0 {
            continue;
        }
        let record = Record::with_key(record_key(agent, epoch, seq, part), bytes, now);
        // All of one agent's data goes to one partition, so its series and log streams are
        // applied in the order it shipped them.
        let partitions = match stream.describe_topic(topic).await {
            Ok(d) => d.partitions.len().max(1) as u32,
            Err(e) => return Err(("failed", ApiError::internal(&e))),
        };
        let partition = bongsu_stream::partition_for_key(&agent.to_le_bytes(), partitions);
        match stream.append(topic, Some(partition), vec![record]).await {
            Ok(_) => {
                new_mark.parts |= part;
                agents.set_mark(agent, new_mark);
                agents.items.with(&[unit]).inc_by(n as f64);
            }
            Err(bongsu_stream::Error::RecordTooLarge { size, limit, .. }) => {
                return Err((
                    "malformed",
                    ApiError::new(
                        ErrorCode::TooLarge,
                        format!("the {topic} section is {size} bytes, over the topic's max.message.bytes ({limit}): ship smaller batches"),
                    ),
                ))
            }
            Err(e) => return Err(("failed", ApiError::internal(&e))),
        }
    }
    agents.set_mark(agent, new_mark);
    slot.set_done(epoch, seq);
    // The next batch may be appended while this one's mark is stored; stored marks are
    // written in apply order, each the newest in-memory mark.
    let store_guard = slot.store.lock().await;
    drop(apply_guard);
    let stored_mark = agents.mark(agent);
    let report = AgentReport {
        host: heartbeat.as_ref().map(|h| h.host.clone()),
        version: heartbeat.as_ref().map(|h| h.version.clone()),
        inventory,
    };
    let store = state.store().clone();
    tokio::task::spawn_blocking(move || store.record_agent_push(agent, stored_mark, &report, now))
        .await
        .map_err(|e| ("failed", ApiError::internal(&e)))?
        .map_err(|e| ("failed", ApiError::internal(&e)))?;
    drop(store_guard);
    Ok(PushAck {
        seq,
        duplicate: false,
    })
}

/// Scans the agent topics from the last checkpoint, raises the marks to what was appended,
/// stores them, and opens the agent push receiver (it answers 503 until then). [`crate::Server::start`]
/// calls it once the stream is attached; tests that build an [`AppState`] themselves call it
/// after [`AppState::attach_stream`].
pub async fn recover_agents(state: &AppState) -> crate::Result<()> {
    let Some(stream) = state.stream().cloned() else {
        return Ok(());
    };
    let store = state.store().clone();
    let (agents, checkpoint) = tokio::task::spawn_blocking(move || {
        Ok::<_, bongsu_state::Error>((store.list_agents()?, store.get_meta(META_SCAN_CHECKPOINT)?))
    })
    .await
    .map_err(|e| crate::Error::Task(e.to_string()))??;
    let mut marks: HashMap<i64, ShipMark> = agents.iter().map(|a| (a.id, a.mark)).collect();
    let before = marks.clone();
    let checkpoint = parse_checkpoint(checkpoint.as_deref());
    let mut scanned = 0u64;
    let anyone_shipped = marks.values().any(|m| *m != ShipMark::default());
    for topic in TOPICS {
        let Ok(desc) = stream.describe_topic(topic).await else {
            continue;
        };
        for p in desc.partitions {
            let from = match checkpoint.get(&(topic.to_owned(), p.partition)) {
                Some(o) => (*o).max(p.log_start_offset),
                // Without a checkpoint and with no agent ever shipped there is nothing to find.
                None if !anyone_shipped => p.high_watermark,
                None => p.log_start_offset,
            };
            let mut offset = from;
            while offset < p.high_watermark {
                let res = stream
                    .fetch(topic, p.partition, offset, FetchOptions::no_wait())
                    .await?;
                let Some(last) = res.records.last() else {
                    break;
                };
                offset = last.offset + 1;
                for r in &res.records {
                    scanned += 1;
                    if let Some((agent, epoch, seq, part)) = r.key.as_deref().and_then(parse_key) {
                        if let Some(m) = marks.get_mut(&agent) {
                            raise(m, epoch, seq, part);
                        }
                    }
                }
            }
        }
    }
    let raised: Vec<(i64, ShipMark)> = marks
        .iter()
        .filter(|(id, m)| before.get(id) != Some(m))
        .map(|(id, m)| (*id, *m))
        .collect();
    if !raised.is_empty() {
        tracing::info!(
            agents = raised.len(),
            "raised agent shipping marks from the stream"
        );
        let store = state.store().clone();
        let now = state.clock().now_ms();
        tokio::task::spawn_blocking(move || {
            for (id, m) in raised {
                store.record_agent_push(id, m, &AgentReport::default(), now)?;
            }
            Ok::<_, bongsu_state::Error>(())
        })
        .await
        .map_err(|e| crate::Error::Task(e.to_string()))??;
    }
    tracing::debug!(records = scanned, "agent de-dup recovery scan done");
    {
        let mut m = state
            .agents()
            .marks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *m = marks;
    }
    checkpoint_now(state, stream.as_ref()).await?;
    state
        .agents()
        .recovered
        .store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

fn parse_checkpoint(s: Option<&str>) -> HashMap<(String, u32), u64> {
    let mut out = HashMap::new();
    for pair in s.unwrap_or("").split(';').filter(|p| !p.is_empty()) {
        let Some((tp, off)) = pair.split_once('=') else {
            continue;
        };
        let Some((t, p)) = tp.rsplit_once(':') else {
            continue;
        };
        if let (Ok(p), Ok(off)) = (p.parse::<u32>(), off.parse::<u64>()) {
            out.insert((t.to_owned(), p), off);
        }
    }
    out
}

/// Stores the topics' high watermarks as the next recovery scan's start, taken while no push
/// is between its appends and its mark update.
async fn checkpoint_now(state: &AppState, stream: &dyn Stream) -> crate::Result<()> {
    let mut pairs = Vec::new();
    {
        let _quiet = state.agents().gate.write().await;
        for topic in TOPICS {
            if let Ok(desc) = stream.describe_topic(topic).await {
                for p in desc.partitions {
                    pairs.push(format!("{topic}:{}={}", p.partition, p.high_watermark));
                }
            }
        }
    }
    let value = pairs.join(";");
    let store = state.store().clone();
    tokio::task::spawn_blocking(move || store.set_meta(META_SCAN_CHECKPOINT, &value))
        .await
        .map_err(|e| crate::Error::Task(e.to_string()))??;
    Ok(())
}

/// Moves the checkpoint forward every [`CHECKPOINT_INTERVAL`] until the runtime stops.
pub(crate) fn spawn_checkpoints(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(stream) = state.stream().cloned() else {
                continue;
            };
            if let Err(e) = checkpoint_now(&state, stream.as_ref()).await {
                tracing::warn!(error = %e, "cannot store the agent de-dup checkpoint");
            }
        }
    });
}

#[derive(Debug, Serialize)]
struct Success<T> {
    status: &'static str,
    data: T,
}

fn success<T: Serialize>(data: T) -> Success<T> {
    Success {
        status: "success",
        data,
    }
}

/// An agent as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AgentView {
    id: i64,
    name: String,
    host: Option<String>,
    version: Option<String>,
    created_at: String,
    last_seen: Option<String>,
    revoked: bool,
    inventory: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl AgentView {
    fn new(a: &AgentInfo, token: Option<String>) -> AgentView {
        AgentView {
            id: a.id,
            name: a.name.clone(),
            host: a.host.clone(),
            version: a.version.clone(),
            created_at: format_rfc3339_ms(a.created_at_ms),
            last_seen: a.last_seen_ms.map(format_rfc3339_ms),
            revoked: a.revoked,
            inventory: a
                .inventory
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            token,
        }
    }
}

fn state_error(e: bongsu_state::Error) -> ApiError {
    use bongsu_state::Error as S;
    match e {
        S::AgentNotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
        S::AgentExists(_) | S::InvalidName(_) => ApiError::new(ErrorCode::BadData, e.to_string()),
        other => ApiError::from(other),
    }
}

async fn list_agents(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store().clone();
    let agents = tokio::task::spawn_blocking(move || store.list_agents())
        .await?
        .map_err(state_error)?;
    let views: Vec<AgentView> = agents.iter().map(|a| AgentView::new(a, None)).collect();
    Ok(Json(success(views)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Enroll {
    name: String,
}

async fn enroll_agent(
    State(state): State<AppState>,
    body: Result<Json<Enroll>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let store = state.store().clone();
    let now = state.clock().now_ms();
    let created = tokio::task::spawn_blocking(move || store.enroll_agent(&req.name, now))
        .await?
        .map_err(state_error)?;
    tracing::info!(id = created.info.id, name = %created.info.name, "agent enrolled");
    Ok((
        StatusCode::CREATED,
        Json(success(AgentView::new(&created.info, Some(created.secret)))),
    )
        .into_response())
}

async fn revoke_agent(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::BadData,
            format!("agent id {id:?} is not an integer: use an id from GET /api/v1/agents"),
        )
    })?;
    let store = state.store().clone();
    let info = tokio::task::spawn_blocking(move || store.revoke_agent(id))
        .await?
        .map_err(state_error)?;
    state.agents().forget_agent(id);
    tracing::info!(id, name = %info.name, "agent revoked");
    Ok(Json(success(AgentView::new(&info, None))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_foreign_keys_are_ignored() {
        let k = record_key(-3, u64::MAX, 17, PART_LOGS);
        assert_eq!(parse_key(&k), Some((-3, u64::MAX, 17, PART_LOGS)));
        assert_eq!(parse_key(b"host-1"), None);
        assert_eq!(parse_key(&k[..25]), None);
    }

    #[test]
    fn marks_decide_what_to_append() {
        let both = PART_METRICS | PART_LOGS;
        let m = ShipMark {
            epoch: 5,
            seq: 10,
            parts: PART_METRICS,
        };
        assert_eq!(parts_to_append(m, 5, 9, both), 0);
        assert_eq!(parts_to_append(m, 5, 10, both), PART_LOGS);
        assert_eq!(parts_to_append(m, 5, 11, both), both);
        assert_eq!(parts_to_append(m, 6, 1, both), both);
        assert_eq!(parts_to_append(ShipMark::default(), 5, 1, both), both);
    }

    #[test]
    fn raising_marks_from_keys() {
        let mut m = ShipMark::default();
        raise(&mut m, 5, 3, PART_METRICS);
        raise(&mut m, 5, 3, PART_LOGS);
        assert_eq!(
            m,
            ShipMark {
                epoch: 5,
                seq: 3,
                parts: PART_METRICS | PART_LOGS
            }
        );
        raise(&mut m, 5, 2, PART_METRICS);
        raise(&mut m, 9, 100, PART_METRICS);
        assert_eq!(m.seq, 3);
        raise(&mut m, 5, 4, PART_LOGS);
        assert_eq!((m.seq, m.parts), (4, PART_LOGS));
    }

    #[test]
    fn checkpoint_text_parses_and_skips_garbage() {
        let c = parse_checkpoint(Some("metrics:0=5;logs:1=7;junk;x:y=z"));
        assert_eq!(c.len(), 2);
        assert_eq!(c[&("metrics".to_owned(), 0)], 5);
        assert_eq!(c[&("logs".to_owned(), 1)], 7);
        assert!(parse_checkpoint(None).is_empty());
    }
}
