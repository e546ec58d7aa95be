//! The log tailer: files by glob, poll-based, following rename-and-create and
//! copy-truncate rotation, with per-file checkpoints so a restart resumes exactly.
//!
//! Identity of a file is its (device, inode) plus a CRC-32C fingerprint of its first
//! bytes (which catches inode reuse and in-place truncation). Each tracked file has a read
//! offset (bytes turned into lines) and a committed offset (bytes whose lines were returned
//! by [`Tailer::poll`]); only the committed offset is checkpointed, so a multi-line event
//! still being assembled is re-read after a restart instead of being lost.

mod checkpoint;
mod glob;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bongsu_model::{Labels, LogEntry, LogStream};
use regex::Regex;

use crate::clock::Clock;
use crate::config::{LogSourceConfig, ReadFrom, TailerConfig};
use crate::metrics::Metrics;
use crate::{Error, Result};

use checkpoint::CheckpointEntry;
use glob::Glob;

/// How long a file that left the globs (rotated away or deleted) keeps being read after
/// its last new data, for writers that have not reopened yet.
const ROTATE_WAIT_NS: i64 = 5_000_000_000;
const READ_CHUNK: usize = 256 * 1024;

struct Source {
    globs: Vec<Glob>,
    exclude: Vec<Glob>,
    labels: Labels,
    start: Option<Regex>,
    flush_timeout_ns: i64,
    max_lines: usize,
    max_line_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u32,
    crc: u32,
}

struct Pending {
    text: String,
    lines: usize,
    start_offset: u64,
    first_ns: i64,
    last_ns: i64,
}

struct Tracked {
    source: usize,
    labels: Labels,
    path: PathBuf,
    dev: u64,
    inode: u64,
    file: Arc<File>,
    /// Bytes before this offset have been split into lines.
    offset: u64,
    /// Bytes before this offset belong to lines already returned.
    committed: u64,
    fingerprint: Fingerprint,
    discarding: bool,
    pending: Option<Pending>,
    /// The path no longer leads to this file; set when it left the globs.
    gone_since_ns: Option<i64>,
    last_data_ns: i64,
}

/// Counters the tailer keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailerStats {
    pub lines: u64,
    pub bytes: u64,
    pub truncated_lines: u64,
    pub rotations: u64,
    pub read_errors: u64,
}

/// Follows log files; see the module documentation.
pub struct Tailer {
    config: TailerConfig,
    sources: Vec<Source>,
    tracked: Vec<Tracked>,
    /// Resume points from the checkpoint file, by (device, inode), until their file is seen.
    resume: HashMap<(u64, u64), CheckpointEntry>,
    /// Start offsets for files known to be copies of already-read content.
    known_offsets: HashMap<(u64, u64), u64>,
    first_scan: bool,
    clock: Arc<dyn Clock>,
    stats: TailerStats,
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("files", &self.tracked.len())
            .field("stats", &self.stats)
            .finish()
    }
}

fn crc_prefix(file: &File, len: u32) -> std::io::Result<Option<u32>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        let n = file.read_at(&mut buf[got..], got as u64)?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    Ok(Some(crc32c::crc32c(&buf)))
}

fn fingerprint(file: &File, size: u64, want: u32) -> std::io::Result<Fingerprint> {
    let len = size.min(u64::from(want)) as u32;
    let crc = crc_prefix(file, len)?.unwrap_or(0);
    Ok(Fingerprint { len, crc })
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    true
}

impl Tailer {
    /// Builds a tailer for `sources`, resuming from the checkpoint file if one exists.
    pub fn new(
        config: TailerConfig,
        sources: &[LogSourceConfig],
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let mut built = Vec::new();
        for s in sources {
            let globs = s
                .paths
                .iter()
                .map(|p| Glob::new(p))
                .collect::<Result<Vec<_>>>()?;
            let exclude = s
                .exclude
                .iter()
                .map(|p| {
                    // A bare pattern like `*.gz` applies to files in each glob's directory.
                    if p.starts_with('/') {
                        Glob::new(p).map(|g| vec![g])
                    } else {
                        globs
                            .iter()
                            .map(|g| {
                                let dir = Path::new(g.pattern()).parent().unwrap_or(Path::new("/"));
                                Glob::new(&dir.join(p).to_string_lossy())
                            })
                            .collect()
                    }
                })
                .collect::<Result<Vec<Vec<_>>>>()?
                .into_iter()
                .flatten()
                .collect();
            let start = match &s.multiline {
                Some(m) => Some(Regex::new(&m.start_pattern).map_err(|source| Error::Regex {
                    field: "logs.multiline.start_pattern",
                    pattern: m.start_pattern.clone(),
                    source,
                })?),
                None => None,
            };
            built.push(Source {
                globs,
                exclude,
                labels: Labels::from_pairs(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))?,
                start,
                flush_timeout_ns: s.multiline.as_ref().map_or(0, |m| {
                    i64::try_from(m.flush_timeout_ms).unwrap_or(i64::MAX / 2) * 1_000_000
                }),
                max_lines: s.multiline.as_ref().map_or(1, |m| m.max_lines.max(1)),
                max_line_bytes: s.max_line_bytes.max(16),
            });
        }
        let resume = checkpoint::load(&config.checkpoint_path)?
            .into_iter()
            .map(|e| ((e.dev, e.inode), e))
            .collect();
        Ok(Self {
            config,
            sources: built,
            tracked: Vec::new(),
            resume,
            known_offsets: HashMap::new(),
            first_scan: true,
            clock,
            stats: TailerStats::default(),
        })
    }

    pub fn stats(&self) -> TailerStats {
        self.stats
    }

    /// Files currently followed.
    pub fn files(&self) -> Vec<PathBuf> {
        self.tracked.iter().map(|t| t.path.clone()).collect()
    }

    /// The tailer's own counters as metrics.
    pub fn collect_metrics(&self, out: &mut Metrics) {
        let s = self.stats;
        out.counter(
            "bongsu_tailer_lines_total",
            "Log lines read by the tailer.",
            &[],
            s.lines as f64,
        );
        out.counter(
            "bongsu_tailer_bytes_total",
            "Log bytes read by the tailer.",
            &[],
            s.bytes as f64,
        );
        out.counter(
            "bongsu_tailer_truncated_lines_total",
            "Log lines cut to logs.max_line_bytes.",
            &[],
            s.truncated_lines as f64,
        );
        out.counter(
            "bongsu_tailer_rotations_total",
            "Log file rotations and truncations seen.",
            &[],
            s.rotations as f64,
        );
        out.counter(
            "bongsu_tailer_read_errors_total",
            "Errors reading log files.",
            &[],
            s.read_errors as f64,
        );
        out.gauge(
            "bongsu_tailer_files",
            "Log files followed.",
            &[],
            self.tracked.len() as f64,
        );
    }

    /// Persists the committed offset of every followed file. Call it only once the entries
    /// returned by earlier polls are safely handed on: a restart resumes right after them.
    pub fn checkpoint(&self) -> Result<()> {
        checkpoint::store(&self.config.checkpoint_path, &self.checkpoint_entries())
    }

    /// The checkpoint [`Tailer::checkpoint`] would write, as its file's bytes. The agent keeps
    /// it with each queued batch, so a restart resumes after exactly what was queued.
    pub fn checkpoint_bytes(&self) -> Vec<u8> {
        checkpoint::encode(&self.checkpoint_entries())
    }

    fn checkpoint_entries(&self) -> Vec<CheckpointEntry> {
        let mut entries: Vec<CheckpointEntry> = self
            .tracked
            .iter()
            .map(|t| CheckpointEntry {
                dev: t.dev,
                inode: t.inode,
                offset: t.committed,
                fingerprint_len: t.fingerprint.len,
                fingerprint_crc: t.fingerprint.crc,
                discarding: t.discarding && t.pending.is_none() && t.committed == t.offset,
                path: t.path.clone(),
            })
            .collect();
        // Resume points for files not seen yet stay until their file shows up or is gone.
        entries.extend(self.resume.values().cloned());
        entries
    }

    fn scan(&self) -> Vec<(usize, PathBuf, std::fs::Metadata)> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            for g in &s.globs {
                for p in g.expand() {
                    if s.exclude.iter().any(|x| x.matches(&p)) {
                        continue;
                    }
                    let Ok(m) = std::fs::metadata(&p) else {
                        continue;
                    };
                    if seen.insert((m.dev(), m.ino())) {
                        out.push((i, p, m));
                    }
                }
            }
        }
        out
    }

    /// One round: finds files, handles rotation, reads new complete lines, and flushes
    /// multi-line events whose timeout passed. Returns the entries in file order.
    pub fn poll(&mut self) -> Result<Vec<(Labels, LogEntry)>> {
        Ok(self
            .poll_streams()?
            .into_iter()
            .flat_map(|s| {
                let labels = s.labels;
                s.entries.into_iter().map(move |e| (labels.clone(), e))
            })
            .collect())
    }

    /// [`Tailer::poll`] with consecutive entries of one file grouped into one stream (the
    /// shipper's form: no label set per line).
    pub fn poll_streams(&mut self) -> Result<Vec<LogStream>> {
        let now = self.clock.now_ns();
        let mut out = Vec::new();
        let scanned = self.scan();
        let present: HashMap<(u64, u64), (usize, PathBuf, u64)> = scanned
            .iter()
            .map(|(i, p, m)| ((m.dev(), m.ino()), (*i, p.clone(), m.len())))
            .collect();

        // Files already followed: rotation and truncation.
        let mut tracked = std::mem::take(&mut self.tracked);
        let tracked_keys: HashSet<(u64, u64)> = tracked.iter().map(|t| (t.dev, t.inode)).collect();
        for t in &mut tracked {
            match present.get(&(t.dev, t.inode)) {
                Some((_, path, size)) => {
                    t.gone_since_ns = None;
                    let fp_ok = match crc_prefix(&t.file, t.fingerprint.len) {
                        Ok(Some(crc)) => crc == t.fingerprint.crc,
                        _ => false,
                    };
                    if *size < t.offset || !fp_ok {
                        // Still under its previous name, where the copy was taken from.
                        self.truncated(t, &tracked_keys, now, &mut out);
                    }
                    t.path = path.clone();
                }
                None => {
                    if t.gone_since_ns.is_none() {
                        t.gone_since_ns = Some(now);
                        self.stats.rotations += 1;
                    }
                }
            }
        }
        self.tracked = tracked;

        // New files.
        let followed: HashSet<(u64, u64)> = self.tracked.iter().map(|t| (t.dev, t.inode)).collect();
        for (source, path, meta) in scanned {
            let key = (meta.dev(), meta.ino());
            if followed.contains(&key) {
                continue;
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(_) => {
                    self.stats.read_errors += 1;
                    continue;
                }
            };
            let size = meta.len();
            let Ok(fp) = fingerprint(&file, size, self.config.fingerprint_bytes) else {
                self.stats.read_errors += 1;
                continue;
            };
            let mut start = 0;
            let mut discarding = false;
            let mut truncated_while_down = None;
            if let Some(cp) = self.resume.remove(&key) {
                let same = cp.fingerprint_len as u64 <= size
                    && crc_prefix(&file, cp.fingerprint_len).ok().flatten()
                        == Some(cp.fingerprint_crc);
                if same && cp.offset <= size {
                    start = cp.offset;
                    discarding = cp.discarding;
                } else {
                    truncated_while_down = Some(cp);
                }
            } else if let Some(off) = self.known_offsets.remove(&key) {
                start = off.min(size);
            } else if fp.len == self.config.fingerprint_bytes
                && self
                    .tracked
                    .iter()
                    .any(|t| t.fingerprint == fp && t.gone_since_ns.is_none())
            {
                // A fresh copy of a file being followed (copy-truncate with a glob that
                // also matches the copy): the original still holds, and will yield, all of it.
                start = size;
            } else if self.first_scan && self.config.read_from == ReadFrom::End {
                start = size;
            }
            let mut labels = self.sources[source].labels.clone();
            labels.set("filename", &path.to_string_lossy());
            let mut t = Tracked {
                source,
                labels,
                path,
                dev: key.0,
                inode: key.1,
                file: Arc::new(file),
                offset: start,
                committed: start,
                fingerprint: fp,
                discarding,
                pending: None,
                gone_since_ns: None,
                last_data_ns: now,
            };
            if let Some(cp) = truncated_while_down {
                // Copy-truncated while the agent was down: take the unread rest from the
                // copy as if we had been running, then read the file from its start.
                t.offset = cp.offset;
                t.committed = cp.offset;
                t.fingerprint = Fingerprint {
                    len: cp.fingerprint_len,
                    crc: cp.fingerprint_crc,
                };
                // Look for the copy beside the name the file had when it was checkpointed.
                let current = std::mem::replace(&mut t.path, cp.path.clone());
                self.truncated(&mut t, &followed, now, &mut out);
                t.path = current;
            }
            self.tracked.push(t);
        }
        if self.first_scan {
            self.find_rotated_while_down(&present, now);
        }
        if self.first_scan {
            // Resume points whose file is gone by the first scan will not be needed.
            self.resume.clear();
        }
        self.first_scan = false;

        // Read, flush timed-out events, retire idle rotated files.
        let mut tracked = std::mem::take(&mut self.tracked);
        for t in &mut tracked {
            let file = t.file.clone();
            match self.read_lines(t, &file, now, false, &mut out) {
                Ok(n) if n > 0 => t.last_data_ns = now,
                Ok(_) => {}
                Err(_) => self.stats.read_errors += 1,
            }
            if t.fingerprint.len < self.config.fingerprint_bytes && t.gone_since_ns.is_none() {
                if let Ok(size) = t.file.metadata().map(|m| m.len()) {
                    if let Ok(fp) = fingerprint(&t.file, size, self.config.fingerprint_bytes) {
                        t.fingerprint = fp;
                    }
                }
            }
            let src = &self.sources[t.source];
            if let Some(p) = &t.pending {
                if now - p.last_ns >= src.flush_timeout_ns {
                    self.flush_pending(t, &mut out);
                    t.committed = t.offset;
                }
            }
        }
        let mut keep = Vec::with_capacity(tracked.len());
        for mut t in tracked {
            let idle = t.gone_since_ns.is_some() && now - t.last_data_ns >= ROTATE_WAIT_NS;
            if idle {
                // The writer moved on: whatever is left, even without a newline, is final.
                let file = t.file.clone();
                let _ = self.read_lines(&mut t, &file, now, true, &mut out);
                self.flush_pending(&mut t, &mut out);
                continue;
            }
            keep.push(t);
        }
        self.tracked = keep;
        Ok(out)
    }

    /// The file was truncated in place (copy-truncate) or rewritten: read what was left
    /// unread from the rotated copy if one sits beside it, then start over at offset 0.
    fn truncated(
        &mut self,
        t: &mut Tracked,
        followed: &HashSet<(u64, u64)>,
        now: i64,
        out: &mut Vec<LogStream>,
    ) {
        self.stats.rotations += 1;
        if let Some(copy) = self.find_copy(t, followed) {
            while let Ok(n) = self.read_lines(t, &copy, now, true, &mut *out) {
                if n == 0 {
                    break;
                }
            }
            if let Ok(m) = copy.metadata() {
                self.known_offsets.insert((m.dev(), m.ino()), m.len());
            }
        }
        self.flush_pending(t, out);
        t.offset = 0;
        t.committed = 0;
        t.discarding = false;
        let size = t.file.metadata().map(|m| m.len()).unwrap_or(0);
        t.fingerprint = fingerprint(&t.file, size, self.config.fingerprint_bytes)
            .unwrap_or(Fingerprint { len: 0, crc: 0 });
    }

    /// Files from the checkpoint that left the globs while the agent was down (rotated by
    /// rename): found beside their old path by (device, inode), drained like any rotated file.
    fn find_rotated_while_down(
        &mut self,
        present: &HashMap<(u64, u64), (usize, PathBuf, u64)>,
        now: i64,
    ) {
        let missing: Vec<CheckpointEntry> = self
            .resume
            .values()
            .filter(|e| !present.contains_key(&(e.dev, e.inode)))
            .cloned()
            .collect();
        for e in missing {
            let Some(source) = self
                .sources
                .iter()
                .position(|s| s.globs.iter().any(|g| g.matches(&e.path)))
            else {
                continue;
            };
            let Some(dir) = e.path.parent() else { continue };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let found = entries.flatten().find_map(|d| {
                let m = std::fs::metadata(d.path()).ok()?;
                (m.is_file() && m.dev() == e.dev && m.ino() == e.inode).then(|| d.path())
            });
            let Some(path) = found else { continue };
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let same =
                crc_prefix(&file, e.fingerprint_len).ok().flatten() == Some(e.fingerprint_crc);
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if !same || e.offset > size {
                continue;
            }
            let mut labels = self.sources[source].labels.clone();
            labels.set("filename", &e.path.to_string_lossy());
            // Keep the name the glob matched: a later restart looks for the file there again.
            self.tracked.push(Tracked {
                source,
                labels,
                path: e.path.clone(),
                dev: e.dev,
                inode: e.inode,
                file: Arc::new(file),
                offset: e.offset,
                committed: e.offset,
                fingerprint: Fingerprint {
                    len: e.fingerprint_len,
                    crc: e.fingerprint_crc,
                },
                discarding: e.discarding,
                pending: None,
                gone_since_ns: Some(now),
                last_data_ns: now,
            });
        }
    }

    /// A sibling named `<name>…` with the same fingerprint holding at least `offset` bytes.
    fn find_copy(&self, t: &Tracked, followed: &HashSet<(u64, u64)>) -> Option<File> {
        if t.fingerprint.len == 0 {
            return None;
        }
        let dir = t.path.parent()?;
        let name = t.path.file_name()?.to_string_lossy().into_owned();
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n != name && n.starts_with(&name) && !n.ends_with(".gz")
            })
            .map(|e| e.path())
            .collect();
        candidates.sort();
        candidates.into_iter().find_map(|p| {
            let f = File::open(&p).ok()?;
            let m = f.metadata().ok()?;
            if !m.is_file() || m.len() < t.offset || followed.contains(&(m.dev(), m.ino())) {
                return None;
            }
            let crc = crc_prefix(&f, t.fingerprint.len).ok()??;
            (crc == t.fingerprint.crc).then_some(f)
        })
    }

    /// Reads complete lines of `file` from `t.offset` (bounded per poll). With `final_read`,
    /// a last line without a newline is taken too. Returns the bytes consumed.
    fn read_lines(
        &mut self,
        t: &mut Tracked,
        file: &File,
        now: i64,
        final_read: bool,
        out: &mut Vec<LogStream>,
    ) -> std::io::Result<u64> {
        let max_line = self.sources[t.source].max_line_bytes;
        let mut budget = self.config.max_read_bytes_per_poll.max(1);
        let chunk = READ_CHUNK.min(budget);
        // Read straight after the unfinished line kept from the previous read; lines are
        // split in place (memchr) and handed on as slices, one copy per line into its entry.
        let mut carry: Vec<u8> = Vec::with_capacity(chunk);
        let start_offset = t.offset;
        let mut eof = false;
        while budget > 0 {
            let want = chunk.min(budget);
            let have = carry.len();
            carry.resize(have + want, 0);
            let n = match file.read_at(&mut carry[have..], t.offset + have as u64) {
                Ok(n) => n,
                Err(e) => {
                    carry.truncate(have);
                    return Err(e);
                }
            };
            carry.truncate(have + n);
            if n == 0 {
                eof = true;
                break;
            }
            budget -= n;
            let mut consumed = 0;
            // Only the new bytes can hold a newline the previous read did not see.
            for i in memchr::memchr_iter(b'\n', &carry[have..]) {
                let end = have + i;
                let line_start = t.offset + consumed as u64;
                let line_end = t.offset + end as u64 + 1;
                self.take_line(t, &carry[consumed..end], line_start, line_end, now, out);
                consumed = end + 1;
            }
            carry.drain(..consumed);
            t.offset += consumed as u64;
            if carry.len() > max_line {
                // An over-long line: emit its head now, skip the rest up to its newline.
                let line_start = t.offset;
                let end = t.offset + carry.len() as u64;
                let bytes = std::mem::take(&mut carry);
                self.take_line(t, &bytes, line_start, end, now, out);
                t.offset = end;
                t.discarding = true;
            }
        }
        if final_read && eof && !carry.is_empty() {
            let line_start = t.offset;
            let end = t.offset + carry.len() as u64;
            self.take_line(t, &carry, line_start, end, now, out);
            t.offset = end;
        }
        Ok(t.offset - start_offset)
    }

    /// One complete line (without its newline) that spans `[start, end)` of the file.
    fn take_line(
        &mut self,
        t: &mut Tracked,
        bytes: &[u8],
        start: u64,
        end: u64,
        now: i64,
        out: &mut Vec<LogStream>,
    ) {
        self.stats.bytes += end - start;
        if t.discarding {
            // The tail of a line whose head was already emitted.
            t.discarding = false;
            if t.pending.is_none() {
                t.committed = end;
            }
            return;
        }
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let src = &self.sources[t.source];
        let max = src.max_line_bytes;
        let head = &bytes[..bytes.len().min(max)];
        let mut text = match std::str::from_utf8(head) {
            Ok(valid) => valid.to_owned(),
            Err(_) => String::from_utf8_lossy(head).into_owned(),
        };
        cut(&mut text, max);
        if bytes.len() > max {
            self.stats.truncated_lines += 1;
        }
        self.stats.lines += 1;
        let Some(re) = &src.start else {
            push_entry(out, &t.labels, LogEntry::new(now, text));
            t.committed = end;
            return;
        };
        let starts = re.is_match(&text);
        let max_lines = src.max_lines;
        match &mut t.pending {
            Some(p) if !starts => {
                if p.text.len() < max {
                    p.text.push('\n');
                    p.text.push_str(&text);
                    cut(&mut p.text, max);
                }
                p.lines += 1;
                p.last_ns = now;
            }
            _ => {
                self.flush_pending(t, out);
                t.pending = Some(Pending {
                    text,
                    lines: 1,
                    start_offset: start,
                    first_ns: now,
                    last_ns: now,
                });
            }
        }
        if t.pending.as_ref().is_some_and(|p| p.lines >= max_lines) {
            self.flush_pending(t, out);
            t.committed = end;
        } else if let Some(p) = &t.pending {
            t.committed = p.start_offset;
        }
    }

    fn flush_pending(&mut self, t: &mut Tracked, out: &mut Vec<LogStream>) {
        if let Some(p) = t.pending.take() {
            push_entry(out, &t.labels, LogEntry::new(p.first_ns, p.text));
            t.committed = t.offset;
        }
    }
}

/// Appends `entry` to the last stream when it has `labels`, else starts a stream.
fn push_entry(out: &mut Vec<LogStream>, labels: &Labels, entry: LogEntry) {
    match out.last_mut() {
        Some(s) if s.labels == *labels => s.entries.push(entry),
        _ => out.push(LogStream {
            labels: labels.clone(),
            entries: vec![entry],
        }),
    }
}
