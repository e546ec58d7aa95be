//! The log store: streams, heads, sealed chunks, segments, checkpoint, retention.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bongsu_model::{Labels, LogEntry};

use crate::checkpoint::Checkpoint;
use crate::chunk::{self, ChunkMeta, DecodedChunk, EncodedChunk};
use crate::error::{corrupt, io_err, Error, Result};
use crate::head::{Entries, Head};
use crate::segment::{self, Segment};

/// Where the store reads the time (injectable for tests).
pub trait Clock: Send + Sync {
    /// Now, in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ns: i64) -> Self {
        Self(AtomicI64::new(now_ns))
    }
    pub fn set(&self, now_ns: i64) {
        self.0.store(now_ns, Ordering::SeqCst);
    }
    pub fn advance(&self, by_ns: i64) {
        self.0.fetch_add(by_ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Store settings. Durations in nanoseconds.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most streams the store holds (`logstore.max_streams`).
    pub max_streams: usize,
    /// Most labels per stream (`logstore.max_labels_per_stream`).
    pub max_labels_per_stream: usize,
    /// Longest label name or value, bytes (`logstore.max_label_bytes`).
    pub max_label_bytes: usize,
    /// Longest line, bytes (`logstore.max_line_bytes`).
    pub max_line_bytes: usize,
    /// How far behind a stream's newest entry an entry may be (`logstore.out_of_order_window`).
    pub out_of_order_window_ns: i64,
    /// A stream's head is cut into a chunk at this many bytes of line text.
    pub chunk_target_bytes: usize,
    /// ... or when its first entry arrived this long ago (by the store's clock).
    pub max_chunk_age_ns: i64,
    /// `maintain` writes cut chunks to a segment when they hold this many bytes of line text ...
    pub flush_bytes: usize,
    /// ... or when the last write is this old.
    pub flush_interval_ns: i64,
    /// `maintain` cuts every head when all heads together hold more line text than this.
    pub max_head_bytes: usize,
    /// Segments whose newest entry is older than now minus this are deleted.
    pub retention_ns: Option<i64>,
    /// Oldest segments are deleted while all segments together exceed this.
    pub retention_bytes: Option<u64>,
    /// Most entries a log query returns when the caller gives no limit.
    pub default_limit: usize,
    /// Most series a metric query may produce.
    pub max_series: usize,
    /// Most steps a range query may evaluate.
    pub max_steps: usize,
    /// `maintain` compacts segments (merges a stream's chunks, recompresses them harder; see
    /// [`LogStore::compact`]).
    pub compaction: bool,
}

impl Default for Config {
    fn default() -> Self {
        const S: i64 = 1_000_000_000;
        Self {
            max_streams: 10_000,
            max_labels_per_stream: 15,
            max_label_bytes: 1024,
            max_line_bytes: 256 * 1024,
            out_of_order_window_ns: 3600 * S,
            chunk_target_bytes: 1 << 20,
            max_chunk_age_ns: 3600 * S,
            flush_bytes: 64 << 20,
            flush_interval_ns: 60 * S,
            max_head_bytes: 256 << 20,
            retention_ns: None,
            retention_bytes: None,
            default_limit: 100,
            max_series: 50_000,
            max_steps: 11_000,
            compaction: true,
        }
    }
}

/// A chunk already in a segment.
#[derive(Debug)]
pub(crate) struct ChunkRef {
    pub(crate) seg: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) meta: ChunkMeta,
}

/// A cut chunk not yet in a segment.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) enc: EncodedChunk,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) labels: Labels,
    /// Entries not yet cut into a chunk, sorted by time (stable).
    pub(crate) head: Head,
    head_started_ns: i64,
    /// Per partition, the first record offset in the head ...
    head_from: BTreeMap<u32, u64>,
    /// ... and the offset after the last.
    head_upto: BTreeMap<u32, u64>,
    /// Cut chunks waiting for the next segment write.
    pub(crate) sealed: Vec<Sealed>,
    /// Chunks in segments, sorted by `min_ts`.
    pub(crate) chunks: Vec<ChunkRef>,
    /// Per partition, records below this offset are in a segment: replays skip them.
    durable_upto: BTreeMap<u32, u64>,
    newest_ns: i64,
}

impl Stream {
    fn new(labels: Labels) -> Self {
        Self {
            labels,
            head: Head::default(),
            head_started_ns: 0,
            head_from: BTreeMap::new(),
            head_upto: BTreeMap::new(),
            sealed: Vec::new(),
            chunks: Vec::new(),
            durable_upto: BTreeMap::new(),
            newest_ns: i64::MIN,
        }
    }

    fn is_empty(&self) -> bool {
        self.head.is_empty() && self.sealed.is_empty() && self.chunks.is_empty()
    }
}

/// A place a query reads entries from.
pub(crate) enum Source<'a> {
    Disk(&'a Segment, &'a ChunkRef),
    Sealed(&'a Sealed),
    Head(&'a Head),
}

impl Source<'_> {
    pub(crate) fn meta(&self) -> Option<&ChunkMeta> {
        match self {
            Source::Disk(_, c) => Some(&c.meta),
            Source::Sealed(c) => Some(&c.enc.meta),
            Source::Head(_) => None,
        }
    }

    pub(crate) fn time_range(&self) -> (i64, i64) {
        match self {
            Source::Disk(_, c) => (c.meta.min_ts, c.meta.max_ts),
            Source::Sealed(c) => (c.enc.meta.min_ts, c.enc.meta.max_ts),
            Source::Head(h) => h.time_range(),
        }
    }

    /// Decodes the source into `out`, verifying checksums; `scratch` holds compressed bytes.
    pub(crate) fn load(
        &self,
        out: &mut DecodedChunk,
        scratch: &mut Vec<u8>,
        dctx: &mut chunk::Decompressor,
    ) -> Result<()> {
        match self {
            Source::Disk(seg, c) => {
                seg.read_chunk(c.offset, c.len, scratch)?;
                chunk::decode_with(dctx, scratch, out).map_err(|what| {
                    corrupt(&seg.path, format!("chunk at byte {}: {what}", c.offset))
                })
            }
            Source::Sealed(c) => chunk::decode_with(dctx, &c.enc.bytes, out)
                .map_err(|what| corrupt("<memory>", format!("sealed chunk: {what}"))),
            Source::Head(h) => {
                *out = DecodedChunk::from_entries(*h);
                Ok(())
            }
        }
    }
}

/// Storage figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub streams: usize,
    pub segments: usize,
    /// Bytes of all segment files.
    pub segment_bytes: u64,
    /// Bytes of line text in segments (what was stored, before compression).
    pub segment_line_bytes: u64,
    pub chunks: usize,
    /// Bytes of line text not yet in a segment.
    pub pending_line_bytes: usize,
}

/// The log store. Writes take `&mut self`; queries take `&self`.
pub struct LogStore {
    pub(crate) dir: PathBuf,
    pub(crate) cfg: Config,
    clock: Arc<dyn Clock>,
    pub(crate) streams: Vec<Stream>,
    pub(crate) by_labels: HashMap<Labels, usize>,
    /// label name -> value -> stream ids.
    pub(crate) postings: BTreeMap<String, BTreeMap<String, Vec<usize>>>,
    pub(crate) segments: BTreeMap<u64, Segment>,
    pub(crate) next_seq: u64,
    /// Per partition, the offset after the last record applied in memory.
    pub(crate) applied: BTreeMap<u32, u64>,
    /// The replay offsets in the last checkpoint.
    pub(crate) durable: BTreeMap<u32, u64>,
    head_bytes: usize,
    sealed_bytes: usize,
    last_flush_ns: i64,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("streams", &self.streams.len())
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl LogStore {
    /// Opens (or creates) a store in `dir` with the system clock.
    pub fn open(dir: impl AsRef<Path>, cfg: Config) -> Result<Self> {
        Self::open_with_clock(dir, cfg, Arc::new(SystemClock))
    }

    /// Opens (or creates) a store in `dir`. Segments the checkpoint does not list (written by a
    /// flush that crashed before its checkpoint) are deleted: their entries come back by replay.
    pub fn open_with_clock(
        dir: impl AsRef<Path>,
        cfg: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let cp = Checkpoint::load(&dir)?;
        let listed: BTreeSet<u64> = cp.segments.iter().copied().collect();
        for ent in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let ent = ent.map_err(io_err(&dir))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            let orphan = match segment::parse_file_name(name) {
                Some(seq) => !listed.contains(&seq),
                None => name.ends_with(".tmp"),
            };
            if orphan {
                let p = ent.path();
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        let now = clock.now_ns();
        let mut store = Self {
            dir,
            cfg,
            clock,
            streams: Vec::new(),
            by_labels: HashMap::new(),
            postings: BTreeMap::new(),
            segments: BTreeMap::new(),
            next_seq: cp.next_seq,
            applied: cp.applied.clone(),
            durable: cp.applied,
            head_bytes: 0,
            sealed_bytes: 0,
            last_flush_ns: now,
        };
        for seq in listed {
            let path = store.dir.join(segment::file_name(seq));
            let (seg, chunks) = Segment::open(&path)?;
            store.next_seq = store.next_seq.max(seq + 1);
            for c in chunks {
                let id = store.stream_id_unchecked(&c.stream);
                let s = &mut store.streams[id];
                s.newest_ns = s.newest_ns.max(c.meta.max_ts);
                raise_watermark(&mut s.durable_upto, &c.meta.offsets);
                s.chunks.push(ChunkRef {
                    seg: seq,
                    offset: c.offset,
                    len: c.len,
                    meta: c.meta,
                });
            }
            store.segments.insert(seq, seg);
        }
        for s in &mut store.streams {
            s.chunks.sort_by_key(|c| c.meta.min_ts);
        }
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Per partition, the offset to replay the log from after a restart: every record before it
    /// is durably applied (as of the last checkpoint). Records after it may be applied already;
    /// [`LogStore::append`] skips those.
    pub fn applied_offsets(&self) -> Vec<(u32, u64)> {
        self.durable.iter().map(|(&p, &o)| (p, o)).collect()
    }

    /// Applies one log record: `entries` of stream `labels` read at `offset` of `partition`.
    ///
    /// Returns `Ok(false)` (and changes nothing) when the record was already applied, so replays
    /// are idempotent. A record breaking a limit is rejected whole. Records of one partition
    /// must come in offset order.
    pub fn append(
        &mut self,
        partition: u32,
        offset: u64,
        labels: &Labels,
        entries: &[LogEntry],
    ) -> Result<bool> {
        self.append_entries(partition, offset, labels, entries)
    }

    /// [`LogStore::append`] of any [`Entries`]: their lines and metadata are copied into the
    /// stream's head buffer.
    pub(crate) fn append_entries<E: Entries + ?Sized>(
        &mut self,
        partition: u32,
        offset: u64,
        labels: &Labels,
        entries: &E,
    ) -> Result<bool> {
        if self
            .applied
            .get(&partition)
            .is_some_and(|&next| offset < next)
        {
            return Ok(false);
        }
        let existing = self.by_labels.get(labels).copied();
        if let Some(id) = existing {
            if self.streams[id]
                .durable_upto
                .get(&partition)
                .is_some_and(|&upto| offset < upto)
            {
                self.applied.insert(partition, offset + 1);
                return Ok(false);
            }
        }
        self.validate_labels(labels)?;
        let n = entries.count();
        if n == 0 {
            self.applied.insert(partition, offset + 1);
            return Ok(true);
        }
        let mut added = 0;
        for i in 0..n {
            let len = entries.line(i).len();
            if len > self.cfg.max_line_bytes {
                return Err(Error::LineTooLong {
                    len,
                    limit: self.cfg.max_line_bytes,
                });
            }
            added += len;
        }
        let mut newest = existing.map_or(i64::MIN, |id| self.streams[id].newest_ns);
        for i in 0..n {
            let ts = entries.timestamp_ns(i);
            if newest != i64::MIN && ts < newest.saturating_sub(self.cfg.out_of_order_window_ns) {
                return Err(Error::OutOfOrder {
                    timestamp_ns: ts,
                    newest_ns: newest,
                    window_ns: self.cfg.out_of_order_window_ns,
                });
            }
            newest = newest.max(ts);
        }
        let id = match existing {
            Some(id) => id,
            None => {
                if self.live_streams() >= self.cfg.max_streams {
                    return Err(Error::TooManyStreams {
                        limit: self.cfg.max_streams,
                    });
                }
                self.stream_id_unchecked(labels)
            }
        };
        let now = self.clock.now_ns();
        let s = &mut self.streams[id];
        if s.head.is_empty() {
            s.head_started_ns = now;
        }
        s.head.extend(entries);
        s.newest_ns = s.newest_ns.max(newest);
        self.head_bytes += added;
        s.head_from.entry(partition).or_insert(offset);
        s.head_upto.insert(partition, offset + 1);
        if s.head.line_bytes() >= self.cfg.chunk_target_bytes {
            let (h, c) = Self::cut(s);
            self.head_bytes -= h;
            self.sealed_bytes += c;
        }
        self.applied.insert(partition, offset + 1);
        Ok(true)
    }

    fn live_streams(&self) -> usize {
        self.streams.len()
    }

    fn validate_labels(&self, labels: &Labels) -> Result<()> {
        if labels.is_empty() {
            return Err(Error::EmptyStream);
        }
        if labels.len() > self.cfg.max_labels_per_stream {
            return Err(Error::TooManyLabels {
                count: labels.len(),
                limit: self.cfg.max_labels_per_stream,
            });
        }
        for l in labels {
            let len = l.name.len().max(l.value.len());
            if len > self.cfg.max_label_bytes {
                return Err(Error::LabelTooLong {
                    name: l.name.chars().take(64).collect(),
                    len,
                    limit: self.cfg.max_label_bytes,
                });
            }
        }
        Ok(())
    }

    fn stream_id_unchecked(&mut self, labels: &Labels) -> usize {
        if let Some(&id) = self.by_labels.get(labels) {
            return id;
        }
        let id = self.streams.len();
        self.streams.push(Stream::new(labels.clone()));
        self.by_labels.insert(labels.clone(), id);
        for l in labels {
            self.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(id);
        }
        id
    }

    /// Cuts a stream's head into a sealed chunk; returns the line bytes moved.
    fn cut(s: &mut Stream) -> (usize, usize) {
        if s.head.is_empty() {
            return (0, 0);
        }
        let mut enc = chunk::encode(&s.head);
        enc.meta.offsets = std::mem::take(&mut s.head_upto).into_iter().collect();
        let moved = s.head.line_bytes();
        s.head.clear();
        s.head_from.clear();
        s.sealed.push(Sealed { enc });
        (moved, moved)
    }

    fn cut_all(&mut self) {
        for s in &mut self.streams {
            let (h, c) = Self::cut(s);
            self.head_bytes -= h;
            self.sealed_bytes += c;
        }
    }

    /// Per partition, the first offset whose record is still in a head (not yet cut); sealed
    /// chunks do not count: every checkpoint is written right after they reach a segment.
    fn replay_from(&self) -> BTreeMap<u32, u64> {
        let mut r = self.applied.clone();
        let mut lower = |from: &BTreeMap<u32, u64>| {
            for (&p, &o) in from {
                let e = r.entry(p).or_insert(o);
                *e = (*e).min(o);
            }
        };
        for s in &self.streams {
            lower(&s.head_from);
        }
        r
    }

    /// Cuts heads that reached their age (or all heads when they hold more than
    /// `max_head_bytes`), writes cut chunks to a segment when enough are waiting or the last
    /// write is older than `flush_interval_ns`, advances the checkpoint, applies retention.
    pub fn maintain(&mut self) -> Result<()> {
        let now = self.clock.now_ns();
        for s in &mut self.streams {
            if !s.head.is_empty()
                && now.saturating_sub(s.head_started_ns) >= self.cfg.max_chunk_age_ns
            {
                let (h, c) = Self::cut(s);
                self.head_bytes -= h;
                self.sealed_bytes += c;
            }
        }
        if self.head_bytes > self.cfg.max_head_bytes {
            self.cut_all();
        }
        if self.sealed_bytes >= self.cfg.flush_bytes
            || now.saturating_sub(self.last_flush_ns) >= self.cfg.flush_interval_ns
        {
            self.write_sealed()?;
        }
        if self.cfg.compaction {
            self.compact()?;
        }
        self.apply_retention()
    }

    /// Cuts every head and writes all cut chunks to a segment, then the checkpoint: every
    /// record applied so far becomes durable. Call it on shutdown.
    pub fn flush(&mut self) -> Result<()> {
        self.cut_all();
        self.write_sealed()
    }

    /// Writes all sealed chunks to one new segment, then the checkpoint.
    fn write_sealed(&mut self) -> Result<()> {
        self.last_flush_ns = self.clock.now_ns();
        // Replay offsets as they will be once the sealed chunks are durable.
        let replay = self.replay_from();
        if self.streams.iter().all(|s| s.sealed.is_empty()) {
            if replay != self.durable {
                self.write_checkpoint(replay.clone())?;
                self.durable = replay;
            }
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let list: Vec<(&Labels, &EncodedChunk)> = self
            .streams
            .iter()
            .flat_map(|s| s.sealed.iter().map(move |c| (&s.labels, &c.enc)))
            .collect();
        let (seg, listed) = Segment::write(&self.dir, seq, &list)?;
        let mut cp = self.checkpoint_now(replay.clone());
        cp.segments.push(seq);
        cp.store(&self.dir)?;
        self.durable = replay;
        // Move sealed chunks to their segment locations (same order as written).
        let mut it = listed.into_iter();
        for s in &mut self.streams {
            if s.sealed.is_empty() {
                continue;
            }
            for _ in s.sealed.drain(..) {
                if let Some(c) = it.next() {
                    raise_watermark(&mut s.durable_upto, &c.meta.offsets);
                    s.chunks.push(ChunkRef {
                        seg: seq,
                        offset: c.offset,
                        len: c.len,
                        meta: c.meta,
                    });
                }
            }
            s.chunks.sort_by_key(|c| c.meta.min_ts);
        }
        self.segments.insert(seq, seg);
        self.sealed_bytes = 0;
        Ok(())
    }

    fn checkpoint_now(&self, applied: BTreeMap<u32, u64>) -> Checkpoint {
        Checkpoint {
            next_seq: self.next_seq,
            segments: self.segments.keys().copied().collect(),
            applied,
        }
    }

    fn write_checkpoint(&self, applied: BTreeMap<u32, u64>) -> Result<()> {
        self.checkpoint_now(applied).store(&self.dir)
    }

    /// Deletes whole segments past the retention time or size.
    pub fn apply_retention(&mut self) -> Result<()> {
        let mut drop = BTreeSet::new();
        if let Some(ret) = self.cfg.retention_ns {
            let cutoff = self.clock.now_ns().saturating_sub(ret);
            for (&seq, seg) in &self.segments {
                if seg.max_ts < cutoff {
                    drop.insert(seq);
                }
            }
        }
        if let Some(max) = self.cfg.retention_bytes {
            let mut total: u64 = self
                .segments
                .iter()
                .filter(|(s, _)| !drop.contains(s))
                .map(|(_, g)| g.size)
                .sum();
            // Oldest data first (a compacted segment has a new number but old data).
            let mut by_age: Vec<(&u64, &Segment)> = self.segments.iter().collect();
            by_age.sort_by_key(|(&seq, g)| (g.max_ts, seq));
            for (&seq, seg) in by_age {
                if total <= max {
                    break;
                }
                if drop.insert(seq) {
                    total -= seg.size;
                }
            }
        }
        if drop.is_empty() {
            return Ok(());
        }
        let cp = Checkpoint {
            next_seq: self.next_seq,
            segments: self
                .segments
                .keys()
                .copied()
                .filter(|s| !drop.contains(s))
                .collect(),
            applied: self.durable.clone(),
        };
        cp.store(&self.dir)?;
        for seq in &drop {
            if let Some(seg) = self.segments.remove(seq) {
                std::fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
            }
        }
        for s in &mut self.streams {
            s.chunks.retain(|c| !drop.contains(&c.seg));
        }
        self.compact_streams();
        Ok(())
    }

    /// Forgets streams that hold no data any more.
    fn compact_streams(&mut self) {
        if self.streams.iter().all(|s| !s.is_empty()) {
            return;
        }
        let old = std::mem::take(&mut self.streams);
        self.by_labels.clear();
        self.postings.clear();
        for s in old.into_iter().filter(|s| !s.is_empty()) {
            let id = self.stream_id_unchecked(&s.labels.clone());
            self.streams[id] = s;
        }
    }

    /// Storage figures.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            streams: self.streams.len(),
            segments: self.segments.len(),
            segment_bytes: self.segments.values().map(|s| s.size).sum(),
            segment_line_bytes: self
                .streams
                .iter()
                .flat_map(|s| s.chunks.iter())
                .map(|c| c.meta.line_bytes)
                .sum(),
            chunks: self
                .streams
                .iter()
                .map(|s| s.chunks.len() + s.sealed.len())
                .sum(),
            pending_line_bytes: self.head_bytes + self.sealed_bytes,
        }
    }

    /// Every source of stream `id` that may hold entries in `[start, end]`.
    pub(crate) fn sources(&self, id: usize, start: i64, end: i64) -> Vec<Source<'_>> {
        let s = &self.streams[id];
        let mut out = Vec::new();
        for c in &s.chunks {
            if c.meta.max_ts >= start && c.meta.min_ts <= end {
                if let Some(seg) = self.segments.get(&c.seg) {
                    out.push(Source::Disk(seg, c));
                }
            }
        }
        for c in &s.sealed {
            if c.enc.meta.max_ts >= start && c.enc.meta.min_ts <= end {
                out.push(Source::Sealed(c));
            }
        }
        if !s.head.is_empty() {
            let src = Source::Head(&s.head);
            let (lo, hi) = src.time_range();
            if hi >= start && lo <= end {
                out.push(src);
            }
        }
        out
    }

    /// Time range of the data a stream holds.
    pub(crate) fn stream_overlaps(&self, id: usize, start: i64, end: i64) -> bool {
        let s = &self.streams[id];
        s.chunks
            .iter()
            .any(|c| c.meta.max_ts >= start && c.meta.min_ts <= end)
            || s.sealed
                .iter()
                .any(|c| c.enc.meta.max_ts >= start && c.enc.meta.min_ts <= end)
            || s.head
                .iter()
                .any(|e| e.timestamp_ns >= start && e.timestamp_ns <= end)
    }
}

fn raise_watermark(w: &mut BTreeMap<u32, u64>, offsets: &[(u32, u64)]) {
    for &(p, o) in offsets {
        let e = w.entry(p).or_insert(o);
        *e = (*e).max(o);
    }
}
