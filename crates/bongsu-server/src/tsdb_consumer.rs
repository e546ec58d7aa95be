//! The time-series store wired as a consumer of the `metrics` topic.
//!
//! [`start`] opens the store under `<data_dir>/tsdb`, starts its compactor and one task per
//! partition of the `metrics` topic. Each task fetches from the offset the store itself
//! reports as applied ([`Tsdb::applied_offsets`]: the store's checkpoint is the only truth, the
//! log is its write-ahead log), decodes [`MetricsRecord`]s, appends them and marks the offsets
//! applied, all on the blocking pool. It also commits the offsets of the consumer group
//! `tsdb` (at most once a second while records keep coming, at once when caught up), so
//! `bongsu_stream_consumer_lag_records{group="tsdb"}` shows how far behind the store is. A record that does not decode is logged, counted and skipped.
//!
//! The shutdown hook stops the tasks, stops the compactor and persists the head, so that the
//! next start replays nothing that was already applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bongsu_ingest::WriteRequestView;
use bongsu_model::{Label, Labels, MetricMetadata, MetricsRecord, MetricsRecordView, Sample};
use bongsu_stream::{FetchOptions, OffsetCommit, StoredRecord, Stream, TopicPartition};
use bongsu_tsdb::{Compactor, Options, SeriesRef, Tsdb};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api_error::{ApiError, ErrorCode};
use crate::config::{QuerySettings, TsdbSettings};
use crate::ingest::METRICS_TOPIC;
use crate::metrics::{MetricKind, MetricsSource, MetricsWriter};
use crate::state::AppState;
use crate::{Error, Result};

/// The consumer group whose committed offsets show the store's lag.
pub(crate) const CONSUMER_GROUP: &str = "tsdb";

/// How long a fetch waits for new records before it polls again.
const FETCH_WAIT_MS: u64 = 500;
/// Most bytes fetched from one partition at once.
const FETCH_MAX_BYTES: usize = 4 << 20;
/// Pause after a failed fetch before the next try.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Least time between two commits of the `tsdb` group's offset while records keep coming
/// (each commit is a durable write; the offset only shows the lag, the store's checkpoint is
/// what replay starts from). A consumer that caught up commits at once.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes of records applied since the last trim request after which catching up with the log
/// asks for a trim at once: a burst that large left freed memory worth handing back now. A
/// smaller one is trimmed after the next empty fetch, or by the periodic trim.
const TRIM_AFTER_BYTES: usize = 16 << 20;

/// Counters of the consumer and of queries, rendered on `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct StoreCounters {
    pub(crate) records_applied: AtomicU64,
    pub(crate) bad_records: AtomicU64,
    pub(crate) samples_appended: AtomicU64,
    pub(crate) samples_out_of_window: AtomicU64,
    pub(crate) samples_duplicate: AtomicU64,
    /// Samples of series the store refused at its cardinality limits.
    pub(crate) samples_refused: AtomicU64,
    /// remote_write requests refused by the receiver's cardinality check.
    pub(crate) cardinality_rejections: AtomicU64,
    /// Samples read by queries, by source.
    pub(crate) query_raw_samples: AtomicU64,
    pub(crate) query_5m_points: AtomicU64,
    pub(crate) query_1h_points: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The metrics store: the tsdb, the metadata that arrived with samples, counters.
pub(crate) struct MetricsStore {
    pub(crate) tsdb: Arc<Tsdb>,
    /// Latest metadata per metric family, as it arrived (in memory; rebuilt as records
    /// arrive after a restart).
    pub(crate) metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    pub(crate) counters: StoreCounters,
    pub(crate) query: QuerySettings,
    compactor: Mutex<Option<Compactor>>,
    /// Label hashes of series the receiver already admitted (see [`check_cardinality_view`]).
    admitted: Mutex<Admitted>,
}

/// Series the receiver's cardinality check already passed, by their partition label hash.
#[derive(Debug, Default)]
struct Admitted {
    hashes: HashSet<u64, BuildHasherDefault<IdentityHasher>>,
    /// Head series count when last seen: when it drops, series left the head and the set is
    /// forgotten, so that they are checked again when they come back.
    head_series: usize,
}

/// Most hashes kept in [`Admitted`] (16 bytes each at most); past it the set starts over.
const ADMITTED_CAP: usize = 1 << 21;

/// A hasher for keys that are already hashes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl std::fmt::Debug for MetricsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsStore").finish_non_exhaustive()
    }
}

/// The `[tsdb]` settings as store options.
pub(crate) fn tsdb_options(s: &TsdbSettings) -> Options {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Options {
        ooo_window_ms: ms(s.ooo_window),
        max_series: s.max_series,
        max_series_per_metric: s.max_series_per_metric,
        retention_raw_ms: ms(s.retention_raw),
        retention_5m_ms: ms(s.retention_5m),
        retention_1h_ms: ms(s.retention_1h),
        ..Options::default()
    }
}

impl MetricsStore {
    /// Opens the store in `dir` (blocking: call it off the async runtime).
    pub(crate) fn open(
        dir: &std::path::Path,
        tsdb: &TsdbSettings,
        query: &QuerySettings,
    ) -> Result<MetricsStore> {
        Ok(MetricsStore::over(
            Tsdb::open(dir, tsdb_options(tsdb))?,
            query,
        ))
    }

    /// A store over an open tsdb (tests choose its options).
    pub(crate) fn over(db: Tsdb, query: &QuerySettings) -> MetricsStore {
        MetricsStore {
            tsdb: Arc::new(db),
            metadata: RwLock::new(BTreeMap::new()),
            counters: StoreCounters::default(),
            query: query.clone(),
            compactor: Mutex::new(None),
            admitted: Mutex::new(Admitted::default()),
        }
    }

    /// Applies fetched records of `partition` and marks them applied. Returns the next
    /// offset to fetch. Blocking. (The consumer keeps a cache: [`MetricsStore::apply_cached`].)
    #[cfg(test)]
    pub(crate) fn apply(&self, partition: u32, records: &[StoredRecord]) -> Option<u64> {
        self.apply_cached(partition, records, &mut SeriesCache::default())
    }

    /// [`MetricsStore::apply`] with the partition's series cache: records are read in place
    /// and known series are appended by ref, without building their labels.
    pub(crate) fn apply_cached(
        &self,
        partition: u32,
        records: &[StoredRecord],
        cache: &mut SeriesCache,
    ) -> Option<u64> {
        let last = records.last()?;
        for r in records {
            let rec = match MetricsRecordView::parse(&r.value) {
                Ok(rec) => rec,
                Err(e) => {
                    add(&self.counters.bad_records, 1);
                    tracing::warn!(partition, offset = r.offset, error = %e, "skipping a metrics record that does not decode");
                    continue;
                }
            };
            let (mut appended, mut ooo, mut dups) = (0, 0, 0);
            {
                let mut app = self.tsdb.appender();
                for s in rec.series() {
                    cache.samples.clear();
                    cache.samples.extend(s.samples());
                    let key = cache_key(s.labels);
                    let by_ref = cache
                        .refs
                        .get(&key)
                        .and_then(|&r| app.append_ref(r, s.labels, &cache.samples));
                    let outcome = match by_ref {
                        Some(o) => o,
                        None => {
                            let labels = owned_labels(s.labels);
                            match app.append(&labels, &cache.samples) {
                                Ok((r, o)) => {
                                    if let Some(r) = r {
                                        if cache.refs.len() >= SERIES_CACHE_CAP {
                                            cache.refs.clear();
                                        }
                                        cache.refs.insert(key, r);
                                        // The receiver knows series by their partition hash.
                                        self.admit(crate::metrics_partition::label_hash(
                                            s.labels.iter().copied(),
                                        ));
                                    }
                                    o
                                }
                                Err(e) => {
                                    add(&self.counters.samples_refused, cache.samples.len() as u64);
                                    tracing::warn!(partition, offset = r.offset, series = %labels, error = %e, "series refused by the store");
                                    continue;
                                }
                            }
                        }
                    };
                    appended += outcome.appended;
                    ooo += outcome.out_of_window;
                    dups += outcome.duplicates;
                }
            }
            add(&self.counters.samples_appended, appended);
            add(&self.counters.samples_out_of_window, ooo);
            add(&self.counters.samples_duplicate, dups);
            if !rec.metadata().is_empty() {
                let mut m = self.metadata.write().unwrap_or_else(|p| p.into_inner());
                for md in rec.metadata() {
                    m.insert(
                        md.family.to_owned(),
                        MetricMetadata {
                            family: md.family.to_owned(),
                            kind: md.kind,
                            help: md.help.to_owned(),
                            unit: md.unit.to_owned(),
                        },
                    );
                }
            }
            add(&self.counters.records_applied, 1);
        }
        let next = last.offset + 1;
        self.tsdb.mark_applied(&[(partition, next)]);
        Some(next)
    }
}

/// Most series refs one partition's consumer remembers; past it the cache starts over.
const SERIES_CACHE_CAP: usize = 1 << 21;

/// One partition consumer's memory: label-set hash → the series' ref in the store, and a
/// reused sample buffer. A ref is checked against the labels on every use, so a stale one
/// (the series left the head) or a hash collision only costs a lookup by labels.
#[derive(Debug, Default)]
pub(crate) struct SeriesCache {
    refs: HashMap<u64, SeriesRef, BuildHasherDefault<IdentityHasher>>,
    samples: Vec<Sample>,
}

/// The series cache's key: a hash of the label pairs that reads eight bytes per step (the
/// partition hash, FNV-1a, reads one, and the cache needs no stable hash). A collision only
/// costs a lookup by labels: every cached ref is checked against the labels.
fn cache_key(labels: &[(&str, &str)]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = labels.len() as u64;
    let mut eat = |s: &str| {
        let mut chunks = s.as_bytes().chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(23) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length ends each string, so "ab","c" and "a","bc" differ.
        h = (h.rotate_left(23) ^ u64::from_le_bytes(w) ^ ((s.len() as u64) << 56)).wrapping_mul(K);
    };
    for &(n, v) in labels {
        eat(n);
        eat(v);
    }
    // Final avalanche (murmur3's fmix64): every input bit reaches the low bits the map uses.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl MetricsStore {
    /// Records that the series with this label hash is in the store's head, so the
    /// receiver's cardinality check can skip it.
    fn admit(&self, hash: u64) {
        let mut a = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        if a.hashes.len() >= ADMITTED_CAP {
            a.hashes.clear();
        }
        a.hashes.insert(hash);
    }
}

fn owned_labels(pairs: &[(&str, &str)]) -> Labels {
    // The record's label sets are canonical (checked by the view), so this cannot fail.
    Labels::new(pairs.iter().map(|&(n, v)| Label::new(n, v)).collect()).unwrap_or_default()
}

/// Refuses a remote_write request that would make the store exceed `tsdb.max_series` or
/// `tsdb.max_series_per_metric` (400, nothing appended). Series sent in requests that were
/// accepted but not yet applied by the consumer are not counted yet: the store's own check
/// at append time is the backstop (`bongsu_tsdb_refused_samples_total`).
pub(crate) fn check_cardinality(
    store: Option<&MetricsStore>,
    record: &MetricsRecord,
) -> std::result::Result<(), ApiError> {
    let Some(store) = store else {
        return Ok(());
    };
    let refuse = |message: String| {
        add(&store.counters.cardinality_rejections, 1);
        Err(ApiError::new(ErrorCode::BadData, message))
    };
    match store
        .tsdb
        .check_new_series(record.series.iter().map(|s| &s.labels))
    {
        Ok(()) => Ok(()),
        Err(bongsu_tsdb::Error::MetricSeriesLimit { metric, limit }) => refuse(format!(
            "request would create more than {limit} series of metric {metric:?} (tsdb.max_series_per_metric): nothing of it was stored; drop high-cardinality labels or raise the limit"
        )),
        Err(bongsu_tsdb::Error::SeriesLimit { limit }) => refuse(format!(
            "request would create more than {limit} series in total (tsdb.max_series): nothing of it was stored; drop high-cardinality labels or raise the limit"
        )),
        Err(e) => Err(ApiError::internal(&e)),
    }
}

/// [`check_cardinality`] for a decoded request view; `hashes[i]` is the partition label hash
/// of its `i`-th series. Series the store's consumer has already put in the head (their
/// hash is in the admitted set) are not new and are not checked again, so a steady stream
/// of known series costs a set lookup each, no labels built. The set is forgotten when the
/// head's series count drops (series left the head); a 64-bit hash collision with a known
/// series would skip a new series' check, and the store's own check at append time is the
/// backstop for that, as for series accepted but not yet applied.
pub(crate) fn check_cardinality_view(
    store: Option<&MetricsStore>,
    view: &WriteRequestView<'_>,
    hashes: &[u64],
) -> std::result::Result<(), ApiError> {
    let Some(store) = store else {
        return Ok(());
    };
    let head_series = store.tsdb.head_series();
    let unknown: Vec<usize> = {
        let mut a = store.admitted.lock().unwrap_or_else(|p| p.into_inner());
        if head_series < a.head_series {
            a.hashes.clear();
        }
        a.head_series = head_series;
        hashes
            .iter()
            .enumerate()
            .filter(|(_, h)| !a.hashes.contains(h))
            .map(|(i, _)| i)
            .collect()
    };
    if unknown.is_empty() {
        return Ok(());
    }
    let series: Vec<WriteRequestSeries<'_>> = view.series().collect();
    let record = MetricsRecord {
        series: unknown
            .iter()
            .filter_map(|&i| series.get(i))
            .map(|s| bongsu_model::Series {
                labels: owned_labels(s.labels),
                samples: Vec::new(),
            })
            .collect(),
        metadata: Vec::new(),
    };
    check_cardinality(Some(store), &record)
}

type WriteRequestSeries<'v> = bongsu_ingest::WriteSeries<'v, 'v>;

/// A running consumer: its tasks and the stop signal.
struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Opens the store, starts the compactor and the consumer tasks, adds the store's metrics
/// source and its shutdown hook (register it before the stream's, so the store stops first).
pub(crate) async fn start(state: &AppState, stream: Arc<dyn Stream>) -> Result<Arc<MetricsStore>> {
    let config = state.config();
    let dir = config.server.data_dir.join("tsdb");
    let (tsdb_settings, query) = (config.tsdb.clone(), config.query.clone());
    let store =
        tokio::task::spawn_blocking(move || MetricsStore::open(&dir, &tsdb_settings, &query))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    let store = Arc::new(store);
    let compactor = store.tsdb.start_compactor(config.tsdb.compaction_interval);
    *store.compactor.lock().unwrap_or_else(|p| p.into_inner()) = Some(compactor);

    let desc = stream.describe_topic(METRICS_TOPIC).await?;
    let applied: BTreeMap<u32, u64> = store.tsdb.applied_offsets().into_iter().collect();
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for p in &desc.partitions {
        let from = applied
            .get(&p.partition)
            .copied()
            .unwrap_or(p.log_start_offset);
        tracing::info!(
            partition = p.partition,
            from,
            end = p.high_watermark,
            "tsdb consumer starts"
        );
        tasks.push(tokio::spawn(consume(
            stream.clone(),
            store.clone(),
            p.partition,
            from,
            stop_rx.clone(),
        )));
    }
    state.add_metrics_source(store.clone());
    let running = Running { stop, tasks };
    let hook_store = store.clone();
    state.add_shutdown_hook("tsdb", move || async move {
        let _ = running.stop.send(true);
        for t in running.tasks {
            let _ = t.await;
        }
        let s = hook_store.clone();
        let done = tokio::task::spawn_blocking(move || {
            // Dropping the compactor waits for a pass in progress.
            drop(s.compactor.lock().unwrap_or_else(|p| p.into_inner()).take());
            s.tsdb.flush()
        })
        .await;
        match done {
            Ok(Ok(_)) => tracing::info!("tsdb flushed"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "tsdb flush failed: the log is replayed on the next start")
            }
            Err(e) => tracing::error!(error = %e, "tsdb flush task failed"),
        }
    });
    Ok(store)
}

/// Consumes one partition until stopped.
async fn consume(
    stream: Arc<dyn Stream>,
    store: Arc<MetricsStore>,
    partition: u32,
    mut offset: u64,
    mut stop: watch::Receiver<bool>,
) {
    let opts = FetchOptions {
        max_partition_fetch_bytes: FETCH_MAX_BYTES,
        fetch_min_bytes: 1,
        fetch_max_wait_ms: FETCH_WAIT_MS,
    };
    let mut cache = Some(SeriesCache::default());
    // The offset last committed and when.
    let mut committed: Option<(u64, tokio::time::Instant)> = None;
    // Records were applied since the last empty fetch.
    let mut busy = false;
    // Bytes of records applied since the last trim request.
    let mut applied_bytes = 0usize;
    loop {
        if *stop.borrow() {
            return;
        }
        let fetched = tokio::select! {
            _ = stop.changed() => return,
            r = stream.fetch(METRICS_TOPIC, partition, offset, opts) => r,
        };
        match fetched {
            Ok(r) if r.records.is_empty() => {
                if committed.is_some_and(|(c, _)| c != offset) {
                    commit(stream.as_ref(), partition, offset, &mut committed).await;
                }
                if std::mem::take(&mut busy) {
                    // Caught up after applying: what the burst freed can go back.
                    applied_bytes = 0;
                    crate::allocator::request_trim();
                }
            }
            Ok(r) => {
                busy = true;
                let end = r.high_watermark;
                applied_bytes += r.records.iter().map(|x| x.value.len()).sum::<usize>();
                let s = store.clone();
                let mut c = cache.take().unwrap_or_default();
                let applied = tokio::task::spawn_blocking(move || {
                    let next = s.apply_cached(partition, &r.records, &mut c);
                    (next, c)
                })
                .await
                .map(|(next, c)| {
                    cache = Some(c);
                    next
                });
                match applied {
                    Ok(Some(next)) => {
                        offset = next;
                        if committed.is_none_or(|(_, at)| at.elapsed() >= COMMIT_INTERVAL) {
                            commit(stream.as_ref(), partition, offset, &mut committed).await;
                        }
                        if offset >= end && applied_bytes >= TRIM_AFTER_BYTES {
                            // Caught up with the log as the fetch saw it after a large burst:
                            // what it freed can go back now, not after the next fetch's wait.
                            busy = false;
                            applied_bytes = 0;
                            crate::allocator::request_trim();
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, partition, "tsdb apply task failed");
                        pause(&mut stop).await;
                    }
                }
            }
            Err(bongsu_stream::Error::OffsetOutOfRange {
                log_start,
                high_watermark,
                ..
            }) => {
                let to = if offset < log_start {
                    log_start
                } else {
                    high_watermark
                };
                tracing::warn!(
                    partition,
                    offset,
                    to,
                    "tsdb consumer offset is outside the retained log: continuing from {to}"
                );
                offset = to;
            }
            Err(bongsu_stream::Error::Shutdown) => return,
            Err(e) => {
                tracing::error!(error = %e, partition, "tsdb consumer cannot fetch: retrying");
                pause(&mut stop).await;
            }
        }
    }
}

/// Commits `offset` as the `tsdb` group's offset of `partition` and notes it in `committed`.
async fn commit(
    stream: &dyn Stream,
    partition: u32,
    offset: u64,
    committed: &mut Option<(u64, tokio::time::Instant)>,
) {
    let commit = vec![OffsetCommit {
        tp: TopicPartition::new(METRICS_TOPIC, partition),
        offset,
    }];
    match stream.commit_offsets(CONSUMER_GROUP, "", 0, commit).await {
        Ok(()) => *committed = Some((offset, tokio::time::Instant::now())),
        Err(e) => tracing::debug!(error = %e, "cannot commit the tsdb group's offset"),
    }
}

async fn pause(stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = stop.changed() => {}
        _ = tokio::time::sleep(RETRY_PAUSE) => {}
    }
}

impl MetricsSource for MetricsStore {
    fn collect(&self, out: &mut MetricsWriter) {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let counters: [(&str, &str, f64); 7] = [
            (
                "bongsu_tsdb_records_applied_total",
                "Records of the metrics topic applied to the time-series store.",
                get(&c.records_applied),
            ),
            (
                "bongsu_tsdb_bad_records_total",
                "Records of the metrics topic skipped because they do not decode.",
                get(&c.bad_records),
            ),
            (
                "bongsu_tsdb_samples_appended_total",
                "Samples stored in the time-series store.",
                get(&c.samples_appended),
            ),
            (
                "bongsu_tsdb_out_of_window_samples_total",
                "Samples dropped because they were older than tsdb.ooo_window behind their series' newest sample.",
                get(&c.samples_out_of_window),
            ),
            (
                "bongsu_tsdb_duplicate_samples_total",
                "Samples ignored because their series already had a sample at that timestamp (replays).",
                get(&c.samples_duplicate),
            ),
            (
                "bongsu_tsdb_refused_samples_total",
                "Samples of series the store refused at its cardinality limits.",
                get(&c.samples_refused),
            ),
            (
                "bongsu_ingest_cardinality_rejections_total",
                "remote_write requests refused because they would break tsdb.max_series or tsdb.max_series_per_metric.",
                get(&c.cardinality_rejections),
            ),
        ];
        for (name, help, v) in counters {
            out.family(name, help, MetricKind::Counter);
            out.sample(name, &[], v);
        }
        out.family(
            "bongsu_query_samples_read_total",
            "Samples (raw) or rollup points (5m, 1h) read by PromQL queries.",
            MetricKind::Counter,
        );
        for (source, a) in [
            ("raw", &c.query_raw_samples),
            ("5m", &c.query_5m_points),
            ("1h", &c.query_1h_points),
        ] {
            out.sample(
                "bongsu_query_samples_read_total",
                &[("source", source)],
                get(a),
            );
        }
        let mem = self.tsdb.head_memory();
        out.family(
            "bongsu_tsdb_head_series",
            "Series in the head of the time-series store.",
            MetricKind::Gauge,
        );
        out.sample("bongsu_tsdb_head_series", &[], mem.series as f64);
        out.family(
            "bongsu_tsdb_head_memory_bytes",
            "Approximate memory held by the head of the time-series store.",
            MetricKind::Gauge,
        );
        out.sample("bongsu_tsdb_head_memory_bytes", &[], mem.total() as f64);
        let disk = self.tsdb.disk_usage();
        out.family(
            "bongsu_tsdb_disk_bytes",
            "Bytes of time-series blocks on disk, by kind (raw, rollup).",
            MetricKind::Gauge,
        );
        out.sample(
            "bongsu_tsdb_disk_bytes",
            &[("kind", "raw")],
            disk.raw_bytes as f64,
        );
        out.sample(
            "bongsu_tsdb_disk_bytes",
            &[("kind", "rollup")],
            disk.rollup_bytes as f64,
        );
        out.family(
            "bongsu_tsdb_blocks",
            "Time-series blocks on disk, by kind (raw, rollup).",
            MetricKind::Gauge,
        );
        out.sample(
            "bongsu_tsdb_blocks",
            &[("kind", "raw")],
            disk.raw_blocks as f64,
        );
        out.sample(
            "bongsu_tsdb_blocks",
            &[("kind", "rollup")],
            disk.rollup_blocks as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_model::{Labels, Sample, Series};

    #[test]
    fn cache_keys_tell_apart_label_sets_that_share_their_bytes() {
        let keys = [
            cache_key(&[("ab", "c")]),
            cache_key(&[("a", "bc")]),
            cache_key(&[("a", "b"), ("c", "d")]),
            cache_key(&[("a", "b\0c"), ("", "d")]),
            cache_key(&[("instance", "host-10:9100"), ("job", "node")]),
            cache_key(&[("instance", "host-11:9100"), ("job", "node")]),
            cache_key(&[]),
        ];
        let distinct: HashSet<u64> = keys.iter().copied().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:x?}");
        assert_eq!(
            keys[0],
            cache_key(&[("ab", "c")]),
            "stable within a process"
        );
    }

    fn record(name: &str, samples: &[(i64, f64)]) -> Vec<u8> {
        MetricsRecord {
            series: vec![Series {
                labels: Labels::from_pairs([("__name__", name), ("job", "t")]).unwrap(),
                samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
            }],
            metadata: vec![MetricMetadata {
                family: name.to_owned(),
                kind: bongsu_model::MetricKind::Gauge,
                help: "help".to_owned(),
                unit: String::new(),
            }],
        }
        .encode()
    }

    fn stored(offset: u64, value: Vec<u8>) -> StoredRecord {
        StoredRecord {
            offset,
            timestamp_ms: 0,
            key: None,
            value: value.into(),
        }
    }

    #[test]
    fn a_bad_record_is_counted_and_skipped_and_offsets_advance() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetricsStore::open(
            dir.path(),
            &TsdbSettings::default(),
            &QuerySettings::default(),
        )
        .unwrap();
        let recs = vec![
            stored(7, record("a", &[(1_000, 1.0), (2_000, 2.0)])),
            stored(8, b"not a record".to_vec()),
            stored(9, record("b", &[(1_000, 5.0)])),
        ];
        assert_eq!(store.apply(3, &recs), Some(10));
        assert_eq!(store.counters.bad_records.load(Ordering::Relaxed), 1);
        assert_eq!(store.counters.records_applied.load(Ordering::Relaxed), 2);
        assert_eq!(store.counters.samples_appended.load(Ordering::Relaxed), 3);
        assert_eq!(store.metadata.read().unwrap().len(), 2);
        // Replaying the same records stores nothing twice.
        store.apply(3, &recs);
        assert_eq!(store.counters.samples_duplicate.load(Ordering::Relaxed), 3);
        store.tsdb.flush().unwrap();
        assert_eq!(store.tsdb.applied_offsets(), vec![(3, 10)]);
        let mut w = MetricsWriter::new();
        store.collect(&mut w);
        let text = w.finish();
        assert!(text.contains("bongsu_tsdb_bad_records_total 2"), "{text}");
    }

    #[test]
    fn cached_apply_appends_known_series_by_ref_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetricsStore::open(
            dir.path(),
            &TsdbSettings::default(),
            &QuerySettings::default(),
        )
        .unwrap();
        let mut cache = SeriesCache::default();
        let first = vec![stored(0, record("a", &[(1_000, 1.0)]))];
        assert_eq!(store.apply_cached(0, &first, &mut cache), Some(1));
        assert_eq!(cache.refs.len(), 1);
        let second = vec![
            stored(1, record("a", &[(2_000, 2.0), (2_000, 9.0)])),
            stored(2, record("b", &[(2_000, 3.0)])),
        ];
        assert_eq!(store.apply_cached(0, &second, &mut cache), Some(3));
        assert_eq!(cache.refs.len(), 2);
        let c = &store.counters;
        assert_eq!(c.samples_appended.load(Ordering::Relaxed), 3);
        assert_eq!(c.samples_duplicate.load(Ordering::Relaxed), 1);
        let got = store
            .tsdb
            .select(&[bongsu_tsdb::Matcher::equal("__name__", "a")], 0, 10_000)
            .unwrap();
        assert_eq!(
            got[0].samples,
            vec![Sample::new(1_000, 1.0), Sample::new(2_000, 2.0)]
        );
    }

    #[test]
    fn view_cardinality_check_refuses_new_series_over_the_limit_and_remembers_admitted_ones() {
        use bongsu_ingest::{decode_write_request_view, prompb, Limits};
        use prost::Message;
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(
            dir.path(),
            Options {
                max_series: 2,
                ..Options::default()
            },
        )
        .unwrap();
        let store = MetricsStore::over(db, &QuerySettings::default());
        let body = |hosts: std::ops::Range<usize>| {
            prompb::WriteRequest {
                timeseries: hosts
                    .map(|i| prompb::TimeSeries {
                        labels: vec![
                            prompb::Label {
                                name: "__name__".into(),
                                value: "up".into(),
                            },
                            prompb::Label {
                                name: "instance".into(),
                                value: format!("h{i}"),
                            },
                        ],
                        samples: vec![prompb::Sample {
                            value: 1.0,
                            timestamp: 1_000,
                        }],
                        ..Default::default()
                    })
                    .collect(),
                metadata: Vec::new(),
            }
            .encode_to_vec()
        };
        let check = |raw: &[u8]| {
            let view = decode_write_request_view(raw, &Limits::default()).unwrap();
            let hashes: Vec<u64> = view
                .series()
                .map(|s| crate::metrics_partition::label_hash(s.labels.iter().copied()))
                .collect();
            check_cardinality_view(Some(&store), &view, &hashes)
        };
        check(&body(0..2)).unwrap();
        // Accepted is not applied: nothing is admitted yet, and all three count as new.
        assert!(store.admitted.lock().unwrap().hashes.is_empty());
        let e = check(&body(0..3)).unwrap_err();
        assert!(e.message.contains("tsdb.max_series"), "{}", e.message);
        // The consumer applies h0 and h1: they are admitted.
        let raw = body(0..2);
        let view = decode_write_request_view(&raw, &Limits::default()).unwrap();
        let hashes: Vec<u64> = view
            .series()
            .map(|s| crate::metrics_partition::label_hash(s.labels.iter().copied()))
            .collect();
        let parts = crate::metrics_partition::encode_view_by_partition(&view, &hashes, 1);
        let recs = vec![stored(0, parts[0].1.clone())];
        store.apply_cached(0, &recs, &mut SeriesCache::default());
        assert_eq!(store.admitted.lock().unwrap().hashes.len(), 2);
        check(&body(1..2)).unwrap();
        // Two in the head, one new: over the limit of 2.
        check(&body(0..3)).unwrap_err();
        assert_eq!(
            store
                .counters
                .cardinality_rejections
                .load(Ordering::Relaxed),
            2
        );
    }
}
