//! One partition's log on disk: segments, their sparse indexes, recovery, reads, rolling and
//! retention. Blocking code: it runs on the partition's writer thread, the retention thread or
//! `spawn_blocking`, never directly on the async runtime.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;

use crate::batch::{self, BatchHeader, HEADER_LEN};
use crate::config::TopicConfig;
use crate::error::{io_err, Error, Result};
use crate::index::{self, IndexHeader};
use crate::types::{FetchResult, StoredRecord};

/// `<20-digit base offset>.log`
pub(crate) fn segment_name(base: u64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

/// fsyncs a directory so that created, renamed or deleted entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// One segment: a log file and its in-memory sparse indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    /// Bytes of the file that hold acknowledged batches (readers never look further).
    pub(crate) size: u64,
    pub(crate) next_offset: u64,
    pub(crate) max_ts: i64,
    /// (offset - base, position) of indexed batches, ascending.
    pub(crate) index: Vec<(u32, u32)>,
    /// (largest timestamp up to and including the batch, offset - base), one per index entry.
    pub(crate) time_index: Vec<(i64, u32)>,
    pub(crate) created_ms: i64,
    last_index_pos: Option<u64>,
}

impl Segment {
    fn new(base_offset: u64, path: PathBuf, file: File, created_ms: i64) -> Self {
        Segment {
            base_offset,
            path,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            max_ts: i64::MIN,
            index: Vec::new(),
            time_index: Vec::new(),
            created_ms,
            last_index_pos: None,
        }
    }

    /// Records a batch written at `pos`.
    pub(crate) fn add_batch(&mut self, pos: u64, h: &BatchHeader, interval: u32) {
        self.max_ts = self.max_ts.max(h.max_ts);
        let due = match self.last_index_pos {
            None => true,
            Some(last) => pos - last >= interval as u64,
        };
        let rel = h.base_offset - self.base_offset;
        if due && rel <= u32::MAX as u64 && pos <= u32::MAX as u64 {
            self.index.push((rel as u32, pos as u32));
            self.time_index.push((self.max_ts, rel as u32));
            self.last_index_pos = Some(pos);
        }
        self.next_offset = h.next_offset();
        self.size = pos + h.len as u64;
    }

    /// Position of the last indexed batch whose base is `<= offset`.
    fn position_for(&self, offset: u64) -> u64 {
        let rel = offset.saturating_sub(self.base_offset).min(u32::MAX as u64) as u32;
        let i = self.index.partition_point(|(r, _)| *r <= rel);
        if i == 0 {
            0
        } else {
            self.index[i - 1].1 as u64
        }
    }

    /// Position to start scanning for the first record with timestamp `>= ts`.
    fn position_for_time(&self, ts: i64) -> u64 {
        let i = self.time_index.partition_point(|(t, _)| *t < ts);
        if i == 0 {
            0
        } else {
            self.index[i - 1].1 as u64
        }
    }

    fn index_header(&self) -> IndexHeader {
        IndexHeader {
            base_offset: self.base_offset,
            size: self.size,
            next_offset: self.next_offset,
            max_ts: self.max_ts,
        }
    }

    fn index_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.path.with_extension("index"),
            self.path.with_extension("timeindex"),
        )
    }

    /// Writes and fsyncs both index files (done when the segment is closed).
    fn write_indexes(&self) -> Result<()> {
        self.index_files().write()
    }

    /// The encoded index files of this segment, ready to be written.
    fn index_files(&self) -> IndexFiles {
        let (ip, tp) = self.index_paths();
        let h = self.index_header();
        IndexFiles {
            offset: (ip, index::encode_offset_index(&h, &self.index)),
            time: (tp, index::encode_time_index(&h, &self.time_index)),
        }
    }
}

/// Both index files of a closed segment, encoded.
struct IndexFiles {
    offset: (PathBuf, Vec<u8>),
    time: (PathBuf, Vec<u8>),
}

impl IndexFiles {
    fn write(&self) -> Result<()> {
        index::write_synced(&self.offset.0, &self.offset.1)?;
        index::write_synced(&self.time.0, &self.time.1)?;
        Ok(())
    }
}

/// A window over a segment file for reading consecutive batches with few system calls.
struct Window<'a> {
    file: &'a File,
    end: u64,
    start: u64,
    buf: Bytes,
}

const READ_CHUNK: usize = 256 << 10;

impl<'a> Window<'a> {
    fn new(file: &'a File, end: u64) -> Self {
        Window {
            file,
            end,
            start: 0,
            buf: Bytes::new(),
        }
    }

    /// `len` bytes at `pos`, or `None` when the file ends first.
    fn get(&mut self, pos: u64, len: usize) -> std::io::Result<Option<Bytes>> {
        if pos + len as u64 > self.end {
            return Ok(None);
        }
        if pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64 {
            let at = (pos - self.start) as usize;
            return Ok(Some(self.buf.slice(at..at + len)));
        }
        let want = len.max(READ_CHUNK).min((self.end - pos) as usize);
        let mut b = BytesMut::zeroed(want);
        self.file.read_exact_at(&mut b, pos)?;
        self.start = pos;
        self.buf = b.freeze();
        Ok(Some(self.buf.slice(0..len)))
    }
}

/// The log of one partition.
#[derive(Debug)]
pub(crate) struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) cfg: TopicConfig,
    /// Ascending by base offset; the last one is the active segment. Never empty.
    pub(crate) segments: Vec<Segment>,
    /// Threads writing the index files of recently closed segments (see [`roll`]).
    index_jobs: Vec<std::thread::JoinHandle<()>>,
}

/// What recovery found and did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    pub(crate) truncated_bytes: u64,
    pub(crate) rebuilt_indexes: u32,
}

impl PartitionLog {
    /// Creates an empty partition in `dir` (which must exist).
    pub(crate) fn create(
        dir: &Path,
        topic: &str,
        partition: u32,
        cfg: &TopicConfig,
        now_ms: i64,
    ) -> Result<Self> {
        let path = dir.join(segment_name(0, "log"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            topic: topic.to_string(),
            partition,
            cfg: cfg.clone(),
            segments: vec![Segment::new(0, path, file, now_ms)],
            index_jobs: Vec::new(),
        })
    }

    /// Opens a partition, validating its tail and rebuilding indexes that disagree.
    pub(crate) fn open(
        dir: &Path,
        topic: &str,
        partition: u32,
        cfg: &TopicConfig,
        now_ms: i64,
    ) -> Result<(Self, RecoveryReport)> {
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if stem.len() == 20 {
                    if let Ok(b) = stem.parse::<u64>() {
                        bases.push(b);
                    }
                }
            }
        }
        bases.sort_unstable();
        let mut report = RecoveryReport::default();
        if bases.is_empty() {
            return Ok((Self::create(dir, topic, partition, cfg, now_ms)?, report));
        }
        let mut segments = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(segment_name(base, "log"));
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let len = file.metadata().map_err(io_err(&path))?.len();
            let mut seg = Segment::new(base, path, file, now_ms);
            if i + 1 < bases.len() {
                let next_base = bases[i + 1];
                if !load_indexes(&mut seg, len, next_base) {
                    rebuild_closed(&mut seg, len, next_base, cfg.index_interval_bytes)?;
                    seg.write_indexes()?;
                    report.rebuilt_indexes += 1;
                }
            } else {
                report.truncated_bytes = recover_active(&mut seg, len, cfg.index_interval_bytes)?;
                // indexes of the active segment live in memory only
                let (ip, tp) = seg.index_paths();
                let _ = fs::remove_file(ip);
                let _ = fs::remove_file(tp);
            }
            segments.push(seg);
        }
        Ok((
            PartitionLog {
                dir: dir.to_path_buf(),
                topic: topic.to_string(),
                partition,
                cfg: cfg.clone(),
                segments,
                index_jobs: Vec::new(),
            },
            report,
        ))
    }

    /// Waits for the index files of closed segments still being written.
    pub(crate) fn finish_index_jobs(&mut self) {
        for j in self.index_jobs.drain(..) {
            let _ = j.join();
        }
    }

    pub(crate) fn active(&self) -> &Segment {
        &self.segments[self.segments.len() - 1]
    }

    pub(crate) fn active_mut(&mut self) -> &mut Segment {
        let n = self.segments.len();
        &mut self.segments[n - 1]
    }

    pub(crate) fn high_watermark(&self) -> u64 {
        self.active().next_offset
    }

    pub(crate) fn log_start(&self) -> u64 {
        self.segments[0].base_offset
    }

    pub(crate) fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    fn out_of_range(&self, offset: u64) -> Error {
        Error::OffsetOutOfRange {
            topic: self.topic.clone(),
            partition: self.partition,
            offset,
            log_start: self.log_start(),
            high_watermark: self.high_watermark(),
        }
    }
}

/// Loads and checks the index files of a closed segment; false when they must be rebuilt.
fn load_indexes(seg: &mut Segment, len: u64, next_base: u64) -> bool {
    let (ip, tp) = seg.index_paths();
    let (Ok(ib), Ok(tb)) = (fs::read(&ip), fs::read(&tp)) else {
        return false;
    };
    let (Some((ih, idx)), Some((th, tidx))) = (
        index::decode_offset_index(&ib),
        index::decode_time_index(&tb),
    ) else {
        return false;
    };
    if ih != th
        || ih.base_offset != seg.base_offset
        || ih.size != len
        || ih.next_offset != next_base
        || idx.len() != tidx.len()
        || idx.iter().zip(&tidx).any(|(a, b)| a.0 != b.1)
        || idx.iter().any(|(_, p)| *p as u64 >= len.max(1))
        || idx.first().is_some_and(|e| *e != (0, 0))
        || idx.windows(2).any(|w| w[1].0 <= w[0].0 || w[1].1 <= w[0].1)
        || tidx.windows(2).any(|w| w[1].0 < w[0].0)
    {
        return false;
    }
    // spot check: the last entry must point at a batch with that base offset
    if let Some(&(rel, pos)) = idx.last() {
        let mut h = [0u8; HEADER_LEN];
        if seg.file.read_exact_at(&mut h, pos as u64).is_err() {
            return false;
        }
        match batch::parse_header(&h) {
            Ok(bh) if bh.base_offset == seg.base_offset + rel as u64 => {}
            _ => return false,
        }
    }
    seg.size = len;
    seg.next_offset = ih.next_offset;
    seg.max_ts = ih.max_ts;
    seg.index = idx;
    seg.time_index = tidx;
    seg.last_index_pos = seg.index.last().map(|e| e.1 as u64);
    true
}

/// Rebuilds a closed segment's indexes by walking its batch headers. Corruption in a closed
/// segment is not truncated: indexing stops there and reads that reach it get an error.
fn rebuild_closed(seg: &mut Segment, len: u64, next_base: u64, interval: u32) -> Result<()> {
    let mut pos = 0u64;
    let mut h = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= len {
        seg.file
            .read_exact_at(&mut h, pos)
            .map_err(io_err(&seg.path))?;
        let Ok(bh) = batch::parse_header(&h) else {
            break;
        };
        if bh.base_offset != seg.next_offset || pos + bh.len as u64 > len {
            break;
        }
        seg.add_batch(pos, &bh, interval);
        pos += bh.len as u64;
    }
    seg.size = len;
    seg.next_offset = next_base;
    Ok(())
}

/// Validates every batch of the active segment (header, length, CRC, dense offsets) and
/// truncates the file at the first one that fails. Returns the number of bytes cut.
fn recover_active(seg: &mut Segment, len: u64, interval: u32) -> Result<u64> {
    let file = seg.file.clone();
    let mut reader = std::io::BufReader::with_capacity(4 << 20, &*file);
    let mut pos = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if pos + HEADER_LEN as u64 > len {
            break;
        }
        buf.resize(HEADER_LEN, 0);
        if reader.read_exact(&mut buf).is_err() {
            break;
        }
        let Ok(h) = batch::parse_header(&buf) else {
            break;
        };
        if pos + h.len as u64 > len || (seg.size > 0 && h.base_offset != seg.next_offset) {
            break;
        }
        if seg.size == 0 && h.base_offset != seg.base_offset {
            break;
        }
        buf.resize(h.len as usize, 0);
        if reader.read_exact(&mut buf[HEADER_LEN..]).is_err() {
            break;
        }
        if !batch::check_crc(&h, &buf) {
            break;
        }
        seg.add_batch(pos, &h, interval);
        pos += h.len as u64;
    }
    let cut = len - pos;
    if cut > 0 {
        seg.file.set_len(pos).map_err(io_err(&seg.path))?;
        seg.file.sync_all().map_err(io_err(&seg.path))?;
    }
    seg.size = pos;
    Ok(cut)
}

fn corrupt(path: &Path, position: u64, offset: u64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        path: path.to_path_buf(),
        position,
        offset,
        reason: reason.into(),
    }
}

struct Snapshot {
    file: Arc<File>,
    path: PathBuf,
    pos: u64,
    end: u64,
    next_offset: u64,
}

/// Reads records from `offset` on, up to about `max_bytes` of batches (at least one batch).
pub(crate) fn read(
    log: &RwLock<PartitionLog>,
    offset: u64,
    max_bytes: usize,
) -> Result<FetchResult> {
    let (hwm, start) = {
        let l = log.read();
        let (hwm, start) = (l.high_watermark(), l.log_start());
        if offset < start || offset > hwm {
            return Err(l.out_of_range(offset));
        }
        (hwm, start)
    };
    let mut out: Vec<StoredRecord> = Vec::new();
    let mut bytes = 0usize;
    let mut cur = offset;
    while cur < hwm && (bytes < max_bytes || out.is_empty()) {
        let snap = {
            let l = log.read();
            let i = l.segments.partition_point(|s| s.base_offset <= cur);
            if i == 0 {
                if out.is_empty() {
                    return Err(l.out_of_range(cur));
                }
                break;
            }
            let s = &l.segments[i - 1];
            if cur >= s.next_offset {
                break;
            }
            Snapshot {
                file: s.file.clone(),
                path: s.path.clone(),
                pos: s.position_for(cur),
                end: s.size,
                next_offset: s.next_offset,
            }
        };
        match read_segment(&snap, &mut cur, &mut bytes, max_bytes, &mut out) {
            Ok(()) => {}
            // serve what precedes a bad batch; the next fetch, starting at it, gets the error
            Err(_) if !out.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(FetchResult {
        records: out,
        high_watermark: hwm,
        log_start_offset: start,
    })
}

fn read_segment(
    snap: &Snapshot,
    cur: &mut u64,
    bytes: &mut usize,
    max_bytes: usize,
    out: &mut Vec<StoredRecord>,
) -> Result<()> {
    {
        let mut w = Window::new(&snap.file, snap.end);
        let mut pos = snap.pos;
        while pos < snap.end && *cur < snap.next_offset && (*bytes < max_bytes || out.is_empty()) {
            let c = *cur;
            let hb = w
                .get(pos, HEADER_LEN)
                .map_err(io_err(&snap.path))?
                .ok_or_else(|| {
                    corrupt(&snap.path, pos, c, "batch header runs past the segment end")
                })?;
            let h =
                batch::parse_header(&hb).map_err(|e| corrupt(&snap.path, pos, c, e.to_string()))?;
            if h.next_offset() <= c {
                pos += h.len as u64;
                continue;
            }
            if h.base_offset > c {
                return Err(corrupt(
                    &snap.path,
                    pos,
                    c,
                    "offsets are not dense (gap before this batch)",
                ));
            }
            let b = w
                .get(pos, h.len as usize)
                .map_err(io_err(&snap.path))?
                .ok_or_else(|| corrupt(&snap.path, pos, c, "batch runs past the segment end"))?;
            if !batch::check_crc(&h, &b) {
                return Err(corrupt(&snap.path, pos, c, "crc mismatch"));
            }
            let n = out.len();
            if let Err(e) = batch::decode_records(&h, &b, c, out) {
                out.truncate(n);
                return Err(corrupt(&snap.path, pos, c, e.to_string()));
            }
            *bytes += h.len as usize;
            *cur = h.next_offset();
            pos += h.len as u64;
        }
        if *cur < snap.next_offset && pos >= snap.end {
            return Err(corrupt(
                &snap.path,
                pos,
                *cur,
                "segment ends before its last offset",
            ));
        }
    }
    Ok(())
}

/// The earliest offset whose record timestamp is `>= ts`, or `None` when there is none.
pub(crate) fn offset_for_time(log: &RwLock<PartitionLog>, ts: i64) -> Result<Option<u64>> {
    let snap = {
        let l = log.read();
        let Some(s) = l.segments.iter().find(|s| s.size > 0 && s.max_ts >= ts) else {
            return Ok(None);
        };
        Snapshot {
            file: s.file.clone(),
            path: s.path.clone(),
            pos: s.position_for_time(ts),
            end: s.size,
            next_offset: s.next_offset,
        }
    };
    let mut w = Window::new(&snap.file, snap.end);
    let mut pos = snap.pos;
    while pos < snap.end {
        let hb = w
            .get(pos, HEADER_LEN)
            .map_err(io_err(&snap.path))?
            .ok_or_else(|| corrupt(&snap.path, pos, 0, "batch header runs past the segment end"))?;
        let h = batch::parse_header(&hb).map_err(|e| corrupt(&snap.path, pos, 0, e.to_string()))?;
        if h.max_ts >= ts {
            let b = w
                .get(pos, h.len as usize)
                .map_err(io_err(&snap.path))?
                .ok_or_else(|| {
                    corrupt(
                        &snap.path,
                        pos,
                        h.base_offset,
                        "batch runs past the segment end",
                    )
                })?;
            if !batch::check_crc(&h, &b) {
                return Err(corrupt(&snap.path, pos, h.base_offset, "crc mismatch"));
            }
            let mut recs = Vec::new();
            batch::decode_records(&h, &b, 0, &mut recs)
                .map_err(|e| corrupt(&snap.path, pos, h.base_offset, e.to_string()))?;
            return Ok(recs.iter().find(|r| r.timestamp_ms >= ts).map(|r| r.offset));
        }
        pos += h.len as u64;
    }
    let _ = snap.next_offset;
    Ok(None)
}

/// Closes the active segment (fsync) and opens a new one at the current end.
///
/// The closed segment's index files are written and fsynced by a background thread, off the
/// append path: writing them took the writer thread away from appends for milliseconds at every
/// roll. They are not needed for durability or reads (the in-memory indexes serve reads), and a
/// crash before they are complete leaves them missing or failing their CRC, which the next open
/// detects and rebuilds from the segment itself. [`PartitionLog::finish_index_jobs`] waits
/// for them (the writer does so when it stops; retention does so before deleting files).
pub(crate) fn roll(log: &RwLock<PartitionLog>, now_ms: i64) -> Result<()> {
    let (dir, next, files) = {
        let l = log.read();
        let a = l.active();
        if a.size == 0 {
            return Ok(());
        }
        a.file.sync_all().map_err(io_err(&a.path))?;
        (l.dir.clone(), a.next_offset, a.index_files())
    };
    let path = dir.join(segment_name(next, "log"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // a leftover file of that name can only hold unacknowledged bytes
    file.set_len(0).map_err(io_err(&path))?;
    sync_dir(&dir)?;
    let job = std::thread::Builder::new()
        .name("bongsu-index".into())
        .spawn(move || {
            // a failure leaves an index the next open rebuilds; appends are unaffected
            let _ = files.write();
        });
    let mut l = log.write();
    l.index_jobs.retain(|j| !j.is_finished());
    // with no thread to spare the indexes are not written: the next open rebuilds them
    if let Ok(j) = job {
        l.index_jobs.push(j);
    }
    l.segments.push(Segment::new(next, path, file, now_ms));
    Ok(())
}

/// Deletes whole closed segments by `retention.ms` and `retention.bytes`. Returns the number of
/// segments deleted.
pub(crate) fn apply_retention(log: &RwLock<PartitionLog>, now_ms: i64) -> Result<usize> {
    let mut jobs = Vec::new();
    let removed: Vec<Segment> = {
        let mut l = log.write();
        let cfg = l.cfg.clone();
        let mut n = 0usize;
        let closed = l.segments.len() - 1;
        if cfg.retention_ms >= 0 {
            while n < closed && l.segments[n].max_ts < now_ms.saturating_sub(cfg.retention_ms) {
                n += 1;
            }
        }
        if cfg.retention_bytes >= 0 {
            let mut total: u64 = l.segments[n..].iter().map(|s| s.size).sum();
            while n < closed && total > cfg.retention_bytes as u64 {
                total -= l.segments[n].size;
                n += 1;
            }
        }
        let removed: Vec<Segment> = l.segments.drain(..n).collect();
        if !removed.is_empty() {
            jobs = std::mem::take(&mut l.index_jobs);
        }
        removed
    };
    // an index file written after its segment is deleted would be left behind
    for j in jobs {
        let _ = j.join();
    }
    let count = removed.len();
    if count > 0 {
        let dir = removed[0].path.parent().map(Path::to_path_buf);
        for s in removed {
            let (ip, tp) = s.index_paths();
            fs::remove_file(&s.path).map_err(io_err(&s.path))?;
            let _ = fs::remove_file(ip);
            let _ = fs::remove_file(tp);
        }
        if let Some(d) = dir {
            sync_dir(&d)?;
        }
    }
    Ok(count)
}
