//! The logs consumer: the log store in `<data_dir>/logs`, fed from the `logs` topic.
//!
//! One task per partition of the topic fetches records from where the store's checkpoint says
//! (the store is the truth; the committed offsets of consumer group `logs` only report lag),
//! reads each `logs` record in place (`LogsRecordView`) and applies it with
//! `LogStore::append_record_view` (lines copied from the record into the streams' heads,
//! no allocation per line). A record that does
//! not decode is logged, counted and skipped; a stream the store refuses (a limit) is logged,
//! counted and left out, the record's other streams are applied.
//!
//! A maintenance task cuts chunks, writes due segments, applies retention and commits the
//! consumed offsets every `logs.maintain_interval`. A compaction task of its own merges sealed
//! segments (the merge at the idle scheduling policy), so a merge waiting for spare CPU never
//! holds up maintenance. The shutdown hook stops the tasks, flushes the store (everything
//! applied becomes durable) and commits a last time.
//!
//! The store does blocking file I/O and CPU-heavy work: every use of it runs on a blocking
//! thread (`spawn_blocking`) behind a `RwLock` (writes exclusive, queries shared).

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bongsu_logstore::{Compacted, CompactionPlan, LogStore, StoreStats};
use bongsu_model::{Labels, LogsRecord, LogsRecordView};
use bongsu_stream::{FetchOptions, OffsetCommit, StoredRecord, Stream, TopicPartition};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::idle;
use crate::ingest::LOGS_TOPIC;
use crate::logs_config::LogsSettings;
use crate::metrics::{CounterVec, MetricKind, MetricsSource, MetricsWriter};
use crate::state::AppState;
use crate::{Error, Result};

/// The consumer group whose committed offsets report the consumer's lag.
pub(crate) const LOGS_GROUP: &str = "logs";

/// Bytes fetched per partition at most per round.
const FETCH_MAX_BYTES: usize = 4 << 20;
/// Longest wait of a fetch for new records (the stop signal interrupts it).
const FETCH_MAX_WAIT_MS: u64 = 500;
/// Wait before retrying after a failed fetch or apply.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The log store and what the receivers and the query API share with the consumer.
pub(crate) struct Logs {
    store: Arc<RwLock<LogStore>>,
    settings: LogsSettings,
    /// Stream label sets the receivers have let through (seeded from the store at start-up).
    known: Mutex<HashSet<Labels>>,
    /// Bumped after every applied fetch: live tails wait on it.
    applied: watch::Sender<u64>,
    /// Per partition, the next offset to consume (what has been applied).
    positions: Mutex<BTreeMap<u32, u64>>,
    metrics: LogsMetrics,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").finish_non_exhaustive()
    }
}

/// Why a read of the store failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    Store(bongsu_logstore::Error),
    Task(String),
}

impl Logs {
    /// The `[logs]` settings in effect.
    pub(crate) fn settings(&self) -> &LogsSettings {
        &self.settings
    }

    /// Runs `f` over the store on a blocking thread (shared lock).
    pub(crate) async fn read<T, F>(&self, f: F) -> std::result::Result<T, ReadError>
    where
        F: FnOnce(&LogStore) -> bongsu_logstore::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&read_lock(&store)))
            .await
            .map_err(|e| ReadError::Task(e.to_string()))?
            .map_err(ReadError::Store)
    }

    /// A receiver of the applied-records signal (changes after every applied fetch).
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Checks a push's streams against the stream label limits before it is appended: label
    /// count, label length, and the number of streams. The message names the limit to raise.
    pub(crate) fn check_push(&self, rec: &LogsRecord) -> std::result::Result<(), String> {
        let s = &self.settings;
        for st in &rec.streams {
            if st.labels.len() > s.max_labels_per_stream {
                return Err(format!(
                    "stream {} has {} labels, limit {}: drop some stream labels (keep high-cardinality values in the line or in structured metadata) or raise logs.max_labels_per_stream",
                    st.labels,
                    st.labels.len(),
                    s.max_labels_per_stream
                ));
            }
            for l in &st.labels {
                let len = l.name.len().max(l.value.len());
                if len > s.max_label_bytes {
                    let name: String = l.name.chars().take(64).collect();
                    return Err(format!(
                        "stream label {name:?} is {len} bytes long, limit {}: keep long values in the line or in structured metadata, or raise logs.max_label_bytes",
                        s.max_label_bytes
                    ));
                }
            }
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let new: HashSet<&Labels> = rec
            .streams
            .iter()
            .map(|st| &st.labels)
            .filter(|l| !known.contains(*l))
            .collect();
        if !new.is_empty() && known.len() + new.len() > s.max_streams {
            return Err(format!(
                "push would create {} new streams but the store holds {} of at most {} streams (logs.max_streams): keep high-cardinality values (ids, IPs, timestamps) out of stream labels, or raise logs.max_streams",
                new.len(),
                known.len(),
                s.max_streams
            ));
        }
        for l in new {
            known.insert(l.clone());
        }
        Ok(())
    }

    fn set_position(&self, partition: u32, next: u64) {
        self.positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(partition, next);
    }

    fn commits(&self) -> Vec<OffsetCommit> {
        self.positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(&partition, &offset)| OffsetCommit {
                tp: TopicPartition {
                    topic: LOGS_TOPIC.to_owned(),
                    partition,
                },
                offset,
            })
            .collect()
    }
}

fn read_lock(store: &RwLock<LogStore>) -> RwLockReadGuard<'_, LogStore> {
    store.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock(store: &RwLock<LogStore>) -> RwLockWriteGuard<'_, LogStore> {
    store.write().unwrap_or_else(|p| p.into_inner())
}

/// Opens the log store in `<data_dir>/logs`, starts the consumer and maintenance tasks on
/// `stream`, attaches the store to `state` (receivers and query API) and registers its
/// metrics and its shutdown hook. Call it before the stream's own shutdown hook is registered:
/// hooks run in registration order and this one still fetches and commits.
pub(crate) async fn start(state: &AppState, stream: Arc<dyn Stream>) -> Result<Arc<Logs>> {
    let config = state.config();
    let dir = config.server.data_dir.join("logs");
    let cfg = config.logs.store_config(config.ingest.max_line_bytes);
    let store = blocking(move || LogStore::open(&dir, cfg)).await??;
    let applied_offsets: BTreeMap<u32, u64> = store.applied_offsets().into_iter().collect();
    let known: HashSet<Labels> = store.stream_labels().into_iter().collect();
    let topic = stream.describe_topic(LOGS_TOPIC).await?;
    let (applied, _) = watch::channel(0u64);
    let logs = Arc::new(Logs {
        store: Arc::new(RwLock::new(store)),
        settings: config.logs.clone(),
        known: Mutex::new(known),
        applied,
        positions: Mutex::new(BTreeMap::new()),
        metrics: LogsMetrics::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for p in &topic.partitions {
        // Offsets the stream no longer retains start at its log start.
        let from = applied_offsets
            .get(&p.partition)
            .copied()
            .unwrap_or(0)
            .max(p.log_start_offset);
        logs.set_position(p.partition, from);
        tasks.push(tokio::spawn(consume_partition(
            logs.clone(),
            stream.clone(),
            p.partition,
            from,
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(maintain_loop(
        logs.clone(),
        stream.clone(),
        stop_rx.clone(),
    )));
    let merge: Merge = Arc::new(|plan: CompactionPlan| {
        Box::pin(idle::run_idle("bongsu-logs-compact", move || plan.run()))
    });
    tasks.push(tokio::spawn(compact_loop(logs.clone(), stop_rx, merge)));
    tracing::info!(
        partitions = topic.partitions.len(),
        streams = logs.known.lock().map(|k| k.len()).unwrap_or(0),
        "logs consumer started"
    );
    state.add_metrics_source(Arc::new(LogsMetricsSource(logs.clone())));
    state.attach_logs(logs.clone());
    let hook_logs = logs.clone();
    state.add_shutdown_hook("logs", move || async move {
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let store = hook_logs.store.clone();
        match blocking(move || write_lock(&store).flush()).await {
            Ok(Ok(())) => tracing::info!("log store flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "cannot flush the log store: the logs topic is replayed at the next start"),
            Err(e) => tracing::error!(error = %e, "cannot flush the log store"),
        }
        commit(&hook_logs, stream.as_ref()).await;
    });
    Ok(logs)
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}

/// Waits `d` or until stopped; true when stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn consume_partition(
    logs: Arc<Logs>,
    stream: Arc<dyn Stream>,
    partition: u32,
    mut next: u64,
    mut stop: watch::Receiver<bool>,
) {
    let opts = FetchOptions {
        max_partition_fetch_bytes: FETCH_MAX_BYTES,
        fetch_min_bytes: 1,
        fetch_max_wait_ms: FETCH_MAX_WAIT_MS,
    };
    // Records were applied since the last empty fetch.
    let mut busy = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let fetched = tokio::select! {
            r = stream.fetch(LOGS_TOPIC, partition, next, opts) => r,
            _ = stop.changed() => return,
        };
        match fetched {
            Ok(res) => {
                let Some(last) = res.records.last().map(|r| r.offset) else {
                    if std::mem::take(&mut busy) {
                        // Caught up after applying: what the burst freed can go back.
                        crate::allocator::request_trim();
                    }
                    continue;
                };
                busy = true;
                let l = logs.clone();
                match blocking(move || apply(&l, partition, res.records)).await {
                    Ok(()) => {
                        next = last + 1;
                        logs.set_position(partition, next);
                        logs.applied.send_modify(|g| *g += 1);
                    }
                    Err(e) => {
                        tracing::error!(partition, error = %e, "cannot apply log records: retrying");
                        if pause(&mut stop, RETRY_DELAY).await {
                            return;
                        }
                    }
                }
            }
            Err(bongsu_stream::Error::OffsetOutOfRange {
                log_start,
                high_watermark,
                ..
            }) if next < log_start => {
                tracing::warn!(
                    partition,
                    from = next,
                    to = log_start,
                    high_watermark,
                    "log records were deleted by stream retention before the log store applied them: skipping to the log start"
                );
                logs.metrics
                    .lost
                    .fetch_add(log_start - next, Ordering::Relaxed);
                next = log_start;
            }
            Err(bongsu_stream::Error::Shutdown) => return,
            Err(e) => {
                tracing::error!(partition, offset = next, error = %e, "cannot fetch from the logs topic: retrying");
                if pause(&mut stop, RETRY_DELAY).await {
                    return;
                }
            }
        }
    }
}

/// Reads `records` in place and applies them to the store, in offset order (blocking).
fn apply(logs: &Logs, partition: u32, records: Vec<StoredRecord>) {
    let m = &logs.metrics;
    // Read before taking the lock; the views borrow the records' bytes.
    let views: Vec<(u64, LogsRecordView<'_>)> = records
        .iter()
        .map(|r| match LogsRecordView::parse(&r.value) {
            Ok(view) => (r.offset, view),
            Err(e) => {
                tracing::warn!(partition, offset = r.offset, error = %e, "skipping a logs record that does not decode");
                m.records_skipped.fetch_add(1, Ordering::Relaxed);
                // Applied empty, so the checkpoint moves past it.
                (r.offset, LogsRecordView::default())
            }
        })
        .collect();
    let mut store = write_lock(&logs.store);
    for (offset, view) in &views {
        let Some(rejected) = store.append_record_view(partition, *offset, view) else {
            m.records_replayed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        m.records_applied.fetch_add(1, Ordering::Relaxed);
        let mut applied = view.entry_count();
        for r in &rejected {
            applied -= r.entries;
            tracing::warn!(partition, offset, stream = %r.labels, error = %r.error, "log store left out a stream");
            m.rejected
                .with(&[reject_reason(&r.error)])
                .inc_by(r.entries as f64);
        }
        m.entries_applied
            .fetch_add(applied as u64, Ordering::Relaxed);
    }
}

fn reject_reason(e: &bongsu_logstore::Error) -> &'static str {
    use bongsu_logstore::Error as E;
    match e {
        E::TooManyStreams { .. } => "too_many_streams",
        E::TooManyLabels { .. } => "too_many_labels",
        E::LabelTooLong { .. } => "label_too_long",
        E::EmptyStream => "empty_stream",
        E::OutOfOrder { .. } => "out_of_order",
        E::LineTooLong { .. } => "line_too_long",
        _ => "other",
    }
}

async fn maintain_loop(logs: Arc<Logs>, stream: Arc<dyn Stream>, mut stop: watch::Receiver<bool>) {
    let every = logs.settings.maintain_interval;
    loop {
        if pause(&mut stop, every).await {
            return;
        }
        let store = logs.store.clone();
        match blocking(move || {
            let mut s = write_lock(&store);
            s.maintain().map(|()| s.stats())
        })
        .await
        {
            Ok(Ok(stats)) => logs.metrics.set_stats(&stats),
            Ok(Err(e)) => {
                logs.metrics.maintain_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "log store maintenance failed: retrying at the next interval");
            }
            Err(e) => tracing::error!(error = %e, "log store maintenance task failed"),
        }
        commit(&logs, stream.as_ref()).await;
    }
}

/// Compacts sealed segments, looking for work at every maintenance interval. It is a task of
/// its own, not a step of [`maintain_loop`]: the merge waits for spare CPU (idle policy), and
/// under a sustained ingest peak it may wait for minutes, while chunks must still reach
/// segments, the checkpoint move and the offsets be committed on time.
async fn compact_loop(logs: Arc<Logs>, mut stop: watch::Receiver<bool>, merge: Merge) {
    let every = logs.settings.maintain_interval;
    loop {
        if pause(&mut stop, every).await {
            return;
        }
        compact(&logs, &stop, &merge).await;
    }
}

/// Runs a compaction step's merge ([`CompactionPlan::run`]); the server runs it on a thread at
/// the idle scheduling policy, tests hold it to show that a waiting merge blocks nothing.
type Merge = Arc<
    dyn Fn(
            CompactionPlan,
        )
            -> Pin<Box<dyn Future<Output = Result<bongsu_logstore::Result<Compacted>>> + Send>>
        + Send
        + Sync,
>;

/// Compacts sealed segments step by step until nothing is left to merge or the server stops.
/// Each step plans under the shared lock, merges and recompresses with no lock held on a thread
/// at the idle scheduling policy (it only uses CPU time ingest leaves over; queries and appends
/// go on), and installs the result under the exclusive lock. At shutdown a step in progress is
/// abandoned: its unfinished file is an orphan the next open deletes.
async fn compact(logs: &Logs, stop: &watch::Receiver<bool>, merge: &Merge) {
    let mut stop = stop.clone();
    while !*stop.borrow() {
        let store = logs.store.clone();
        let plan = match blocking(move || read_lock(&store).plan_compaction()).await {
            Ok(Ok(Some(plan))) => plan,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return compaction_failed(logs, &e),
            Err(e) => return compaction_failed(logs, &e),
        };
        let done = tokio::select! {
            done = merge(plan) => done,
            _ = stop.changed() => return,
        };
        let done = match done {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return compaction_failed(logs, &e),
            Err(e) => return compaction_failed(logs, &e),
        };
        let store = logs.store.clone();
        let step = blocking(move || {
            let mut s = write_lock(&store);
            s.install_compaction(done)
                .map(|installed| (installed, s.stats()))
        })
        .await;
        match step {
            Ok(Ok((installed, stats))) => {
                if installed {
                    logs.metrics.compactions.fetch_add(1, Ordering::Relaxed);
                }
                logs.metrics.set_stats(&stats);
            }
            Ok(Err(e)) => return compaction_failed(logs, &e),
            Err(e) => return compaction_failed(logs, &e),
        }
    }
}

fn compaction_failed(logs: &Logs, e: &dyn std::fmt::Display) {
    logs.metrics.maintain_errors.fetch_add(1, Ordering::Relaxed);
    tracing::error!(error = %e, "log store compaction failed: retrying at the next interval");
}

/// Commits the consumed positions for group `logs` (standalone: no member, generation 0).
async fn commit(logs: &Logs, stream: &dyn Stream) {
    let offsets = logs.commits();
    if offsets.is_empty() {
        return;
    }
    if let Err(e) = stream.commit_offsets(LOGS_GROUP, "", 0, offsets).await {
        tracing::warn!(error = %e, "cannot commit the logs consumer's offsets");
    }
}

/// The consumer's and the store's self-metrics.
struct LogsMetrics {
    records_applied: AtomicU64,
    records_replayed: AtomicU64,
    records_skipped: AtomicU64,
    entries_applied: AtomicU64,
    lost: AtomicU64,
    maintain_errors: AtomicU64,
    compactions: AtomicU64,
    rejected: CounterVec,
    streams: AtomicU64,
    segments: AtomicU64,
    segment_bytes: AtomicU64,
    stored_line_bytes: AtomicU64,
    pending_line_bytes: AtomicU64,
}

impl LogsMetrics {
    fn new() -> LogsMetrics {
        LogsMetrics {
            records_applied: AtomicU64::new(0),
            records_replayed: AtomicU64::new(0),
            records_skipped: AtomicU64::new(0),
            entries_applied: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            maintain_errors: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            rejected: CounterVec::new(
                "bongsu_logs_entries_rejected_total",
                "Log entries the log store left out (their whole stream of a record), by reason.",
                &["reason"],
            ),
            streams: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            segment_bytes: AtomicU64::new(0),
            stored_line_bytes: AtomicU64::new(0),
            pending_line_bytes: AtomicU64::new(0),
        }
    }

    fn set_stats(&self, s: &StoreStats) {
        self.streams.store(s.streams as u64, Ordering::Relaxed);
        self.segments.store(s.segments as u64, Ordering::Relaxed);
        self.segment_bytes.store(s.segment_bytes, Ordering::Relaxed);
        self.stored_line_bytes
            .store(s.segment_line_bytes, Ordering::Relaxed);
        self.pending_line_bytes
            .store(s.pending_line_bytes as u64, Ordering::Relaxed);
    }
}

struct LogsMetricsSource(Arc<Logs>);

impl MetricsSource for LogsMetricsSource {
    fn collect(&self, out: &mut MetricsWriter) {
        let m = &self.0.metrics;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let counters = [
            ("bongsu_logs_records_applied_total", "Records of the logs topic applied to the log store.", &m.records_applied),
            ("bongsu_logs_records_replayed_total", "Records of the logs topic fetched again after a restart and skipped as already applied.", &m.records_replayed),
            ("bongsu_logs_records_skipped_total", "Records of the logs topic that did not decode and were skipped.", &m.records_skipped),
            ("bongsu_logs_entries_applied_total", "Log entries applied to the log store.", &m.entries_applied),
            ("bongsu_logs_records_lost_total", "Records of the logs topic deleted by stream retention before the log store applied them.", &m.lost),
            ("bongsu_logs_maintain_errors_total", "Failed log store maintenance runs (segment writes, retention, compaction).", &m.maintain_errors),
            ("bongsu_logs_compactions_total", "Compaction steps installed (segments merged into 4 MiB chunks at a higher compression level).", &m.compactions),
        ];
        for (name, help, v) in counters {
            out.family(name, help, MetricKind::Counter);
            out.sample(name, &[], get(v));
        }
        let gauges = [
            (
                "bongsu_logs_streams",
                "Streams in the log store (as of the last maintenance).",
                &m.streams,
            ),
            (
                "bongsu_logs_segments",
                "Segment files of the log store.",
                &m.segments,
            ),
            (
                "bongsu_logs_segment_bytes",
                "Bytes of the log store's segment files.",
                &m.segment_bytes,
            ),
            (
                "bongsu_logs_stored_line_bytes",
                "Bytes of line text in segments, before compression.",
                &m.stored_line_bytes,
            ),
            (
                "bongsu_logs_pending_line_bytes",
                "Bytes of line text applied but not yet in a segment.",
                &m.pending_line_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            out.family(name, help, MetricKind::Gauge);
            out.sample(name, &[], get(v));
        }
        m.rejected.collect(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_model::LogEntry;
    use bongsu_stream::{MemoryStream, StreamOptions};
    use std::sync::mpsc;

    fn logs_over(store: LogStore) -> Arc<Logs> {
        let (applied, _) = watch::channel(0u64);
        Arc::new(Logs {
            store: Arc::new(RwLock::new(store)),
            settings: LogsSettings {
                maintain_interval: Duration::from_millis(20),
                ..LogsSettings::default()
            },
            known: Mutex::new(HashSet::new()),
            applied,
            positions: Mutex::new(BTreeMap::new()),
            metrics: LogsMetrics::new(),
        })
    }

    fn segments(logs: &Logs) -> usize {
        read_lock(&logs.store).stats().segments
    }

    async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// While a compaction step's merge is held (as an ingest peak holds an idle-policy
    /// thread), maintenance still cuts chunks and writes segments; once the merge goes on, the
    /// step installs and every line is still there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_compaction_does_not_hold_up_maintenance() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = bongsu_logstore::Config {
            // Every maintenance run cuts every head and writes a segment.
            max_chunk_age_ns: 0,
            flush_interval_ns: 0,
            // As the server runs it: compaction is the task's, not `maintain`'s.
            compaction: false,
            ..bongsu_logstore::Config::default()
        };
        let logs = logs_over(LogStore::open(dir.path(), cfg).unwrap());
        let labels = Labels::from_pairs([("app", "compact")]).unwrap();
        let mut next = 0u64;
        let mut append = |logs: &Logs| {
            let entries: Vec<LogEntry> = (0..10)
                .map(|i| LogEntry::new(1_000 + (next * 10 + i) as i64, format!("line {next} {i}")))
                .collect();
            write_lock(&logs.store)
                .append(0, next, &labels, &entries)
                .unwrap();
            next += 1;
        };

        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let held = Arc::new((Mutex::new(started_tx), Mutex::new(go_rx)));
        let merge: Merge = Arc::new(move |plan: CompactionPlan| {
            let held = held.clone();
            Box::pin(async move {
                blocking(move || {
                    let _ = held.0.lock().unwrap().send(());
                    let _ = held.1.lock().unwrap().recv();
                    plan.run()
                })
                .await
            })
        });
        let stream: Arc<dyn Stream> = MemoryStream::new(StreamOptions::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let maintain = tokio::spawn(maintain_loop(logs.clone(), stream, stop_rx.clone()));
        let compaction = tokio::spawn(compact_loop(logs.clone(), stop_rx, merge));

        append(&logs);
        wait_for("the first segment", || segments(&logs) >= 1).await;
        // The compaction task picks that segment and its merge now waits.
        tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap()
            .expect("a compaction step started");
        let before = segments(&logs);
        for _ in 0..3 {
            append(&logs);
            let want = segments(&logs) + 1;
            wait_for("a segment written during the merge", || {
                segments(&logs) >= want
            })
            .await;
        }
        assert_eq!(segments(&logs), before + 3);
        assert_eq!(logs.metrics.compactions.load(Ordering::Relaxed), 0);

        go_tx.send(()).unwrap();
        wait_for("the step installed", || {
            logs.metrics.compactions.load(Ordering::Relaxed) >= 1
        })
        .await;
        let _ = stop_tx.send(true);
        drop(go_tx);
        maintain.await.unwrap();
        compaction.await.unwrap();
        let stats = read_lock(&logs.store).stats();
        assert_eq!(stats.segment_line_bytes, {
            let n = next as usize;
            (0..n)
                .flat_map(|a| (0..10).map(move |i| format!("line {a} {i}").len()))
                .sum::<usize>() as u64
        });
    }
}
