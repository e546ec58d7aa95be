//! The running agent: a producer thread (collectors at `interval_seconds`, tailers and the
//! journal continuously, checks) that turns what it gathers into batches in the disk queue,
//! and a shipper that pushes queued batches to the server in order, with retries.
//!
//! Every queued batch carries, locally, the tailer checkpoint and journal cursor at the time it
//! was queued; on start the agent resumes its tailers from the newest queued batch's, so what
//! was read is neither lost nor read twice across a kill.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bongsu_model::{Labels, LogEntry, LogStream, LogsRecord};

use crate::checks::CheckRunner;
use crate::clock::Clock;
use crate::config::AgentConfig;
use crate::inventory::Inventory;
use crate::journal::JournalReader;
use crate::metrics::Metrics;
use crate::protocol::{Batch, Heartbeat, BATCH_CONTENT_TYPE, FOLLOWS_HEADER};
use crate::queue::{DiskQueue, QueueConfig};
use crate::tail::Tailer;
use crate::{Collector, Error, Result};

/// Where and as whom the agent ships.
#[derive(Clone)]
pub struct ShipTarget {
    /// The server's base URL, e.g. `https://bongsu.example:9400`.
    pub server: String,
    /// The agent token from `bongsu agents enroll`.
    pub token: String,
}

impl std::fmt::Debug for ShipTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipTarget")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The shipper's counters, shipped as the agent's self-metrics.
#[derive(Debug, Default)]
pub struct ShipStats {
    pub sent_batches: AtomicU64,
    pub sent_bytes: AtomicU64,
    /// Failed pushes (network errors, 5xx, 429, 401/403); each is retried.
    pub errors: AtomicU64,
    /// Batches the server refused as malformed (400/413/415), dropped.
    pub rejected: AtomicU64,
}

/// Inventory is re-collected this often and sent when it changed.
const INVENTORY_EVERY_MS: i64 = 3_600_000;
/// Journal entries taken per poll.
const JOURNAL_POLL_MAX: usize = 10_000;

/// The local bytes kept with each queued batch: tailer checkpoint and journal cursor.
fn encode_local(tail: &[u8], cursor: Option<&str>) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + tail.len() + cursor.map_or(0, str::len));
    b.extend_from_slice(&(tail.len() as u32).to_le_bytes());
    b.extend_from_slice(tail);
    if let Some(c) = cursor {
        b.extend_from_slice(c.as_bytes());
    }
    b
}

fn decode_local(b: &[u8]) -> Option<(&[u8], Option<&str>)> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let tail = b.get(4..4 + n)?;
    let cursor = std::str::from_utf8(b.get(4 + n..)?).ok()?;
    Some((tail, (!cursor.is_empty()).then_some(cursor)))
}

/// Runs the agent until `shutdown` completes. What is queued stays queued for the next start.
pub async fn run_agent<F>(
    config: AgentConfig,
    target: ShipTarget,
    clock: Arc<dyn Clock>,
    shutdown: F,
) -> Result<()>
where
    F: Future<Output = ()> + Send,
{
    config.validate()?;
    let s = &config.shipping;
    let qcfg = QueueConfig {
        max_bytes: s.queue_max_bytes,
        segment_bytes: s.queue_segment_bytes,
    };
    let qdir = s.queue_dir.clone();
    let queue = tokio::task::spawn_blocking(move || DiskQueue::open(&qdir, qcfg))
        .await
        .map_err(|e| Error::Ship(e.to_string()))??;
    // Resume tailers and the journal from what the newest queued batch says.
    if let Some((tail, cursor)) = queue.latest_local().and_then(decode_local) {
        if !config.logs.is_empty() && !tail.is_empty() {
            crate::state_file::store(&config.tailer.checkpoint_path, tail)?;
        }
        if let (Some(c), true) = (cursor, config.journal.enabled) {
            crate::journal::store_cursor(&config.journal.cursor_path, c)?;
        }
    }
    tracing::info!(
        epoch = queue.epoch(),
        queued = queue.depth_batches(),
        "agent queue open"
    );
    let queue = Arc::new(Mutex::new(queue));
    let stats = Arc::new(ShipStats::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(AtomicBool::new(false));

    let producer = Producer::new(
        config.clone(),
        clock.clone(),
        queue.clone(),
        stats.clone(),
        wake.clone(),
        stop.clone(),
        tokio::runtime::Handle::current(),
    )?;
    let thread = std::thread::Builder::new()
        .name("bongsu-agent-collect".into())
        .spawn(move || producer.run())
        .map_err(|e| Error::Ship(format!("cannot start the collector thread: {e}")))?;

    let shipper = ship_loop(&config, &target, queue.clone(), stats, wake.clone());
    tokio::select! {
        r = shipper => r?,
        () = shutdown => tracing::info!("agent shutting down; queued batches stay on disk"),
    }
    stop.store(true, Ordering::SeqCst);
    thread.thread().unpark();
    let joined = tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| Error::Ship(e.to_string()))?;
    if joined.is_err() {
        tracing::error!("the collector thread panicked");
    }
    let q = queue.clone();
    tokio::task::spawn_blocking(move || q.lock().unwrap_or_else(|p| p.into_inner()).sync())
        .await
        .map_err(|e| Error::Ship(e.to_string()))??;
    Ok(())
}

struct Producer {
    config: AgentConfig,
    clock: Arc<dyn Clock>,
    queue: Arc<Mutex<DiskQueue>>,
    stats: Arc<ShipStats>,
    wake: Arc<tokio::sync::Notify>,
    stop: Arc<AtomicBool>,
    runtime: tokio::runtime::Handle,
    collector: Collector,
    tailer: Option<Tailer>,
    journal: Option<JournalReader>,
    checks: CheckRunner,
    heartbeat: Heartbeat,
    inventory_hash: Option<String>,
    inventory_due_ms: i64,
    /// Log entries not yet queued, as streams in arrival order.
    pending: VecDeque<LogStream>,
    pending_entries: usize,
    pending_bytes: usize,
    pending_since_ms: i64,
}

impl Producer {
    fn new(
        config: AgentConfig,
        clock: Arc<dyn Clock>,
        queue: Arc<Mutex<DiskQueue>>,
        stats: Arc<ShipStats>,
        wake: Arc<tokio::sync::Notify>,
        stop: Arc<AtomicBool>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Producer> {
        let collector = Collector::new(&config, clock.clone())?;
        let tailer = if config.logs.is_empty() {
            None
        } else {
            Some(Tailer::new(
                config.tailer.clone(),
                &config.logs,
                clock.clone(),
            )?)
        };
        let journal = if config.journal.enabled {
            JournalReader::start(&config.journal)?
        } else {
            None
        };
        let checks = CheckRunner::new(&config.checks, clock.clone())?;
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        Ok(Producer {
            heartbeat: Heartbeat {
                host,
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_ms: clock.now_ms(),
            },
            config,
            clock,
            queue,
            stats,
            wake,
            stop,
            runtime,
            collector,
            tailer,
            journal,
            checks,
            inventory_hash: None,
            inventory_due_ms: 0,
            pending: VecDeque::new(),
            pending_entries: 0,
            pending_bytes: 0,
            pending_since_ms: 0,
        })
    }

    fn run(mut self) {
        let interval_ms = i64::try_from(self.config.interval_seconds)
            .unwrap_or(i64::MAX / 2_000)
            .saturating_mul(1000);
        let poll_ms = self.config.tailer.poll_interval_ms.max(10);
        let linger_ms = i64::try_from(self.config.shipping.linger_ms).unwrap_or(i64::MAX);
        let mut next_metrics = self.clock.now_ms();
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let got = self.poll_logs();
            let now = self.clock.now_ms();
            while self.pending_bytes >= self.config.shipping.max_batch_bytes {
                self.flush(None);
            }
            let metrics_due = now >= next_metrics;
            let metrics = if metrics_due && !stopping {
                next_metrics = now + interval_ms;
                Some(self.collect_metrics())
            } else {
                None
            };
            let lingered = self.pending_entries > 0 && now - self.pending_since_ms >= linger_ms;
            if metrics.is_some() || lingered || (stopping && self.pending_entries > 0) {
                self.flush(metrics);
            }
            if stopping {
                break;
            }
            if got == 0 {
                let until_metrics = u64::try_from(next_metrics - self.clock.now_ms()).unwrap_or(0);
                std::thread::park_timeout(Duration::from_millis(poll_ms.min(until_metrics.max(1))));
            }
        }
    }

    /// Polls tailers and the journal into `pending`; returns how many entries came.
    fn poll_logs(&mut self) -> usize {
        let mut got = 0;
        if let Some(t) = &mut self.tailer {
            match t.poll_streams() {
                Ok(streams) => {
                    for s in streams {
                        got += s.entries.len();
                        self.push_pending(s);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "tailer poll failed"),
            }
        }
        if let Some(j) = &mut self.journal {
            let entries = j.poll(JOURNAL_POLL_MAX);
            got += entries.len();
            for (labels, e) in entries {
                self.push_pending(LogStream {
                    labels,
                    entries: vec![e],
                });
            }
        }
        got
    }

    fn push_pending(&mut self, s: LogStream) {
        if s.entries.is_empty() {
            return;
        }
        if self.pending_entries == 0 {
            self.pending_since_ms = self.clock.now_ms();
        }
        self.pending_entries += s.entries.len();
        self.pending_bytes += s.entries.iter().map(entry_cost).sum::<usize>();
        match self.pending.back_mut() {
            Some(last) if last.labels == s.labels => last.entries.extend(s.entries),
            _ => self.pending.push_back(s),
        }
    }

    /// Takes the pending entries that fit in one batch (at least one), in order.
    fn take_pending(&mut self) -> Vec<LogStream> {
        let limit = self.config.shipping.max_batch_bytes;
        let mut taken = Vec::new();
        let mut bytes = 0;
        let mut count = 0;
        while let Some(first) = self.pending.front_mut() {
            let mut n = 0;
            for e in &first.entries {
                let c = entry_cost(e);
                if bytes + c > limit && count + n > 0 {
                    break;
                }
                bytes += c;
                n += 1;
            }
            count += n;
            if n == first.entries.len() {
                if let Some(s) = self.pending.pop_front() {
                    taken.push(s);
                }
            } else {
                let head: Vec<LogEntry> = first.entries.drain(..n).collect();
                if !head.is_empty() {
                    taken.push(LogStream {
                        labels: first.labels.clone(),
                        entries: head,
                    });
                }
                break;
            }
        }
        self.pending_entries -= count;
        self.pending_bytes -= bytes;
        taken
    }

    fn collect_metrics(&mut self) -> Metrics {
        let mut m = self.collector.collect();
        if let Some(t) = &self.tailer {
            t.collect_metrics(&mut m);
        }
        if !self.checks.is_empty() {
            m.extend(self.runtime.block_on(self.checks.run_all()));
        }
        self.self_metrics(&mut m);
        m
    }

    fn self_metrics(&self, m: &mut Metrics) {
        let (depth_bytes, depth_batches, qs) = {
            let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            (q.depth_bytes(), q.depth_batches(), q.stats())
        };
        let s = &self.stats;
        m.gauge(
            "bongsu_agent_queue_bytes",
            "Bytes of the agent's disk queue.",
            &[],
            depth_bytes as f64,
        );
        m.gauge(
            "bongsu_agent_queue_batches",
            "Batches in the agent's disk queue not yet acknowledged.",
            &[],
            depth_batches as f64,
        );
        for (name, help, v) in [
            (
                "bongsu_agent_sent_batches_total",
                "Batches the server acknowledged.",
                s.sent_batches.load(Ordering::Relaxed),
            ),
            (
                "bongsu_agent_sent_bytes_total",
                "Bytes of acknowledged batches, as sent (compressed).",
                s.sent_bytes.load(Ordering::Relaxed),
            ),
            (
                "bongsu_agent_ship_errors_total",
                "Failed pushes, each retried with backoff.",
                s.errors.load(Ordering::Relaxed),
            ),
            (
                "bongsu_agent_rejected_batches_total",
                "Batches the server refused as malformed; dropped.",
                s.rejected.load(Ordering::Relaxed),
            ),
            (
                "bongsu_agent_dropped_batches_total",
                "Batches dropped unsent because the disk queue was full.",
                qs.dropped_batches,
            ),
            (
                "bongsu_agent_dropped_bytes_total",
                "Bytes dropped unsent because the disk queue was full.",
                qs.dropped_bytes,
            ),
        ] {
            m.counter(name, help, &[], v as f64);
        }
    }

    fn inventory_if_changed(&mut self) -> Option<String> {
        if !self.config.inventory.enabled {
            return None;
        }
        let now = self.clock.now_ms();
        if now < self.inventory_due_ms {
            return None;
        }
        self.inventory_due_ms = now + INVENTORY_EVERY_MS;
        match Inventory::collect(&self.config.host_paths(), &self.config.inventory) {
            Ok(inv) => {
                let hash = inv.hash();
                if self.inventory_hash.as_deref() == Some(hash.as_str()) {
                    return None;
                }
                self.inventory_hash = Some(hash);
                Some(inv.to_json())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot collect the inventory");
                None
            }
        }
    }

    /// Queues one batch with `metrics` and as many pending entries as fit. Only a batch
    /// that empties `pending` carries the new tailer checkpoint.
    fn flush(&mut self, metrics: Option<Metrics>) {
        let taken = self.take_pending();
        if self.pending_entries > 0 {
            self.pending_since_ms = self.clock.now_ms();
        }
        let logs = group_streams(taken);
        let inventory = self.inventory_if_changed();
        let local = if self.pending_entries == 0 {
            let tail = self
                .tailer
                .as_ref()
                .map(Tailer::checkpoint_bytes)
                .unwrap_or_default();
            Some(encode_local(
                &tail,
                self.journal.as_ref().and_then(JournalReader::cursor),
            ))
        } else {
            None
        };
        let batch = Batch {
            epoch: 0,
            seq: 0,
            created_ms: self.clock.now_ms(),
            heartbeat: Some(self.heartbeat.clone()),
            inventory,
            metrics: metrics.map(|m| m.to_record()),
            logs,
        };
        let level = self.config.shipping.compression_level;
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // A batch that empties `pending` carries the checkpoint after it; one that does not
        // carries the previous one (a kill before the rest is queued re-reads this part).
        let local = match local {
            Some(l) => l,
            None => q.latest_local().map(<[u8]>::to_vec).unwrap_or_default(),
        };
        let pushed = q.push(
            |epoch, seq| {
                Batch {
                    epoch,
                    seq,
                    ..batch
                }
                .encode(level)
            },
            &local,
        );
        drop(q);
        match pushed {
            Ok(_) => self.wake.notify_one(),
            Err(e) => tracing::error!(error = %e, "cannot queue a batch; its data is lost"),
        }
    }
}

/// What a pending entry counts against `max_batch_bytes`.
fn entry_cost(e: &LogEntry) -> usize {
    e.line.len() + 32
}

/// Merges streams with the same labels (keeping each one's entries in order).
fn group_streams(taken: Vec<LogStream>) -> Option<LogsRecord> {
    if taken.is_empty() {
        return None;
    }
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut streams: Vec<LogStream> = Vec::with_capacity(taken.len());
    for s in taken {
        match index.get(&s.labels) {
            Some(&i) => streams[i].entries.extend(s.entries),
            None => {
                index.insert(s.labels.clone(), streams.len());
                streams.push(s);
            }
        }
    }
    Some(LogsRecord { streams })
}

/// What to do after a push.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Acked,
    /// The server refused the batch as malformed: drop it.
    Rejected(String),
    Retry(String),
}

fn classify(status: u16, body: &str) -> Outcome {
    match status {
        200..=299 => Outcome::Acked,
        400 | 413 | 415 => Outcome::Rejected(format!("{status}: {body}")),
        _ => Outcome::Retry(format!("{status}: {body}")),
    }
}

/// The delay before retry `attempt` (0-based): doubling from `min_ms` up to `max_ms`, the
/// upper half of it random ("equal jitter"), so agents that failed together spread out.
pub(crate) fn backoff_ms(attempt: u32, min_ms: u64, max_ms: u64, random: u64) -> u64 {
    let base = min_ms
        .saturating_mul(1u64 << attempt.min(32))
        .min(max_ms)
        .max(1);
    base / 2 + random % (base / 2 + 1)
}

fn random_u64() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    xxhash_rust::xxh3::xxh3_64(&now.to_le_bytes())
}

/// One push in flight.
struct InFlight {
    seq: u64,
    len: u64,
    task: tokio::task::JoinHandle<Outcome>,
}

/// Sends one batch; `follows` names the batch sent just before it that may still be in flight.
async fn push_one(
    client: reqwest::Client,
    url: Arc<str>,
    token: Arc<str>,
    bytes: Vec<u8>,
    follows: Option<u64>,
) -> Outcome {
    let mut req = client
        .post(&*url)
        .bearer_auth(&*token)
        .header("content-type", BATCH_CONTENT_TYPE);
    if let Some(f) = follows {
        req = req.header(FOLLOWS_HEADER, f.to_string());
    }
    match req.body(bytes).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            classify(status, body.trim())
        }
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

/// Stops every push still in flight; the next round re-sends from the first unacknowledged
/// batch (the server acknowledges what it already has as duplicates).
fn abandon(inflight: &mut VecDeque<InFlight>) {
    for f in inflight.drain(..) {
        f.task.abort();
    }
}

/// Ships queued batches in order with up to `max_inflight` pushes in flight. The first push
/// of a round carries no `follows` (everything before it is acknowledged); each later one
/// names its predecessor, so the server applies them in queue order. Results are taken in
/// order: an acknowledgement acknowledges the queue up to that batch; a failure abandons the
/// round and, after a backoff, starts a new one from the first unacknowledged batch.
async fn ship_loop(
    config: &AgentConfig,
    target: &ShipTarget,
    queue: Arc<Mutex<DiskQueue>>,
    stats: Arc<ShipStats>,
    wake: Arc<tokio::sync::Notify>,
) -> Result<()> {
    let s = &config.shipping;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(s.timeout_ms))
        .build()
        .map_err(|e| Error::Http(e.to_string()))?;
    let url: Arc<str> = format!("{}/api/v1/agent/push", target.server.trim_end_matches('/')).into();
    let token: Arc<str> = target.token.as_str().into();
    let window = s.max_inflight.max(1);
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(window);
    // The last batch sent in this round (0: none yet, start at the first unacknowledged).
    let mut last_sent = 0u64;
    let mut attempt = 0u32;
    loop {
        while inflight.len() < window {
            let q = queue.clone();
            let after = last_sent;
            let next = tokio::task::spawn_blocking(move || {
                q.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .peek_after(after)
            })
            .await
            .map_err(|e| Error::Ship(e.to_string()))??;
            let Some(batch) = next else { break };
            let follows = inflight.back().map(|f| f.seq);
            last_sent = batch.seq;
            let len = batch.bytes.len() as u64;
            let task = tokio::spawn(push_one(
                client.clone(),
                url.clone(),
                token.clone(),
                batch.bytes,
                follows,
            ));
            inflight.push_back(InFlight {
                seq: batch.seq,
                len,
                task,
            });
        }
        let Some(front) = inflight.pop_front() else {
            // Woken by the producer, or a periodic look in case a wake-up was missed.
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
            continue;
        };
        let outcome = front
            .task
            .await
            .unwrap_or_else(|e| Outcome::Retry(format!("push task failed: {e}")));
        match outcome {
            Outcome::Acked => {
                stats.sent_batches.fetch_add(1, Ordering::Relaxed);
                stats.sent_bytes.fetch_add(front.len, Ordering::Relaxed);
                attempt = 0;
            }
            Outcome::Rejected(why) => {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::error!(seq = front.seq, reason = %why, "the server refused a batch as malformed; dropping it");
                attempt = 0;
                // The pushes behind it follow a batch the server never applies.
                abandon(&mut inflight);
                last_sent = 0;
            }
            Outcome::Retry(why) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                let delay = backoff_ms(attempt, s.backoff_min_ms, s.backoff_max_ms, random_u64());
                tracing::warn!(seq = front.seq, error = %why, retry_in_ms = delay, "push failed");
                attempt = attempt.saturating_add(1);
                abandon(&mut inflight);
                last_sent = 0;
                tokio::time::sleep(Duration::from_millis(delay)).await;
                continue;
            }
        }
        let q = queue.clone();
        let seq = front.seq;
        tokio::task::spawn_blocking(move || q.lock().unwrap_or_else(|p| p.into_inner()).ack(seq))
            .await
            .map_err(|e| Error::Ship(e.to_string()))??;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() {
        for attempt in 0..40 {
            for r in [0, 1, 12345, u64::MAX] {
                let d = backoff_ms(attempt, 500, 30_000, r);
                let base = (500u64 << attempt.min(32)).min(30_000);
                assert!(d >= base / 2 && d <= base, "{attempt} {r} {d}");
            }
        }
        assert_eq!(backoff_ms(0, 500, 30_000, 0), 250);
        assert_eq!(backoff_ms(10, 500, 30_000, 0), 15_000);
    }

    #[test]
    fn statuses_decide_ack_drop_or_retry() {
        assert_eq!(classify(200, ""), Outcome::Acked);
        assert!(matches!(classify(400, "bad"), Outcome::Rejected(_)));
        assert!(matches!(classify(413, ""), Outcome::Rejected(_)));
        for s in [401, 403, 404, 429, 500, 503] {
            assert!(matches!(classify(s, ""), Outcome::Retry(_)), "{s}");
        }
    }

    #[test]
    fn local_bytes_round_trip() {
        let b = encode_local(b"tail", Some("s=1;i=2"));
        assert_eq!(decode_local(&b), Some((&b"tail"[..], Some("s=1;i=2"))));
        let b = encode_local(b"", None);
        assert_eq!(decode_local(&b), Some((&b""[..], None)));
        assert_eq!(decode_local(b"\xff\xff\xff\xff"), None);
    }

    #[test]
    fn entries_group_into_streams_in_order() {
        let a = Labels::from_pairs([("f", "a")]).unwrap();
        let b = Labels::from_pairs([("f", "b")]).unwrap();
        let one = |labels: &Labels, ts: i64| LogStream {
            labels: labels.clone(),
            entries: vec![LogEntry::new(ts, ts.to_string())],
        };
        let rec = group_streams(vec![one(&a, 1), one(&b, 2), one(&a, 3)]).unwrap();
        assert_eq!(rec.streams.len(), 2);
        assert_eq!(rec.streams[0].labels, a);
        assert_eq!(rec.streams[0].entries.len(), 2);
        assert!(group_streams(Vec::new()).is_none());
    }
}
