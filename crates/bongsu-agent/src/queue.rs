//! The agent's bounded on-disk queue of encoded batches (format in `docs/formats/agent.md`).
//!
//! Segment files `<first seq, 20 digits>.q` hold entries `[len][crc][seq][local len][local]
//! [batch]`; `queue.state` holds the epoch and the sequence lease (replaced atomically);
//! `queue.ack` holds the highest acknowledged sequence (rewritten in place, never fsynced: a
//! lost or torn ack only makes the shipper re-send batches the server drops as duplicates).
//!
//! Entries are written with plain `write` calls, so they survive the agent being killed
//! (SIGKILL) at any point: the kernel keeps what was written. A torn tail (a write cut short)
//! fails its CRC and is truncated on open. Segments are fsynced when they are closed.
//!
//! When the queue holds more than `max_bytes`, whole oldest segments are deleted and their
//! unacknowledged batches and bytes counted as dropped. The newest entry's `local` bytes (the
//! tailer checkpoint at the time of that batch) are kept across restarts: the agent resumes
//! its tailers from exactly what it queued.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

const SEGMENT_MAGIC: [u8; 4] = *b"BSAQ";
const STATE_MAGIC: [u8; 4] = *b"BSAS";
const QUEUE_VERSION: u16 = 1;
const SEGMENT_HEADER_LEN: u64 = 16;
/// `len` and `crc` before each entry's checked bytes.
const ENTRY_PREFIX_LEN: u64 = 8;
/// Sequence numbers reserved in `queue.state` at a time.
const SEQ_LEASE: u64 = 1 << 20;
const STATE_FILE: &str = "queue.state";
const ACK_FILE: &str = "queue.ack";

/// Sizes of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most bytes of segments kept; the oldest are dropped (and counted) beyond it.
    pub max_bytes: u64,
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_bytes: 256 << 20,
            segment_bytes: 16 << 20,
        }
    }
}

/// What the queue counted since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Unacknowledged batches deleted because the queue was full.
    pub dropped_batches: u64,
    /// Their bytes.
    pub dropped_bytes: u64,
    /// Bytes of torn or corrupt entries cut off when opening.
    pub truncated_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    offset: u64,
    /// Bytes after the 8-byte prefix.
    len: u32,
    local_len: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    size: u64,
    entries: Vec<Entry>,
}

/// One queued batch as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedBatch {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

/// The bounded on-disk queue. Blocking file I/O: use it from `spawn_blocking` or a thread.
#[derive(Debug)]
pub struct DiskQueue {
    dir: PathBuf,
    config: QueueConfig,
    epoch: u64,
    next_seq: u64,
    lease: u64,
    acked: u64,
    segments: VecDeque<Segment>,
    active: Option<File>,
    ack_file: File,
    latest_local: Option<Vec<u8>>,
    stats: QueueStats,
}

fn q_err(path: &Path, detail: impl Into<String>) -> Error {
    Error::Queue {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn new_epoch() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut seed = [0u8; 24];
    seed[..16].copy_from_slice(&now.to_le_bytes());
    seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    let e = xxhash_rust::xxh3::xxh3_64(&seed);
    e.max(1)
}

fn encode_state(epoch: u64, lease: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(&STATE_MAGIC);
    b.extend_from_slice(&QUEUE_VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&epoch.to_le_bytes());
    b.extend_from_slice(&lease.to_le_bytes());
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn decode_state(b: &[u8]) -> std::result::Result<(u64, u64), String> {
    if b.len() != 28 || b[..4] != STATE_MAGIC {
        return Err("not a queue state file".into());
    }
    if u16::from_le_bytes([b[4], b[5]]) != QUEUE_VERSION {
        return Err("unsupported queue state version".into());
    }
    if crc32c::crc32c(&b[..24]) != u32_at(b, 24) {
        return Err("checksum mismatch".into());
    }
    Ok((u64_at(b, 8), u64_at(b, 16)))
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.q"))
}

impl DiskQueue {
    /// Opens (creating) the queue in `dir`, recovering segments and truncating a torn tail.
    pub fn open(dir: &Path, config: QueueConfig) -> Result<DiskQueue> {
        if config.segment_bytes == 0 || config.segment_bytes.saturating_mul(2) > config.max_bytes {
            return Err(Error::Config(
                "agent queue: segment_bytes must be at least 1 and at most half of max_bytes"
                    .into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        let state_path = dir.join(STATE_FILE);
        let state = crate::state_file::load(&state_path, decode_state)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| Error::read(dir, e))? {
            let e = e.map_err(|e| Error::read(dir, e))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".q") {
                if let Ok(first) = stem.parse::<u64>() {
                    names.push((first, e.path()));
                }
            }
        }
        names.sort();
        let mut stats = QueueStats::default();
        let mut segments = VecDeque::new();
        let mut latest_local = None;
        let mut max_seq = 0u64;
        for (_, path) in names {
            let (seg, truncated, local) = recover_segment(&path, max_seq)?;
            stats.truncated_bytes += truncated;
            if let Some(l) = local {
                latest_local = Some(l);
            }
            if let Some(last) = seg.entries.last() {
                max_seq = max_seq.max(last.seq);
            }
            if seg.entries.is_empty() {
                std::fs::remove_file(&seg.path).map_err(|e| Error::write(&seg.path, e))?;
            } else {
                segments.push_back(seg);
            }
        }
        let (epoch, lease) = state.unwrap_or((new_epoch(), 1));
        let next_seq = lease.max(max_seq + 1);
        let lease = next_seq + SEQ_LEASE;
        crate::state_file::store(&state_path, &encode_state(epoch, lease))?;
        let ack_path = dir.join(ACK_FILE);
        let ack_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&ack_path)
            .map_err(|e| Error::write(&ack_path, e))?;
        let mut ack = [0u8; 12];
        let acked = match ack_file.read_exact_at(&mut ack, 0) {
            Ok(()) if crc32c::crc32c(&ack[..8]) == u32_at(&ack, 8) => u64_at(&ack, 0),
            // Missing, torn or corrupt: resend everything queued; the server drops duplicates.
            _ => 0,
        };
        let mut q = DiskQueue {
            dir: dir.to_path_buf(),
            config,
            epoch,
            next_seq,
            lease,
            acked,
            segments,
            active: None,
            ack_file,
            latest_local,
            stats,
        };
        if let Some(last) = q.segments.back() {
            let f = OpenOptions::new()
                .append(true)
                .open(&last.path)
                .map_err(|e| Error::write(&last.path, e))?;
            q.active = Some(f);
        }
        q.drop_acked_segments()?;
        Ok(q)
    }

    /// The queue's epoch: random, kept in `queue.state`; batches carry it with their sequence.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The newest entry's `local` bytes, if any entry was ever queued here.
    pub fn latest_local(&self) -> Option<&[u8]> {
        self.latest_local.as_deref()
    }

    /// The counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Unacknowledged batches queued.
    pub fn depth_batches(&self) -> u64 {
        self.segments
            .iter()
            .flat_map(|s| s.entries.iter())
            .filter(|e| e.seq > self.acked)
            .count() as u64
    }

    /// Bytes of segment files on disk (acknowledged entries of a live segment included).
    pub fn depth_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Queues a batch: `build` gets the batch's sequence number and returns its bytes; `local`
    /// is kept with it (see [`DiskQueue::latest_local`]). Returns the sequence number.
    pub fn push(
        &mut self,
        build: impl FnOnce(u64, u64) -> Result<Vec<u8>>,
        local: &[u8],
    ) -> Result<u64> {
        let seq = self.next_seq;
        let batch = build(self.epoch, seq)?;
        if seq + 1 >= self.lease {
            let lease = seq + SEQ_LEASE;
            crate::state_file::store(&self.dir.join(STATE_FILE), &encode_state(self.epoch, lease))?;
            self.lease = lease;
        }
        let need_new = match self.segments.back() {
            None => true,
            Some(s) => s.size >= self.config.segment_bytes,
        };
        if need_new {
            self.rotate(seq)?;
        }
        let body_len = 8 + 4 + local.len() + batch.len();
        let len = u32::try_from(body_len)
            .map_err(|_| Error::Batch("batch over 4 GiB: ship smaller batches".into()))?;
        let mut buf = Vec::with_capacity(8 + body_len);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&[0u8; 4]);
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&(local.len() as u32).to_le_bytes());
        buf.extend_from_slice(local);
        buf.extend_from_slice(&batch);
        let crc = crc32c::crc32c(&buf[8..]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let (Some(seg), Some(file)) = (self.segments.back_mut(), self.active.as_mut()) else {
            return Err(q_err(&self.dir, "no active segment after rotation"));
        };
        file.write_all(&buf)
            .map_err(|e| Error::write(&seg.path, e))?;
        seg.entries.push(Entry {
            seq,
            offset: seg.size,
            len,
            local_len: local.len() as u32,
        });
        seg.size += buf.len() as u64;
        self.next_seq = seq + 1;
        self.latest_local = Some(local.to_vec());
        self.enforce_limit()?;
        Ok(seq)
    }

    fn rotate(&mut self, first_seq: u64) -> Result<()> {
        if let Some(f) = self.active.take() {
            // Closed segments are fsynced; the active one relies on the kernel (SIGKILL-safe).
            if let Some(s) = self.segments.back() {
                f.sync_data().map_err(|e| Error::write(&s.path, e))?;
            }
        }
        let path = segment_path(&self.dir, first_seq);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::write(&path, e))?;
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(&SEGMENT_MAGIC);
        h.extend_from_slice(&QUEUE_VERSION.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes());
        h.extend_from_slice(&first_seq.to_le_bytes());
        f.write_all(&h).map_err(|e| Error::write(&path, e))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.segments.push_back(Segment {
            path,
            size: SEGMENT_HEADER_LEN,
            entries: Vec::new(),
        });
        self.active = Some(f);
        Ok(())
    }

    /// Deletes the oldest segments (never the active one) while over `max_bytes`, counting
    /// their unacknowledged batches as dropped.
    fn enforce_limit(&mut self) -> Result<()> {
        while self.depth_bytes() > self.config.max_bytes && self.segments.len() > 1 {
            let Some(s) = self.segments.pop_front() else {
                break;
            };
            for e in s.entries.iter().filter(|e| e.seq > self.acked) {
                self.stats.dropped_batches += 1;
                self.stats.dropped_bytes += ENTRY_PREFIX_LEN + u64::from(e.len);
            }
            std::fs::remove_file(&s.path).map_err(|e| Error::write(&s.path, e))?;
        }
        Ok(())
    }

    fn drop_acked_segments(&mut self) -> Result<()> {
        while self.segments.len() > 1 {
            let done = self.segments[0]
                .entries
                .last()
                .is_none_or(|e| e.seq <= self.acked);
            if !done {
                break;
            }
            if let Some(s) = self.segments.pop_front() {
                std::fs::remove_file(&s.path).map_err(|e| Error::write(&s.path, e))?;
            }
        }
        Ok(())
    }

    /// The oldest unacknowledged batch, if any.
    pub fn peek(&self) -> Result<Option<QueuedBatch>> {
        self.peek_after(0)
    }

    /// The first unacknowledged batch with a sequence number above `after` (what a pipelined
    /// shipper sends after `after`).
    pub fn peek_after(&self, after: u64) -> Result<Option<QueuedBatch>> {
        let after = after.max(self.acked);
        for s in &self.segments {
            let i = s.entries.partition_point(|e| e.seq <= after);
            let Some(e) = s.entries.get(i) else {
                continue;
            };
            let f = File::open(&s.path).map_err(|err| Error::read(&s.path, err))?;
            let skip = ENTRY_PREFIX_LEN + 12 + u64::from(e.local_len);
            let n = (u64::from(e.len) + ENTRY_PREFIX_LEN).saturating_sub(skip);
            let mut bytes = vec![0u8; n as usize];
            f.read_exact_at(&mut bytes, e.offset + skip)
                .map_err(|err| Error::read(&s.path, err))?;
            return Ok(Some(QueuedBatch { seq: e.seq, bytes }));
        }
        Ok(None)
    }

    /// Marks every batch up to `seq` acknowledged and deletes segments no longer needed.
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        if seq <= self.acked {
            return Ok(());
        }
        self.acked = seq;
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&seq.to_le_bytes());
        let crc = crc32c::crc32c(&b[..8]);
        b[8..].copy_from_slice(&crc.to_le_bytes());
        let path = self.dir.join(ACK_FILE);
        self.ack_file
            .write_all_at(&b, 0)
            .map_err(|e| Error::write(&path, e))?;
        self.drop_acked_segments()
    }

    /// Fsyncs the active segment (at shutdown).
    pub fn sync(&self) -> Result<()> {
        if let (Some(f), Some(s)) = (&self.active, self.segments.back()) {
            f.sync_data().map_err(|e| Error::write(&s.path, e))?;
        }
        Ok(())
    }
}

/// Reads a segment, truncating it at the first torn or corrupt entry. Returns the segment,
/// the bytes cut off and the last entry's `local` bytes.
fn recover_segment(path: &Path, after_seq: u64) -> Result<(Segment, u64, Option<Vec<u8>>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::read(path, e))?;
    let mut seg = Segment {
        path: path.to_path_buf(),
        size: SEGMENT_HEADER_LEN,
        entries: Vec::new(),
    };
    if bytes.len() < SEGMENT_HEADER_LEN as usize
        || bytes[..4] != SEGMENT_MAGIC
        || u16::from_le_bytes([bytes[4], bytes[5]]) != QUEUE_VERSION
    {
        // A segment whose header never made it to disk holds nothing.
        let truncated = bytes.len() as u64;
        seg.size = 0;
        return Ok((seg, truncated, None));
    }
    let mut pos = SEGMENT_HEADER_LEN as usize;
    let mut last_local = None;
    let mut prev = after_seq;
    while bytes.len() - pos >= ENTRY_PREFIX_LEN as usize {
        let len = u32_at(&bytes, pos) as usize;
        let crc = u32_at(&bytes, pos + 4);
        let start = pos + ENTRY_PREFIX_LEN as usize;
        if len < 12 || bytes.len() - start < len {
            break;
        }
        let body = &bytes[start..start + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let seq = u64_at(body, 0);
        let local_len = u32_at(body, 8) as usize;
        if local_len > len - 12 || seq <= prev {
            break;
        }
        prev = seq;
        seg.entries.push(Entry {
            seq,
            offset: pos as u64,
            len: len as u32,
            local_len: local_len as u32,
        });
        last_local = Some(body[12..12 + local_len].to_vec());
        pos = start + len;
    }
    let truncated = (bytes.len() - pos) as u64;
    if truncated > 0 {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::write(path, e))?;
        f.set_len(pos as u64).map_err(|e| Error::write(path, e))?;
        f.sync_all().map_err(|e| Error::write(path, e))?;
    }
    seg.size = pos as u64;
    Ok((seg, truncated, last_local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: u64, seg: u64) -> QueueConfig {
        QueueConfig {
            max_bytes: max,
            segment_bytes: seg,
        }
    }

    fn push(q: &mut DiskQueue, payload: &[u8], local: &[u8]) -> u64 {
        let p = payload.to_vec();
        q.push(move |_, _| Ok(p), local).unwrap()
    }

    #[test]
    fn fifo_ack_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), cfg(1 << 20, 1 << 10)).unwrap();
        let epoch = q.epoch();
        let a = push(&mut q, b"one", b"L1");
        let b = push(&mut q, b"two", b"L2");
        assert_eq!(b, a + 1);
        assert_eq!(q.peek().unwrap().unwrap().bytes, b"one");
        q.ack(a).unwrap();
        assert_eq!(q.peek().unwrap().unwrap().bytes, b"two");
        drop(q);
        let mut q = DiskQueue::open(dir.path(), cfg(1 << 20, 1 << 10)).unwrap();
        assert_eq!(q.epoch(), epoch);
        assert_eq!(q.latest_local(), Some(&b"L2"[..]));
        assert_eq!(
            q.peek().unwrap().unwrap(),
            QueuedBatch {
                seq: b,
                bytes: b"two".to_vec()
            }
        );
        q.ack(b).unwrap();
        assert_eq!(q.peek().unwrap(), None);
        // Sequence numbers keep growing across restarts.
        let c = push(&mut q, b"three", b"");
        assert!(c > b);
    }

    #[test]
    fn peek_after_walks_unacknowledged_batches_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: every few entries start a new one.
        let mut q = DiskQueue::open(dir.path(), cfg(1 << 20, 64)).unwrap();
        let seqs: Vec<u64> = (0..6)
            .map(|i| push(&mut q, format!("batch-{i}").as_bytes(), b""))
            .collect();
        let mut walked = Vec::new();
        let mut after = 0;
        while let Some(b) = q.peek_after(after).unwrap() {
            walked.push(String::from_utf8(b.bytes).unwrap());
            after = b.seq;
        }
        let all: Vec<String> = (0..6).map(|i| format!("batch-{i}")).collect();
        assert_eq!(walked, all);
        // Acknowledged batches are never handed out again, whatever `after` says.
        q.ack(seqs[2]).unwrap();
        assert_eq!(q.peek_after(0).unwrap().unwrap().seq, seqs[3]);
        assert_eq!(q.peek_after(seqs[1]).unwrap().unwrap().seq, seqs[3]);
        assert_eq!(q.peek_after(seqs[4]).unwrap().unwrap().seq, seqs[5]);
        assert_eq!(q.peek_after(seqs[5]).unwrap(), None);
    }

    #[test]
    fn a_torn_tail_is_cut_and_earlier_entries_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), cfg(1 << 20, 1 << 16)).unwrap();
        push(&mut q, b"keep", b"");
        push(&mut q, b"torn-away", b"");
        drop(q);
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "q"))
            .unwrap();
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();
        let mut q = DiskQueue::open(dir.path(), cfg(1 << 20, 1 << 16)).unwrap();
        assert!(q.stats().truncated_bytes > 0);
        assert_eq!(q.depth_batches(), 1);
        let first = q.peek().unwrap().unwrap();
        assert_eq!(first.bytes, b"keep");
        q.ack(first.seq).unwrap();
        assert_eq!(q.peek().unwrap(), None);
    }

    #[test]
    fn when_full_the_oldest_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), cfg(4096, 1024)).unwrap();
        let payload = vec![7u8; 200];
        let mut seqs = Vec::new();
        for _ in 0..100 {
            seqs.push(push(&mut q, &payload, b""));
        }
        let s = q.stats();
        assert!(s.dropped_batches > 0);
        assert!(q.depth_bytes() <= 4096 + 1024);
        // What is left is the newest batches, in order, and nothing is both dropped and kept.
        let mut kept = Vec::new();
        while let Some(b) = q.peek().unwrap() {
            kept.push(b.seq);
            q.ack(b.seq).unwrap();
        }
        assert_eq!(kept.len() as u64 + s.dropped_batches, 100);
        assert_eq!(kept, seqs[seqs.len() - kept.len()..].to_vec());
        assert_eq!(s.dropped_bytes, s.dropped_batches * (8 + 12 + 200));
    }

    #[test]
    fn acked_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DiskQueue::open(dir.path(), cfg(1 << 20, 512)).unwrap();
        let mut last = 0;
        for _ in 0..20 {
            last = push(&mut q, &[1u8; 100], b"");
        }
        let files = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "q")
                })
                .count()
        };
        assert!(files() > 3);
        q.ack(last).unwrap();
        assert_eq!(files(), 1);
        assert_eq!(q.depth_batches(), 0);
    }
}
