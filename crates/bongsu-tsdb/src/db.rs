//! The store: head + immutable blocks, cuts, compaction, rollups, retention and queries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bongsu_model::{Labels, Sample};
use parking_lot::{Mutex, RwLock};

use crate::block::{Block, BlockKind, BlockWriter, TsCache};
use crate::codec::{seal, unseal, write_atomic, Cursor};
use crate::head::{merge_first_wins, AppendOutcome, Drained, Head, HeadLimits, HeadMemory};
use crate::matcher::Matcher;
use crate::rollup::{rollup, Resolution, RollupPoint};
use crate::{CardinalityStats, Error, Result};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const CHECKPOINT_MAGIC: &[u8; 4] = b"BTCP";
const CHECKPOINT_VERSION: u16 = 1;
const CHECKPOINT_FILE: &str = "checkpoint";
pub(crate) const BLOCKS_DIR: &str = "blocks";

/// Store configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time span of the blocks the head is cut into (default 2 h); must divide 1 h
    /// multiples used by compaction.
    pub block_duration_ms: i64,
    /// Spans of compacted blocks, ascending, each a multiple of the previous and of
    /// `block_duration_ms` and of 1 h (default 1 day, 7 days). Rollups are produced when
    /// raw blocks are compacted into any of these.
    pub compaction_ranges_ms: Vec<i64>,
    /// How far behind a series' newest sample an out-of-order sample is still accepted.
    pub ooo_window_ms: i64,
    pub max_series: usize,
    pub max_series_per_metric: usize,
    pub retention_raw_ms: i64,
    pub retention_5m_ms: i64,
    pub retention_1h_ms: i64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            block_duration_ms: 2 * HOUR_MS,
            compaction_ranges_ms: vec![DAY_MS, 7 * DAY_MS],
            ooo_window_ms: 10 * 60_000,
            max_series: 5_000_000,
            max_series_per_metric: 1_000_000,
            retention_raw_ms: 15 * DAY_MS,
            retention_5m_ms: 90 * DAY_MS,
            retention_1h_ms: 730 * DAY_MS,
        }
    }
}

impl Options {
    fn validate(&self) -> Result<()> {
        let d = self.block_duration_ms;
        if d <= 0 || HOUR_MS % d != 0 && d % HOUR_MS != 0 {
            return Err(Error::Config(format!(
                "tsdb.block_duration_ms {d} must divide or be a multiple of one hour"
            )));
        }
        let mut prev = d;
        for &r in &self.compaction_ranges_ms {
            if r <= prev || r % prev != 0 || r % HOUR_MS != 0 {
                return Err(Error::Config(format!(
                    "tsdb.compaction_ranges_ms {r} must be ascending multiples of the previous range and of one hour"
                )));
            }
            prev = r;
        }
        let longest = self.compaction_ranges_ms.last().copied().unwrap_or(d);
        if self.retention_raw_ms <= longest.saturating_add(d) {
            return Err(Error::Config(format!(
                "tsdb.retention_raw_ms {} must exceed the longest compaction range plus one block ({} ms): rollups are rebuilt from raw samples when a window is compacted",
                self.retention_raw_ms,
                longest.saturating_add(d)
            )));
        }
        if self.ooo_window_ms < 0 {
            return Err(Error::Config(
                "tsdb.ooo_window_ms must not be negative".into(),
            ));
        }
        Ok(())
    }
}

/// One series and its raw samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// One series and its rollup points.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupSeries {
    pub labels: Labels,
    pub points: Vec<RollupPoint>,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub blocks_written: usize,
    pub blocks_deleted: usize,
}

/// Head samples drained by a cut, visible to queries until their block is in place.
#[derive(Debug)]
struct Frozen {
    data: Drained,
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    frozen: Vec<Arc<Frozen>>,
    /// Sorted by seq.
    blocks: Vec<Arc<Block>>,
}

/// The time-series store. One writer appends; any number of threads query concurrently.
#[derive(Debug)]
pub struct Tsdb {
    dir: PathBuf,
    blocks_dir: PathBuf,
    opts: Options,
    head: RwLock<Head>,
    snap: RwLock<Arc<Snapshot>>,
    maintenance: Mutex<()>,
    next_seq: AtomicU64,
    applied: Mutex<BTreeMap<u32, u64>>,
}

fn align_down(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

impl Tsdb {
    /// Opens (or creates) a store in `dir`, removing unfinished and superseded blocks.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Self> {
        opts.validate()?;
        let dir = dir.as_ref().to_owned();
        let blocks_dir = dir.join(BLOCKS_DIR);
        std::fs::create_dir_all(&blocks_dir).map_err(|e| Error::io(&blocks_dir, e))?;
        let (mut next_seq, applied) = read_checkpoint(&dir.join(CHECKPOINT_FILE))?;
        let mut blocks = Vec::new();
        let entries = std::fs::read_dir(&blocks_dir).map_err(|e| Error::io(&blocks_dir, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(&blocks_dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with(".tmp-") {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            } else if name.starts_with("b-") {
                blocks.push(Block::open(&path)?);
            }
        }
        let superseded: BTreeSet<u64> = blocks
            .iter()
            .flat_map(|b| b.meta.parents.iter().copied())
            .collect();
        let mut kept = Vec::new();
        for b in blocks {
            next_seq = next_seq.max(b.meta.seq + 1);
            if superseded.contains(&b.meta.seq) {
                std::fs::remove_dir_all(&b.dir).map_err(|e| Error::io(&b.dir, e))?;
            } else {
                kept.push(Arc::new(b));
            }
        }
        kept.sort_by_key(|b| b.meta.seq);
        let limits = HeadLimits {
            max_series: opts.max_series,
            max_series_per_metric: opts.max_series_per_metric,
            ooo_window_ms: opts.ooo_window_ms,
        };
        Ok(Self {
            dir,
            blocks_dir,
            head: RwLock::new(Head::new(limits, applied.clone())),
            snap: RwLock::new(Arc::new(Snapshot {
                frozen: Vec::new(),
                blocks: kept,
            })),
            opts,
            maintenance: Mutex::new(()),
            next_seq: AtomicU64::new(next_seq),
            applied: Mutex::new(applied),
        })
    }

    /// Appends samples of one series. Per sample: newer than the series' newest sample is
    /// stored; an already stored timestamp is ignored (the first value wins, so replays are
    /// idempotent); older within `ooo_window_ms` is stored out of order; older still is
    /// refused and counted. Fails only when a new series would break a cardinality limit.
    pub fn append(&self, labels: &Labels, samples: &[Sample]) -> Result<AppendOutcome> {
        self.head.write().append(labels, samples)
    }

    /// An appender holding the head for a batch of appends (one lock for many series), with
    /// [`SeriesRef`]s so that known series are found without building their labels.
    pub fn appender(&self) -> Appender<'_> {
        Appender {
            head: self.head.write(),
        }
    }

    /// Checks, without changing anything, that appending to all of `labels` would stay
    /// within `max_series` and `max_series_per_metric`; fails with the limit that would be
    /// broken. Receivers call it before accepting a request.
    pub fn check_new_series<'a>(&self, labels: impl IntoIterator<Item = &'a Labels>) -> Result<()> {
        self.head.read().check_new_series(labels)
    }

    /// Samples appended to the head since open (duplicates and refused samples excluded).
    pub fn samples_appended_total(&self) -> u64 {
        self.head.read().samples_total
    }

    /// Samples ignored because their series already had a sample at that timestamp, since
    /// open.
    pub fn duplicates_total(&self) -> u64 {
        self.head.read().duplicates_total
    }

    /// Tells the store that everything appended so far came from the log up to (not
    /// including) these `(partition, next_offset)` pairs. They become durable, and are
    /// returned by [`Tsdb::applied_offsets`], once the data before them is in blocks.
    pub fn mark_applied(&self, offsets: &[(u32, u64)]) {
        self.head.write().mark_applied(offsets);
    }

    /// The durable `(partition, next_offset)` pairs: after a restart, replay the log from
    /// here.
    pub fn applied_offsets(&self) -> Vec<(u32, u64)> {
        self.applied.lock().iter().map(|(&p, &o)| (p, o)).collect()
    }

    /// Persists full blocks: head samples older than the newest sample minus the
    /// out-of-order window, aligned down to the block duration.
    pub fn cut(&self) -> Result<CompactionReport> {
        let max_t = self.head.read().max_t();
        let Some(max_t) = max_t else {
            return Ok(CompactionReport::default());
        };
        let b = align_down(
            max_t.saturating_sub(self.opts.ooo_window_ms),
            self.opts.block_duration_ms,
        );
        self.cut_before(b)
    }

    /// Persists every head sample; use at shutdown so that replay starts at the newest
    /// marked offsets.
    pub fn flush(&self) -> Result<CompactionReport> {
        self.cut_before(i64::MAX)
    }

    /// Persists head samples older than `boundary` into blocks (one per block-duration
    /// window), then records the log offsets that became safe.
    pub fn cut_before(&self, boundary: i64) -> Result<CompactionReport> {
        let _m = self.maintenance.lock();
        let frozen = {
            let mut head = self.head.write();
            let (data, safe) = head.drain_before(boundary);
            let frozen = Arc::new(Frozen { data });
            let mut snap = self.snap.write();
            let mut s = (**snap).clone();
            s.frozen.push(frozen.clone());
            *snap = Arc::new(s);
            (frozen, safe)
        };
        let (frozen, safe) = frozen;
        let result = self.write_frozen(&frozen);
        let written = match result {
            Ok(blocks) => blocks,
            Err(e) => {
                // Keep the drained samples visible; they stay in `frozen` and the offsets
                // stay unrecorded, so a restart replays them.
                return Err(e);
            }
        };
        let n = written.len();
        {
            let mut snap = self.snap.write();
            let mut s = (**snap).clone();
            s.frozen.retain(|f| !Arc::ptr_eq(f, &frozen));
            s.blocks.extend(written);
            s.blocks.sort_by_key(|b| b.meta.seq);
            *snap = Arc::new(s);
        }
        if let Some(safe) = safe {
            let mut applied = self.applied.lock();
            for (p, o) in safe {
                let e = applied.entry(p).or_insert(o);
                *e = (*e).max(o);
            }
            self.write_checkpoint(&applied)?;
        }
        Ok(CompactionReport {
            blocks_written: n,
            blocks_deleted: 0,
        })
    }

    fn seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::SeqCst)
    }

    fn write_frozen(&self, frozen: &Frozen) -> Result<Vec<Arc<Block>>> {
        let d = self.opts.block_duration_ms;
        let mut writers: BTreeMap<i64, BlockWriter> = BTreeMap::new();
        for (labels, samples) in &frozen.data {
            let mut rest = samples.as_slice();
            while let Some(&(t0, _)) = rest.first() {
                let w = align_down(t0, d);
                let end = w.saturating_add(d);
                let split = rest.partition_point(|s| s.0 < end);
                let (part, tail) = rest.split_at(split);
                rest = tail;
                let writer = match writers.entry(w) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => v.insert(BlockWriter::new(
                        &self.blocks_dir,
                        self.next_seq.fetch_add(1, Ordering::SeqCst),
                        BlockKind::Raw,
                        0,
                        (w, end),
                        Vec::new(),
                    )?),
                };
                let ts: Vec<i64> = part.iter().map(|s| s.0).collect();
                let vs: Vec<f64> = part.iter().map(|s| s.1).collect();
                writer.add_raw(labels, &ts, &vs)?;
            }
        }
        writers
            .into_values()
            .map(|w| w.finish().map(Arc::new))
            .collect()
    }

    fn write_checkpoint(&self, applied: &BTreeMap<u32, u64>) -> Result<()> {
        let mut b = Vec::new();
        b.extend_from_slice(CHECKPOINT_MAGIC);
        b.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&self.next_seq.load(Ordering::SeqCst).to_le_bytes());
        b.extend_from_slice(&(applied.len() as u32).to_le_bytes());
        for (&p, &o) in applied {
            b.extend_from_slice(&p.to_le_bytes());
            b.extend_from_slice(&o.to_le_bytes());
        }
        seal(&mut b);
        write_atomic(&self.dir.join(CHECKPOINT_FILE), &b)
    }

    /// Cuts full blocks, compacts closed windows (writing rollups) and applies retention.
    pub fn compact_now(&self) -> Result<CompactionReport> {
        let mut report = self.cut()?;
        let _m = self.maintenance.lock();
        let r = self.compact_locked()?;
        report.blocks_written += r.blocks_written;
        report.blocks_deleted += r.blocks_deleted;
        report.blocks_deleted += self.retention_locked()?;
        Ok(report)
    }

    fn newest_time(&self) -> Option<i64> {
        let head = self.head.read().max_t();
        let blocks = self
            .snap
            .read()
            .blocks
            .iter()
            .filter(|b| b.meta.kind == BlockKind::Raw && b.meta.num_series > 0)
            .map(|b| b.meta.max_t)
            .max();
        head.max(blocks)
    }

    fn compact_locked(&self) -> Result<CompactionReport> {
        let mut report = CompactionReport::default();
        let Some(newest) = self.newest_time() else {
            return Ok(report);
        };
        let d = self.opts.block_duration_ms;
        let closed = align_down(newest.saturating_sub(self.opts.ooo_window_ms.min(d)), d);
        let horizon = newest.saturating_sub(self.opts.retention_raw_ms);
        let ranges = &self.opts.compaction_ranges_ms;
        for (li, &r) in ranges.iter().enumerate().rev() {
            let level = (li + 1) as u8;
            let snap = self.snap.read().clone();
            let mut groups: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
            for b in snap.blocks.iter().filter(|b| b.meta.kind == BlockKind::Raw) {
                let w = align_down(b.meta.range_start, r);
                if b.meta.range_end <= w + r && w + r <= closed && w + r > horizon {
                    groups.entry(w).or_default().push(b.clone());
                }
            }
            for (w, group) in groups {
                if group.len() == 1 && group[0].meta.level >= level {
                    continue;
                }
                let old_rollups: Vec<Arc<Block>> = snap
                    .blocks
                    .iter()
                    .filter(|b| {
                        matches!(b.meta.kind, BlockKind::Rollup(_))
                            && b.meta.range_start >= w
                            && b.meta.range_end <= w + r
                    })
                    .cloned()
                    .collect();
                let written = self.merge_window(&group, &old_rollups, level, (w, w + r))?;
                report.blocks_written += written.len();
                report.blocks_deleted += group.len() + old_rollups.len();
                let gone: BTreeSet<u64> = group
                    .iter()
                    .chain(&old_rollups)
                    .map(|b| b.meta.seq)
                    .collect();
                self.replace_blocks(&gone, written)?;
            }
        }
        Ok(report)
    }

    fn replace_blocks(&self, gone: &BTreeSet<u64>, added: Vec<Arc<Block>>) -> Result<()> {
        let removed: Vec<Arc<Block>> = {
            let mut snap = self.snap.write();
            let mut s = (**snap).clone();
            let (removed, kept) = s
                .blocks
                .into_iter()
                .partition(|b| gone.contains(&b.meta.seq));
            s.blocks = kept;
            s.blocks.extend(added);
            s.blocks.sort_by_key(|b| b.meta.seq);
            *snap = Arc::new(s);
            removed
        };
        for b in removed {
            std::fs::remove_dir_all(&b.dir).map_err(|e| Error::io(&b.dir, e))?;
        }
        Ok(())
    }

    /// Merges raw blocks of one window into one block at `level`, with rollups.
    fn merge_window(
        &self,
        group: &[Arc<Block>],
        old_rollups: &[Arc<Block>],
        level: u8,
        range: (i64, i64),
    ) -> Result<Vec<Arc<Block>>> {
        let mut group: Vec<&Arc<Block>> = group.iter().collect();
        group.sort_by_key(|b| b.meta.seq);
        let mut parents: Vec<u64> = group.iter().map(|b| b.meta.seq).collect();
        parents.extend(old_rollups.iter().map(|b| b.meta.seq));
        let mut all: BTreeMap<Labels, Vec<(usize, u32)>> = BTreeMap::new();
        for (bi, b) in group.iter().enumerate() {
            for id in 0..b.series.len() as u32 {
                all.entry(b.labels(id)).or_default().push((bi, id));
            }
        }
        let mut raw = BlockWriter::new(
            &self.blocks_dir,
            self.seq(),
            BlockKind::Raw,
            level,
            range,
            parents.clone(),
        )?;
        let mut rws = Vec::new();
        for res in Resolution::ALL {
            rws.push((
                res,
                BlockWriter::new(
                    &self.blocks_dir,
                    self.seq(),
                    BlockKind::Rollup(res),
                    level,
                    range,
                    parents.clone(),
                )?,
            ));
        }
        let mut caches: Vec<TsCache> = group.iter().map(|_| TsCache::new()).collect();
        for (labels, srcs) in all {
            let mut merged: Vec<(i64, f64)> = Vec::new();
            for (bi, id) in srcs {
                let s = group[bi].read_raw_cached(id, &mut caches[bi])?;
                merged = if merged.is_empty() {
                    s
                } else {
                    merge_first_wins(&merged, &s)
                };
            }
            let ts: Vec<i64> = merged.iter().map(|s| s.0).collect();
            let vs: Vec<f64> = merged.iter().map(|s| s.1).collect();
            raw.add_raw(&labels, &ts, &vs)?;
            for (res, w) in rws.iter_mut() {
                w.add_rollup(&labels, &rollup(&merged, *res))?;
            }
        }
        let mut out = vec![Arc::new(raw.finish()?)];
        for (_, w) in rws {
            out.push(Arc::new(w.finish()?));
        }
        Ok(out)
    }

    fn retention_locked(&self) -> Result<usize> {
        let Some(newest) = self.newest_time() else {
            return Ok(0);
        };
        let snap = self.snap.read().clone();
        let gone: BTreeSet<u64> = snap
            .blocks
            .iter()
            .filter(|b| {
                let ret = match b.meta.kind {
                    BlockKind::Raw => self.opts.retention_raw_ms,
                    BlockKind::Rollup(Resolution::FiveMinutes) => self.opts.retention_5m_ms,
                    BlockKind::Rollup(Resolution::OneHour) => self.opts.retention_1h_ms,
                };
                b.meta.range_end <= newest.saturating_sub(ret)
            })
            .map(|b| b.meta.seq)
            .collect();
        let n = gone.len();
        if n > 0 {
            self.replace_blocks(&gone, Vec::new())?;
        }
        Ok(n)
    }

    /// Starts a background thread that runs [`Tsdb::compact_now`] every `interval`; it stops
    /// when the returned handle is dropped.
    pub fn start_compactor(self: &Arc<Self>, interval: Duration) -> Compactor {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let db = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("tsdb-compactor".into())
            .spawn(move || loop {
                match rx.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // Errors are retried on the next tick; queries keep being served.
                        let _ = db.compact_now();
                    }
                    _ => return,
                }
            })
            .ok();
        Compactor {
            stop: Some(tx),
            handle,
        }
    }

    // ---- queries ----

    /// Raw samples of the series selected by `matchers` within `[start_ms, end_ms]`, sorted
    /// by labels; series without samples in the range are left out.
    pub fn select(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Result<Vec<Series>> {
        let (head_part, snap) = {
            let head = self.head.read();
            let snap = self.snap.read().clone();
            let ids = head.select_ids(matchers);
            let part: Vec<(Labels, Vec<(i64, f64)>)> = ids
                .iter()
                .filter_map(|id| {
                    let s = head.samples(id, start_ms, end_ms);
                    if s.is_empty() {
                        return None;
                    }
                    Some((head.labels(id)?, s))
                })
                .collect();
            (part, snap)
        };
        let mut acc: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        let mut add = |l: Labels, s: Vec<(i64, f64)>| {
            let e = acc.entry(l).or_default();
            *e = if e.is_empty() {
                s
            } else {
                merge_first_wins(e, &s)
            };
        };
        for b in snap.blocks.iter().filter(|b| {
            b.meta.kind == BlockKind::Raw && b.meta.max_t >= start_ms && b.meta.min_t <= end_ms
        }) {
            let mut cache = TsCache::new();
            for id in b.index.select(&b.syms, matchers).iter() {
                let Some(e) = b.series.get(id as usize) else {
                    continue;
                };
                if e.max_t < start_ms || e.min_t > end_ms {
                    continue;
                }
                let mut s = b.read_raw_cached(id, &mut cache)?;
                s.retain(|x| x.0 >= start_ms && x.0 <= end_ms);
                if !s.is_empty() {
                    add(b.labels(id), s);
                }
            }
        }
        for f in &snap.frozen {
            for (l, s) in &f.data {
                if matchers.iter().all(|m| m.matches_labels(l)) {
                    let s: Vec<_> = s
                        .iter()
                        .copied()
                        .filter(|x| x.0 >= start_ms && x.0 <= end_ms)
                        .collect();
                    if !s.is_empty() {
                        add(l.clone(), s);
                    }
                }
            }
        }
        for (l, s) in head_part {
            add(l, s);
        }
        Ok(acc
            .into_iter()
            .map(|(labels, s)| Series {
                labels,
                samples: s.into_iter().map(|(t, v)| Sample::new(t, v)).collect(),
            })
            .collect())
    }

    /// Rollup points of the selected series for windows starting in
    /// `[align_down(start_ms), end_ms]`. Windows covered by rollup blocks are read from
    /// them; the rest (recent data not yet compacted) is rolled up from raw samples.
    pub fn select_rollup(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        resolution: Resolution,
    ) -> Result<Vec<RollupSeries>> {
        let step = resolution.millis();
        let first_w = align_down(start_ms, step);
        let last_w = align_down(end_ms, step);
        let (snap, head_min) = {
            let head = self.head.read();
            (self.snap.read().clone(), head.min_t())
        };
        let raw_horizon = self
            .newest_time()
            .map_or(i64::MIN, |n| n.saturating_sub(self.opts.retention_raw_ms));
        // A rollup block is used unless raw samples newer than it exist in its window
        // (late out-of-order data not yet compacted) and are still retained; then the
        // window is rolled up from raw samples instead.
        let stale = |b: &Block| {
            let (lo, hi) = (b.meta.range_start, b.meta.range_end);
            hi > raw_horizon
                && (head_min.is_some_and(|m| m < hi)
                    || !snap.frozen.is_empty()
                    || snap.blocks.iter().any(|r| {
                        r.meta.kind == BlockKind::Raw
                            && r.meta.seq > b.meta.seq
                            && r.meta.range_start < hi
                            && r.meta.range_end > lo
                    }))
        };
        let blocks: Vec<&Arc<Block>> = snap
            .blocks
            .iter()
            .filter(|b| {
                b.meta.kind == BlockKind::Rollup(resolution)
                    && b.meta.range_end > first_w
                    && b.meta.range_start <= last_w
                    && !stale(b)
            })
            .collect();
        let mut acc: BTreeMap<Labels, BTreeMap<i64, RollupPoint>> = BTreeMap::new();
        let mut covered: Vec<(i64, i64)> = Vec::new();
        for b in &blocks {
            covered.push((b.meta.range_start, b.meta.range_end));
            for id in b.index.select(&b.syms, matchers).iter() {
                let pts = b.read_rollup(id)?;
                let e = acc.entry(b.labels(id)).or_default();
                for p in pts.into_iter().filter(|p| p.t >= first_w && p.t <= last_w) {
                    e.entry(p.t).or_insert(p);
                }
            }
        }
        // Gaps not covered by rollup blocks, in whole windows.
        covered.sort_unstable();
        let mut gaps = Vec::new();
        let mut cur = first_w;
        let stop = last_w.saturating_add(step);
        for (a, b) in covered {
            if a > cur {
                gaps.push((cur, a.min(stop)));
            }
            cur = cur.max(b);
            if cur >= stop {
                break;
            }
        }
        if cur < stop {
            gaps.push((cur, stop));
        }
        for (a, b) in gaps {
            if a >= b {
                continue;
            }
            for s in self.select(matchers, a, b - 1)? {
                let raw: Vec<(i64, f64)> = s
                    .samples
                    .iter()
                    .map(|x| (x.timestamp_ms, x.value))
                    .collect();
                let e = acc.entry(s.labels).or_default();
                for p in rollup(&raw, resolution) {
                    e.entry(p.t).or_insert(p);
                }
            }
        }
        Ok(acc
            .into_iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(labels, p)| RollupSeries {
                labels,
                points: p.into_values().collect(),
            })
            .collect())
    }

    /// Label sets of the selected series whose time bounds overlap `[start_ms, end_ms]`,
    /// sorted. Answered from the indexes and the series' time bounds alone: no sample is
    /// read, so a series with a gap spanning the whole range may be included.
    pub fn series(&self, matchers: &[Matcher], start_ms: i64, end_ms: i64) -> Result<Vec<Labels>> {
        let mut out: BTreeSet<Labels> = BTreeSet::new();
        let snap = {
            let head = self.head.read();
            for id in head.select_ids(matchers).iter() {
                if head.overlaps(id, start_ms, end_ms) {
                    if let Some(l) = head.labels(id) {
                        out.insert(l);
                    }
                }
            }
            self.snap.read().clone()
        };
        for b in snap.blocks.iter().filter(|b| {
            b.meta.kind == BlockKind::Raw && b.meta.max_t >= start_ms && b.meta.min_t <= end_ms
        }) {
            for id in b.index.select(&b.syms, matchers).iter() {
                if b.series
                    .get(id as usize)
                    .is_some_and(|e| e.max_t >= start_ms && e.min_t <= end_ms)
                {
                    out.insert(b.labels(id));
                }
            }
        }
        for f in &snap.frozen {
            for (l, s) in &f.data {
                if !out.contains(l)
                    && matchers.iter().all(|m| m.matches_labels(l))
                    && s.iter().any(|x| x.0 >= start_ms && x.0 <= end_ms)
                {
                    out.insert(l.clone());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Label names (`name` None) or the values of label `name` found in the indexes of the
    /// head and of the raw blocks whose time range overlaps `[start_ms, end_ms]`, without
    /// visiting series.
    fn index_strings(&self, name: Option<&str>, start_ms: i64, end_ms: i64) -> BTreeSet<String> {
        fn collect(
            syms: &crate::index::SymbolTable,
            index: &crate::index::MemIndex,
            name: Option<&str>,
            out: &mut BTreeSet<String>,
        ) {
            match name {
                None => {
                    for (n, vals) in index.names() {
                        if !vals.is_empty() {
                            out.insert(syms.get(*n).to_owned());
                        }
                    }
                }
                Some(name) => {
                    let Some(id) = syms.lookup(name) else {
                        return;
                    };
                    for (n, vals) in index.names() {
                        if *n == id {
                            out.extend(vals.keys().map(|v| syms.get(*v).to_owned()));
                        }
                    }
                }
            }
        }
        let mut out = BTreeSet::new();
        let snap = {
            let head = self.head.read();
            let overlaps = head
                .min_t()
                .zip(head.max_t())
                .is_some_and(|(lo, hi)| lo <= end_ms && hi >= start_ms);
            if overlaps {
                let (syms, index) = head.index_parts();
                collect(syms, index, name, &mut out);
            }
            self.snap.read().clone()
        };
        for b in snap.blocks.iter().filter(|b| {
            b.meta.kind == BlockKind::Raw && b.meta.max_t >= start_ms && b.meta.min_t <= end_ms
        }) {
            collect(&b.syms, &b.index, name, &mut out);
        }
        for f in &snap.frozen {
            for (l, s) in &f.data {
                if s.iter().any(|x| x.0 >= start_ms && x.0 <= end_ms) {
                    match name {
                        None => out.extend(l.iter().map(|p| p.name.clone())),
                        Some(n) => out.extend(l.get(n).map(str::to_owned)),
                    }
                }
            }
        }
        out
    }

    /// Sorted label names of the selected series (all series when `matchers` is empty,
    /// then read from the indexes alone).
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self
                .index_strings(None, start_ms, end_ms)
                .into_iter()
                .collect());
        }
        let mut names = BTreeSet::new();
        for l in self.series(matchers, start_ms, end_ms)? {
            names.extend(l.iter().map(|p| p.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    /// Sorted values of label `name` among the selected series (among all series, read
    /// from the indexes alone, when `matchers` is empty).
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>> {
        if matchers.is_empty() {
            return Ok(self
                .index_strings(Some(name), start_ms, end_ms)
                .into_iter()
                .collect());
        }
        let mut vals = BTreeSet::new();
        for l in self.series(matchers, start_ms, end_ms)? {
            if let Some(v) = l.get(name) {
                vals.insert(v.to_owned());
            }
        }
        Ok(vals.into_iter().collect())
    }

    /// Writes a consistent copy of the store into `<dir>/snapshots/<name>/` and returns
    /// what it holds: existing blocks are hard-linked, the head's samples are written as
    /// one raw block encoded as the cut and the compactor encode them. The snapshot is a
    /// store directory that [`Tsdb::open`] opens. Appends continue meanwhile; cuts and
    /// compaction wait.
    pub fn snapshot(&self) -> Result<crate::SnapshotReport> {
        let _m = self.maintenance.lock();
        let snap = self.snap.read().clone();
        let name = format!("snap-{:016x}", self.seq());
        let frozen: Vec<&Drained> = snap.frozen.iter().map(|f| &f.data).collect();
        crate::snapshot::write(&self.dir, &name, &snap.blocks, &frozen, &self.head, || {
            self.seq()
        })
    }

    // ---- introspection ----

    /// Head cardinality statistics with the `top` largest entries per list.
    pub fn stats(&self, top: usize) -> CardinalityStats {
        self.head.read().stats(top)
    }

    /// Approximate memory held by the head, by part.
    pub fn head_memory(&self) -> HeadMemory {
        self.head.read().memory()
    }

    pub fn head_series(&self) -> usize {
        self.head.read().num_series()
    }

    /// Samples refused because they were older than the out-of-order window, since open.
    pub fn out_of_window_total(&self) -> u64 {
        self.head.read().out_of_window_total
    }

    /// Bytes on disk of blocks of raw samples and of rollups.
    pub fn disk_usage(&self) -> DiskUsage {
        let snap = self.snap.read().clone();
        let mut u = DiskUsage::default();
        for b in &snap.blocks {
            let n = b.disk_bytes();
            match b.meta.kind {
                BlockKind::Raw => {
                    u.raw_bytes += n;
                    u.raw_samples += b.meta.num_samples;
                    u.raw_blocks += 1;
                    if b.meta.level > 0 {
                        u.compacted_bytes += n;
                        u.compacted_samples += b.meta.num_samples;
                    }
                }
                BlockKind::Rollup(_) => {
                    u.rollup_bytes += n;
                    u.rollup_blocks += 1;
                }
            }
        }
        u
    }
}

/// Disk use of the blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub raw_blocks: usize,
    pub raw_bytes: u64,
    pub raw_samples: u64,
    /// The part of `raw_bytes`/`raw_samples` in compacted (level ≥ 1) blocks.
    pub compacted_bytes: u64,
    pub compacted_samples: u64,
    pub rollup_blocks: usize,
    pub rollup_bytes: u64,
}

/// Handle of the background compaction thread; dropping it stops the thread.
#[derive(Debug)]
pub struct Compactor {
    stop: Option<mpsc::SyncSender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Compactor {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.try_send(());
            drop(tx);
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn read_checkpoint(path: &Path) -> Result<(u64, BTreeMap<u32, u64>)> {
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, BTreeMap::new())),
        Err(e) => return Err(Error::io(path, e)),
    };
    let body = unseal(&buf, path, "checkpoint")?;
    let bad = || Error::corrupt(path, "checkpoint is malformed");
    let mut c = Cursor::new(body);
    if c.bytes(4).ok_or_else(bad)? != CHECKPOINT_MAGIC {
        return Err(Error::corrupt(path, "bad magic: not a tsdb checkpoint"));
    }
    let v = c.u16().ok_or_else(bad)?;
    if v != CHECKPOINT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            version: v,
        });
    }
    c.u16().ok_or_else(bad)?;
    let seq = c.u64().ok_or_else(bad)?;
    let n = c.u32().ok_or_else(bad)?;
    let mut m = BTreeMap::new();
    for _ in 0..n {
        let p = c.u32().ok_or_else(bad)?;
        let o = c.u64().ok_or_else(bad)?;
        m.insert(p, o);
    }
    if c.remaining() != 0 {
        return Err(bad());
    }
    Ok((seq, m))
}

/// A series' handle in the head, from [`Appender::append`]. It stays valid while the series
/// is in the head; [`Appender::append_ref`] checks that it still names the same labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesRef(u32);

/// Appends many series under one hold of the head (queries wait meanwhile: keep a batch to
/// one record's worth). From [`Tsdb::appender`].
pub struct Appender<'a> {
    head: parking_lot::RwLockWriteGuard<'a, Head>,
}

impl std::fmt::Debug for Appender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender").finish_non_exhaustive()
    }
}

impl Appender<'_> {
    /// Appends to the series `r` if it is still in the head with exactly `labels` (sorted,
    /// canonical); `None`, with nothing appended, when it is not (the series left the head,
    /// or the ref came from other labels): call [`Appender::append`] then.
    pub fn append_ref(
        &mut self,
        r: SeriesRef,
        labels: &[(&str, &str)],
        samples: &[Sample],
    ) -> Option<AppendOutcome> {
        self.head.append_checked(r.0, labels, samples)
    }

    /// Appends like [`Tsdb::append`] and returns the series' ref (`None` when `samples` is
    /// empty: no series is created then).
    pub fn append(
        &mut self,
        labels: &Labels,
        samples: &[Sample],
    ) -> Result<(Option<SeriesRef>, AppendOutcome)> {
        let (id, out) = self.head.append_returning_id(labels, samples)?;
        Ok((id.map(SeriesRef), out))
    }
}

#[cfg(test)]
mod appender_tests {
    use super::*;

    fn pairs(l: &Labels) -> Vec<(&str, &str)> {
        l.iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn refs_append_to_their_series_and_stale_refs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), Options::default()).unwrap();
        let a = Labels::from_pairs([("__name__", "a"), ("job", "x")]).unwrap();
        let b = Labels::from_pairs([("__name__", "b"), ("job", "x")]).unwrap();
        let mut app = db.appender();
        assert_eq!(
            app.append(&a, &[]).unwrap().0,
            None,
            "no samples, no series"
        );
        let (ra, o) = app.append(&a, &[Sample::new(1_000, 1.0)]).unwrap();
        let ra = ra.unwrap();
        assert_eq!(o.appended, 1);
        let (rb, _) = app.append(&b, &[Sample::new(1_000, 2.0)]).unwrap();
        let rb = rb.unwrap();
        assert_ne!(ra, rb);
        let o = app
            .append_ref(
                ra,
                &pairs(&a),
                &[Sample::new(2_000, 3.0), Sample::new(2_000, 4.0)],
            )
            .unwrap();
        assert_eq!((o.appended, o.duplicates), (1, 1));
        // A ref used with other labels is refused, nothing appended.
        assert!(app
            .append_ref(rb, &pairs(&a), &[Sample::new(3_000, 9.0)])
            .is_none());
        drop(app);
        let got = db
            .select(&[Matcher::equal("__name__", "a")], 0, 10_000)
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].samples,
            vec![Sample::new(1_000, 1.0), Sample::new(2_000, 3.0)]
        );
        assert_eq!(db.samples_appended_total(), 3);
    }
}
