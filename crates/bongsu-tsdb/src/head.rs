//! The head: in-memory series with open XOR chunks and a small out-of-order buffer.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bongsu_model::{Labels, Sample, METRIC_NAME};
use roaring::RoaringBitmap;

use crate::arena::{ChunkArena, ChunkPos, Closed};
use crate::chunk::{XorChunk, XorIter, MAX_CHUNK_SAMPLES};
use crate::index::{MemIndex, SymbolTable};
use crate::matcher::Matcher;
use crate::slab::Slab;
use crate::{Error, Result};

/// Out-of-order samples buffered per series before they are merged into the chunks.
const OOO_MERGE_AT: usize = 32;

/// The head's series by id.
type SeriesMap = Slab<HeadSeries>;

/// Buffers for closing chunks, one set per thread that appends.
#[derive(Debug, Default)]
struct CloseScratch {
    samples: Vec<(i64, f64)>,
    pack: crate::packed::PackScratch,
    packed: Vec<u8>,
}

thread_local! {
    static CLOSE_SCRATCH: std::cell::RefCell<CloseScratch> = std::cell::RefCell::default();
}

/// Puts a full open chunk into the arena after `prev`: the far smaller packed form when its
/// values are short decimals (see `packed.rs`), else its XOR bytes.
fn close_into(arena: &mut ChunkArena, prev: Option<ChunkPos>, o: &XorChunk) -> ChunkPos {
    CLOSE_SCRATCH.with(|c| {
        let mut c = c.borrow_mut();
        let CloseScratch {
            samples,
            pack,
            packed,
        } = &mut *c;
        samples.clear();
        samples.extend(o.iter());
        let is_packed =
            crate::packed::pack_into(samples, pack, packed) && packed.len() < o.bytes().len();
        let bytes: &[u8] = if is_packed { packed } else { o.bytes() };
        arena.push(prev, o.max_t(), is_packed, bytes)
    })
}

impl Closed<'_> {
    /// The chunk's first timestamp, read from its bytes.
    fn min_t(&self) -> i64 {
        let t = if self.packed {
            crate::packed::first_timestamp(self.bytes)
        } else {
            crate::chunk::first_timestamp(self.bytes)
        };
        debug_assert!(t.is_some(), "a closed head chunk without samples");
        t.unwrap_or(i64::MIN)
    }

    fn extend_into(&self, out: &mut Vec<(i64, f64)>) {
        if self.packed {
            // packed by `close_into` from valid samples; unpacking cannot fail
            let s = crate::packed::unpack(self.bytes);
            debug_assert!(s.is_some(), "a packed head chunk does not unpack");
            out.extend(s.unwrap_or_default());
        } else {
            out.extend(XorIter::new(self.bytes));
        }
    }

    /// Appends the samples within `[start, end]`; an XOR chunk is decoded only as far as
    /// `end`.
    fn extend_range_into(&self, out: &mut Vec<(i64, f64)>, start: i64, end: i64) {
        if self.packed {
            let mut all = Vec::new();
            self.extend_into(&mut all);
            out.extend(all.into_iter().filter(|x| x.0 >= start && x.0 <= end));
        } else {
            out.extend(
                XorIter::new(self.bytes)
                    .skip_while(|x| x.0 < start)
                    .take_while(|x| x.0 <= end),
            );
        }
    }

    fn contains(&self, t: i64) -> bool {
        if t > self.max_t || t < self.min_t() {
            return false;
        }
        let mut s = Vec::new();
        self.extend_into(&mut s);
        s.binary_search_by_key(&t, |x| x.0).is_ok()
    }
}

/// A series in the head. Its closed chunks live in the head's [`ChunkArena`], linked newest
/// to oldest from `last_closed`; every method that touches them takes the arena.
#[derive(Debug)]
struct HeadSeries {
    pairs: Box<[(u32, u32)]>,
    /// The newest closed chunk.
    last_closed: Option<ChunkPos>,
    /// min_t of the oldest closed chunk (`i64::MAX` when there is none).
    closed_min_t: i64,
    /// The open chunk; never empty while present.
    open: Option<XorChunk>,
    /// Out-of-order samples waiting to be merged. Rare, so boxed: 8 bytes per series
    /// instead of a `Vec`'s 24.
    #[allow(clippy::box_collection)]
    ooo: Option<Box<Vec<(i64, f64)>>>,
    max_t: i64,
}

impl HeadSeries {
    fn new(pairs: Box<[(u32, u32)]>) -> Self {
        Self {
            pairs,
            last_closed: None,
            closed_min_t: i64::MAX,
            open: None,
            ooo: None,
            max_t: i64::MIN,
        }
    }

    fn ooo(&self) -> &[(i64, f64)] {
        self.ooo.as_deref().map_or(&[], |v| v.as_slice())
    }

    fn is_empty(&self) -> bool {
        self.last_closed.is_none() && self.open.is_none() && self.ooo().is_empty()
    }

    fn min_t(&self) -> Option<i64> {
        let c = if self.last_closed.is_some() {
            Some(self.closed_min_t)
        } else {
            self.open.as_ref().map(|o| o.min_t())
        };
        let o = self.ooo().iter().map(|s| s.0).min();
        match (c, o) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// In-order chunk samples (without the OOO buffer), time-sorted.
    fn chunk_samples(&self, arena: &ChunkArena) -> Vec<(i64, f64)> {
        let mut out = Vec::new();
        for c in arena.list(self.last_closed) {
            c.extend_into(&mut out);
        }
        if let Some(o) = &self.open {
            out.extend(o.iter());
        }
        out
    }

    /// All samples, time-sorted; on equal timestamps the chunk sample (written first) wins.
    fn samples(&self, arena: &ChunkArena) -> Vec<(i64, f64)> {
        let chunk = self.chunk_samples(arena);
        if self.ooo().is_empty() {
            return chunk;
        }
        let mut ooo = self.ooo().to_vec();
        ooo.sort_by_key(|s| s.0);
        merge_first_wins(&chunk, &ooo)
    }

    fn push_in_order(&mut self, arena: &mut ChunkArena, t: i64, v: f64) {
        if let Some(o) = self
            .open
            .as_mut()
            .filter(|o| o.count() >= MAX_CHUNK_SAMPLES)
        {
            self.last_closed = Some(close_into(arena, self.last_closed, o));
            self.closed_min_t = self.closed_min_t.min(o.min_t());
            // The open chunk's buffer, grown to this series' chunk size, serves the next.
            o.reset();
        }
        let appended = self.open.get_or_insert_with(XorChunk::new).append(t, v);
        debug_assert!(
            appended,
            "head chunks are closed at {MAX_CHUNK_SAMPLES} samples"
        );
        self.max_t = t;
    }

    /// Appends samples (see [`Head::append`] for the rules). Returns the outcome and the
    /// newest timestamp stored (`i64::MIN` when none was).
    fn append(
        &mut self,
        arena: &mut ChunkArena,
        samples: &[Sample],
        window: i64,
    ) -> (AppendOutcome, i64) {
        let mut out = AppendOutcome::default();
        let mut stored_max = i64::MIN;
        for smp in samples {
            let (t, v) = (smp.timestamp_ms, smp.value);
            if self.max_t == i64::MIN || t > self.max_t {
                self.push_in_order(arena, t, v);
            } else if t == self.max_t {
                out.duplicates += 1;
                continue;
            } else if t < self.max_t.saturating_sub(window) {
                out.out_of_window += 1;
                continue;
            } else if self.contains(arena, t) {
                out.duplicates += 1;
                continue;
            } else {
                let ooo = self.ooo.get_or_insert_with(Box::default);
                ooo.push((t, v));
                if ooo.len() >= OOO_MERGE_AT {
                    let all = self.samples(arena);
                    self.rebuild(arena, &all);
                }
            }
            out.appended += 1;
            stored_max = stored_max.max(t);
        }
        (out, stored_max)
    }

    /// Rebuilds the chunks from time-sorted samples.
    fn rebuild(&mut self, arena: &mut ChunkArena, samples: &[(i64, f64)]) {
        arena.release_list(self.last_closed.take());
        self.closed_min_t = i64::MAX;
        self.ooo = None;
        // Keep the open chunk's buffer for the first new chunk.
        let mut open = self.open.take();
        if samples.is_empty() {
            open = None;
        }
        if let Some(o) = open.as_mut() {
            o.reset();
        }
        self.open = open;
        let max_t = self.max_t;
        for &(t, v) in samples {
            self.push_in_order(arena, t, v);
        }
        self.max_t = max_t.max(self.max_t);
    }

    fn contains(&self, arena: &ChunkArena, t: i64) -> bool {
        if self.ooo().iter().any(|s| s.0 == t) {
            return true;
        }
        let in_chunk = |bytes: &[u8]| XorIter::new(bytes).any(|s| s.0 == t);
        self.open
            .as_ref()
            .is_some_and(|o| o.min_t() <= t && t <= o.max_t() && in_chunk(o.bytes()))
            || arena
                .iter_back(self.last_closed)
                .take_while(|c| c.max_t >= t)
                .any(|c| c.contains(t))
    }

    /// Bytes outside the arena: the struct, its label references, the open chunk and the
    /// out-of-order buffer.
    fn own_memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.pairs.len() * 8
            + self.open.as_ref().map_or(0, |o| o.memory_bytes())
            + self.ooo.as_ref().map_or(0, |v| 24 + v.capacity() * 16)
    }
}

/// A hash of a series' label pairs, for `Head::by_hash`.
fn pairs_hash(pairs: &[(u32, u32)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    pairs.hash(&mut h);
    h.finish()
}

/// Merges two time-sorted runs; on equal timestamps `first` wins.
pub(crate) fn merge_first_wins(first: &[(i64, f64)], second: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(first.len() + second.len());
    let (mut i, mut j) = (0, 0);
    while i < first.len() && j < second.len() {
        match first[i].0.cmp(&second[j].0) {
            std::cmp::Ordering::Less => {
                out.push(first[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(second[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(first[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&first[i..]);
    out.extend_from_slice(&second[j..]);
    out
}

/// Limits and the out-of-order window applied by the head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    pub(crate) max_series: usize,
    pub(crate) max_series_per_metric: usize,
    pub(crate) ooo_window_ms: i64,
}

/// What one `append` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Samples stored.
    pub appended: u64,
    /// Samples whose (series, timestamp) was already stored; the first value is kept.
    pub duplicates: u64,
    /// Samples older than the out-of-order window; refused.
    pub out_of_window: u64,
}

/// Approximate memory held by the head, by part (see [`crate::Tsdb::head_memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadMemory {
    pub series: usize,
    /// Encoded samples: closed and open XOR chunks and out-of-order buffers.
    pub chunk_bytes: usize,
    /// Per-series bookkeeping: structs, label references, lookup maps.
    pub series_bytes: usize,
    /// Postings bitmaps.
    pub index_bytes: usize,
    /// Interned label names and values.
    pub symbol_bytes: usize,
}

impl HeadMemory {
    pub fn total(&self) -> usize {
        self.chunk_bytes + self.series_bytes + self.index_bytes + self.symbol_bytes
    }

    pub fn per_series(&self) -> f64 {
        self.total() as f64 / self.series.max(1) as f64
    }
}

/// A batch boundary: everything appended before it came from the log before `offsets`.
#[derive(Debug, Clone)]
struct Mark {
    offsets: BTreeMap<u32, u64>,
    max_t: i64,
}

/// Samples drained from the head by a cut, sorted by labels.
pub(crate) type Drained = Vec<(Labels, Vec<(i64, f64)>)>;

#[derive(Debug)]
pub(crate) struct Head {
    syms: SymbolTable,
    index: MemIndex,
    series: SeriesMap,
    /// The series' closed chunks.
    arena: ChunkArena,
    /// Series ids by a hash of their label pairs; the pairs live once, in the series.
    /// A series whose hash is taken by another one is found in `collided` instead.
    by_hash: HashMap<u64, u32>,
    collided: HashMap<Box<[(u32, u32)]>, u32>,
    per_metric: HashMap<u32, usize>,
    limits: HeadLimits,
    /// Offsets as of the latest mark.
    offsets: BTreeMap<u32, u64>,
    marks: VecDeque<Mark>,
    pending_max_t: i64,
    pub(crate) out_of_window_total: u64,
    pub(crate) duplicates_total: u64,
    pub(crate) samples_total: u64,
}

impl Head {
    pub(crate) fn new(limits: HeadLimits, offsets: BTreeMap<u32, u64>) -> Self {
        Self {
            syms: SymbolTable::default(),
            index: MemIndex::default(),
            series: SeriesMap::default(),
            arena: ChunkArena::default(),
            by_hash: HashMap::new(),
            collided: HashMap::new(),
            per_metric: HashMap::new(),
            limits,
            offsets,
            marks: VecDeque::new(),
            pending_max_t: i64::MIN,
            out_of_window_total: 0,
            duplicates_total: 0,
            samples_total: 0,
        }
    }

    /// The id of the series with these label pairs.
    fn find(&self, pairs: &[(u32, u32)]) -> Option<u32> {
        if let Some(&id) = self.by_hash.get(&pairs_hash(pairs)) {
            if self.series.get(id).is_some_and(|s| &*s.pairs == pairs) {
                return Some(id);
            }
        }
        self.collided.get(pairs).copied()
    }

    fn index_pairs(&mut self, pairs: &[(u32, u32)], id: u32) {
        match self.by_hash.entry(pairs_hash(pairs)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(pairs.into(), id);
            }
        }
    }

    fn unindex_pairs(&mut self, pairs: &[(u32, u32)], id: u32) {
        if self.collided.remove(pairs).is_some() {
            return;
        }
        let h = pairs_hash(pairs);
        if self.by_hash.get(&h) == Some(&id) {
            self.by_hash.remove(&h);
            // a series that collided with this one takes its place
            let other = self
                .collided
                .iter()
                .find(|(k, _)| pairs_hash(k) == h)
                .map(|(k, &v)| (k.clone(), v));
            if let Some((k, v)) = other {
                self.collided.remove(&k);
                self.by_hash.insert(h, v);
            }
        }
    }

    fn get_or_create(&mut self, labels: &Labels) -> Result<u32> {
        if let Some(pairs) = self.syms.lookup_labels(labels) {
            if let Some(id) = self.find(&pairs) {
                return Ok(id);
            }
        }
        if self.series.len() >= self.limits.max_series {
            return Err(Error::SeriesLimit {
                limit: self.limits.max_series,
            });
        }
        let metric = labels.metric_name().unwrap_or("");
        let metric_sym = self.syms.lookup(metric);
        if let Some(&n) = metric_sym.and_then(|m| self.per_metric.get(&m)) {
            if n >= self.limits.max_series_per_metric {
                return Err(Error::MetricSeriesLimit {
                    metric: metric.to_owned(),
                    limit: self.limits.max_series_per_metric,
                });
            }
        }
        let pairs = self.syms.intern_labels(labels);
        let metric_sym = self.syms.intern(metric);
        *self.per_metric.entry(metric_sym).or_default() += 1;
        let id = self.series.vacant_id();
        self.index.add(id, &pairs);
        self.index_pairs(&pairs, id);
        let inserted = self.series.insert(HeadSeries::new(pairs));
        debug_assert_eq!(inserted, id);
        Ok(id)
    }

    /// Whether appending to every series in `labels` would keep within the cardinality
    /// limits: counts the series not yet in the head, per metric name and in total.
    pub(crate) fn check_new_series<'a>(
        &self,
        labels: impl IntoIterator<Item = &'a Labels>,
    ) -> Result<()> {
        let mut new_total = 0usize;
        let mut new_per_metric: HashMap<&str, usize> = HashMap::new();
        let mut seen: std::collections::HashSet<&Labels> = std::collections::HashSet::new();
        for l in labels {
            if !seen.insert(l) {
                continue;
            }
            let exists = self
                .syms
                .lookup_labels(l)
                .is_some_and(|pairs| self.find(&pairs).is_some());
            if exists {
                continue;
            }
            new_total += 1;
            if self.series.len() + new_total > self.limits.max_series {
                return Err(Error::SeriesLimit {
                    limit: self.limits.max_series,
                });
            }
            let metric = l.metric_name().unwrap_or("");
            let n = new_per_metric.entry(metric).or_default();
            *n += 1;
            let have = self
                .syms
                .lookup(metric)
                .and_then(|m| self.per_metric.get(&m))
                .copied()
                .unwrap_or(0);
            if have + *n > self.limits.max_series_per_metric {
                return Err(Error::MetricSeriesLimit {
                    metric: metric.to_owned(),
                    limit: self.limits.max_series_per_metric,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn append(&mut self, labels: &Labels, samples: &[Sample]) -> Result<AppendOutcome> {
        if samples.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let id = self.get_or_create(labels)?;
        Ok(self.append_id(id, samples))
    }

    /// Like [`Head::append`], and returns the series' id (`None` when `samples` is empty and
    /// nothing was created).
    pub(crate) fn append_returning_id(
        &mut self,
        labels: &Labels,
        samples: &[Sample],
    ) -> Result<(Option<u32>, AppendOutcome)> {
        if samples.is_empty() {
            return Ok((None, AppendOutcome::default()));
        }
        let id = self.get_or_create(labels)?;
        Ok((Some(id), self.append_id(id, samples)))
    }

    /// Appends samples to series `id` if it is in the head with exactly these (sorted)
    /// labels; `None`, with nothing appended, when it is not. One lookup of the series.
    pub(crate) fn append_checked(
        &mut self,
        id: u32,
        labels: &[(&str, &str)],
        samples: &[Sample],
    ) -> Option<AppendOutcome> {
        let s = self.series.get_mut(id)?;
        let syms = &self.syms;
        let same = s.pairs.len() == labels.len()
            && s.pairs
                .iter()
                .zip(labels)
                .all(|(&(n, v), &(name, value))| syms.get(n) == name && syms.get(v) == value);
        if !same {
            return None;
        }
        let (out, max_t) = s.append(&mut self.arena, samples, self.limits.ooo_window_ms);
        Some(self.count_appended(out, max_t))
    }

    /// Appends samples to the existing series `id` (see [`Head::append`] for the rules).
    pub(crate) fn append_id(&mut self, id: u32, samples: &[Sample]) -> AppendOutcome {
        let Some(s) = self.series.get_mut(id) else {
            return AppendOutcome::default();
        };
        let (out, max_t) = s.append(&mut self.arena, samples, self.limits.ooo_window_ms);
        self.count_appended(out, max_t)
    }

    /// Adds one append's outcome to the head's totals; `max_t` is its newest stored sample.
    fn count_appended(&mut self, out: AppendOutcome, max_t: i64) -> AppendOutcome {
        self.pending_max_t = self.pending_max_t.max(max_t);
        self.out_of_window_total += out.out_of_window;
        self.duplicates_total += out.duplicates;
        self.samples_total += out.appended;
        out
    }

    /// Records that everything appended so far came from the log before `offsets`.
    pub(crate) fn mark_applied(&mut self, offsets: &[(u32, u64)]) {
        for &(p, o) in offsets {
            let e = self.offsets.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        self.marks.push_back(Mark {
            offsets: self.offsets.clone(),
            max_t: self.pending_max_t,
        });
        self.pending_max_t = i64::MIN;
    }

    /// Removes and returns every sample older than `boundary`, and the log offsets that are
    /// safe to record once those samples are durable (every batch before them had all of
    /// its samples below the boundary). `None` when no mark became safe.
    pub(crate) fn drain_before(&mut self, boundary: i64) -> (Drained, Option<BTreeMap<u32, u64>>) {
        let mut safe = None;
        while self.marks.front().is_some_and(|m| m.max_t < boundary) {
            safe = self.marks.pop_front().map(|m| m.offsets);
        }
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (id, s) in self.series.iter_mut() {
            if s.min_t().is_none_or(|m| m >= boundary) {
                if s.is_empty() {
                    gone.push(id);
                }
                continue;
            }
            let all = s.samples(&self.arena);
            let split = all.partition_point(|x| x.0 < boundary);
            let (old, new) = all.split_at(split);
            out.push((self.syms.labels(&s.pairs), old.to_vec()));
            s.rebuild(&mut self.arena, new);
            if s.is_empty() {
                gone.push(id);
            }
        }
        for id in gone {
            self.remove_series(id);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        (out, safe)
    }

    fn remove_series(&mut self, id: u32) {
        if let Some(s) = self.series.remove(id) {
            self.arena.release_list(s.last_closed);
            self.index.remove(id, &s.pairs);
            self.unindex_pairs(&s.pairs, id);
            let metric = self
                .syms
                .lookup(METRIC_NAME)
                .and_then(|n| s.pairs.iter().find(|p| p.0 == n).map(|p| p.1));
            let key = metric.or_else(|| self.syms.lookup(""));
            if let Some(k) = key {
                if let Some(c) = self.per_metric.get_mut(&k) {
                    *c = c.saturating_sub(1);
                    if *c == 0 {
                        self.per_metric.remove(&k);
                    }
                }
            }
        }
    }

    pub(crate) fn select_ids(&self, matchers: &[Matcher]) -> RoaringBitmap {
        self.index.select(&self.syms, matchers)
    }

    pub(crate) fn labels(&self, id: u32) -> Option<Labels> {
        self.series.get(id).map(|s| self.syms.labels(&s.pairs))
    }

    /// Samples of series `id` within `[start, end]`. Only the chunks overlapping the
    /// range are decoded, and each only as far as the range's end.
    pub(crate) fn samples(&self, id: u32, start: i64, end: i64) -> Vec<(i64, f64)> {
        let Some(s) = self.series.get(id) else {
            return Vec::new();
        };
        let in_range = |x: &(i64, f64)| x.0 >= start && x.0 <= end;
        let mut out = Vec::new();
        // Closed chunks are in time order: walk back from the newest to the first that ends
        // before `start`.
        let mut closed: Vec<Closed<'_>> = self
            .arena
            .iter_back(s.last_closed)
            .take_while(|c| c.max_t >= start)
            .filter(|c| c.min_t() <= end)
            .collect();
        closed.reverse();
        for c in &closed {
            c.extend_range_into(&mut out, start, end);
        }
        if let Some(o) = s
            .open
            .as_ref()
            .filter(|o| o.max_t() >= start && o.min_t() <= end)
        {
            out.extend(
                o.iter()
                    .skip_while(|x| x.0 < start)
                    .take_while(|x| x.0 <= end),
            );
        }
        if s.ooo().is_empty() {
            return out;
        }
        // The same merge as `HeadSeries::samples`, restricted to the range.
        let mut ooo: Vec<(i64, f64)> = s.ooo().iter().copied().filter(in_range).collect();
        if ooo.is_empty() {
            return out;
        }
        ooo.sort_by_key(|x| x.0);
        merge_first_wins(&out, &ooo)
    }

    /// Whether series `id` has samples in `[start, end]`, judged from its time bounds
    /// without decoding chunks (a series whose bounds straddle a gap may answer true).
    pub(crate) fn overlaps(&self, id: u32, start: i64, end: i64) -> bool {
        self.series
            .get(id)
            .and_then(|s| Some((s.min_t()?, s.max_t)))
            .is_some_and(|(lo, hi)| lo <= end && hi >= start)
    }

    /// The head's symbol table and label index.
    pub(crate) fn index_parts(&self) -> (&SymbolTable, &MemIndex) {
        (&self.syms, &self.index)
    }

    /// Ids of every series with its labels, sorted by labels.
    pub(crate) fn sorted_series(&self) -> Vec<(Labels, u32)> {
        let mut out: Vec<(Labels, u32)> = self
            .series
            .iter()
            .map(|(id, s)| (self.syms.labels(&s.pairs), id))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub(crate) fn num_series(&self) -> usize {
        self.series.len()
    }

    pub(crate) fn max_t(&self) -> Option<i64> {
        self.series
            .values()
            .map(|s| s.max_t)
            .filter(|&t| t != i64::MIN)
            .max()
    }

    pub(crate) fn min_t(&self) -> Option<i64> {
        self.series.values().filter_map(HeadSeries::min_t).min()
    }

    /// Approximate bytes held by the head, by part.
    pub(crate) fn memory(&self) -> HeadMemory {
        // The arena's pages, then each series' open chunk and out-of-order buffer.
        let chunk_bytes = self.arena.held_bytes()
            + self
                .series
                .values()
                .map(|s| {
                    s.open.as_ref().map_or(0, |o| o.memory_bytes())
                        + s.ooo.as_ref().map_or(0, |v| 24 + v.capacity() * 16)
                })
                .sum::<usize>();
        // Per series: the struct and its labels, plus the series slab's slots and the by-hash
        // map's entries at its load factor (it grows by doubling).
        let map_bytes = |cap: usize, entry: usize| cap * (entry + 1);
        let series_bytes = self
            .series
            .values()
            .map(|s| {
                s.own_memory_bytes()
                    - s.open.as_ref().map_or(0, |o| o.memory_bytes())
                    - s.ooo.as_ref().map_or(0, |v| 24 + v.capacity() * 16)
                    - std::mem::size_of::<HeadSeries>()
            })
            .sum::<usize>()
            + self.series.slots() * std::mem::size_of::<Option<HeadSeries>>()
            + map_bytes(self.by_hash.capacity(), 16);
        let index_bytes = self
            .index
            .names()
            .map(|(_, vals)| {
                vals.values()
                    .map(|p| p.serialized_size() + 48)
                    .sum::<usize>()
            })
            .sum();
        HeadMemory {
            series: self.series.len(),
            chunk_bytes,
            series_bytes,
            index_bytes,
            symbol_bytes: self.syms.memory_bytes(),
        }
    }

    pub(crate) fn stats(&self, top: usize) -> crate::CardinalityStats {
        let (num_pairs, [by_metric, value_counts, memory, pairs]) =
            crate::index::cardinality(&self.syms, &self.index, top);
        crate::CardinalityStats {
            num_series: self.series.len() as u64,
            num_label_pairs: num_pairs,
            num_symbols: self.syms.len() as u64,
            chunk_count: self
                .series
                .values()
                .map(|s| {
                    self.arena.iter_back(s.last_closed).count() as u64 + u64::from(s.open.is_some())
                })
                .sum(),
            min_time_ms: self.min_t(),
            max_time_ms: self.max_t(),
            series_count_by_metric_name: by_metric,
            label_value_count_by_label_name: value_counts,
            memory_in_bytes_by_label_name: memory,
            series_count_by_label_value_pair: pairs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(window: i64) -> Head {
        Head::new(
            HeadLimits {
                max_series: 3,
                max_series_per_metric: 2,
                ooo_window_ms: window,
            },
            BTreeMap::new(),
        )
    }

    fn l(name: &str, i: &str) -> Labels {
        Labels::from_pairs([("__name__", name), ("i", i)]).unwrap()
    }

    #[test]
    fn range_reads_agree_with_full_reads_over_packed_and_xor_chunks() {
        let mut h = head(0);
        // Short decimals (packed once a chunk closes) and full-precision floats (kept XOR).
        let decimals: Vec<Sample> = (0..300)
            .map(|i| Sample::new(i * 15_000, (i * 7 % 50) as f64 / 100.0))
            .collect();
        let floats: Vec<Sample> = (0..300)
            .map(|i| Sample::new(i * 15_000, (i as f64).sqrt() * std::f64::consts::PI))
            .collect();
        h.append(&l("d", "1"), &decimals).unwrap();
        h.append(&l("f", "1"), &floats).unwrap();
        for (id, all) in [(0, &decimals), (1, &floats)] {
            assert!(
                h.arena.list(h.series.get(id).unwrap().last_closed).len() >= 2,
                "series {id} closed no chunk"
            );
            for (start, end) in [
                (0, i64::MAX),
                (1_000_000, 3_000_000),
                (2_000_000, 2_000_000),
            ] {
                let want: Vec<(i64, f64)> = all
                    .iter()
                    .filter(|s| s.timestamp_ms >= start && s.timestamp_ms <= end)
                    .map(|s| (s.timestamp_ms, s.value))
                    .collect();
                assert_eq!(
                    h.samples(id, start, end),
                    want,
                    "series {id} [{start}, {end}]"
                );
            }
        }
        assert!(h
            .arena
            .list(h.series.get(0).unwrap().last_closed)
            .iter()
            .all(|c| c.packed));
        assert!(h
            .arena
            .list(h.series.get(1).unwrap().last_closed)
            .iter()
            .all(|c| !c.packed));
    }

    /// The series map holds one of these per active series (about 100 000 in the benchmark):
    /// every 8 bytes here are 1 MiB there.
    #[test]
    fn head_series_stays_small() {
        assert!(
            std::mem::size_of::<HeadSeries>() <= 104,
            "{}",
            std::mem::size_of::<HeadSeries>()
        );
        assert_eq!(std::mem::size_of::<Option<ChunkPos>>(), 8);
    }

    #[test]
    fn check_new_series_counts_only_new_series_against_the_limits() {
        // Limits: 3 series in total, 2 per metric.
        let mut h = head(0);
        let s = [Sample::new(1, 1.0)];
        h.append(&l("a", "1"), &s).unwrap();
        assert!(h.check_new_series([&l("a", "1"), &l("a", "2")]).is_ok());
        assert!(matches!(
            h.check_new_series([&l("a", "2"), &l("a", "3")]),
            Err(Error::MetricSeriesLimit { ref metric, limit: 2 }) if metric == "a"
        ));
        // Duplicates in one request count once.
        assert!(h.check_new_series([&l("b", "1"), &l("b", "1")]).is_ok());
        assert!(matches!(
            h.check_new_series([&l("b", "1"), &l("c", "1"), &l("d", "1")]),
            Err(Error::SeriesLimit { limit: 3 })
        ));
        // Nothing changed.
        assert_eq!(h.num_series(), 1);
    }

    #[test]
    fn out_of_order_within_window_is_merged_beyond_is_refused() {
        let mut h = head(1_000);
        let s = |t, v| Sample::new(t, v);
        let o = h
            .append(
                &l("m", "a"),
                &[
                    s(5_000, 1.0),
                    s(4_500, 2.0),
                    s(3_000, 3.0),
                    s(5_000, 9.0),
                    s(4_500, 8.0),
                ],
            )
            .unwrap();
        assert_eq!(
            o,
            AppendOutcome {
                appended: 2,
                duplicates: 2,
                out_of_window: 1
            }
        );
        let id = h.select_ids(&[]).iter().next().unwrap();
        assert_eq!(
            h.samples(id, i64::MIN, i64::MAX),
            [(4_500, 2.0), (5_000, 1.0)]
        );
        // many out-of-order samples force a merge into the chunks
        let many: Vec<_> = (0..260)
            .map(|k| s(4_000 + k * 2, f64::from(k as i32)))
            .collect();
        h.append(&l("m", "a"), &many).unwrap();
        let got = h.samples(id, i64::MIN, i64::MAX);
        assert_eq!(got.len(), 260 + 2 - 1); // 4_500 already present
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(got.iter().find(|x| x.0 == 4_500).unwrap().1, 2.0);
    }

    #[test]
    fn limits_give_clear_errors() {
        let mut h = head(0);
        let one = [Sample::new(1, 1.0)];
        h.append(&l("m", "a"), &one).unwrap();
        h.append(&l("m", "b"), &one).unwrap();
        let e = h.append(&l("m", "c"), &one).unwrap_err();
        assert!(
            matches!(e, Error::MetricSeriesLimit { limit: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("max_series_per_metric"));
        h.append(&l("n", "a"), &one).unwrap();
        let e = h.append(&l("o", "a"), &one).unwrap_err();
        assert!(matches!(e, Error::SeriesLimit { limit: 3 }), "{e}");
        // existing series still accept samples
        h.append(&l("m", "a"), &[Sample::new(2, 1.0)]).unwrap();
    }

    #[test]
    fn drain_releases_only_safe_offsets() {
        let mut h = head(i64::MAX);
        h.append(&l("m", "a"), &[Sample::new(10, 1.0)]).unwrap();
        h.mark_applied(&[(0, 5)]);
        h.append(&l("m", "a"), &[Sample::new(150, 1.0)]).unwrap();
        h.mark_applied(&[(0, 9)]);
        let (d, safe) = h.drain_before(100);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1, [(10, 1.0)]);
        assert_eq!(safe, Some(BTreeMap::from([(0, 5)])));
        let (d, safe) = h.drain_before(i64::MAX);
        assert_eq!(d[0].1, [(150, 1.0)]);
        assert_eq!(safe, Some(BTreeMap::from([(0, 9)])));
        assert_eq!(h.num_series(), 0);
    }
}
