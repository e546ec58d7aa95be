//! Compaction: off the ingest path, a stream's small chunks are merged into large ones and
//! recompressed at a higher zstd level.
//!
//! Ingest compresses 1 MiB chunks at zstd level 1, token filter only, to keep appends fast.
//! Compaction takes the oldest segments not yet compacted (up to [`GROUP_TEXT_BYTES`] of line
//! text, at least one), merges each stream's chunks of them in time order into chunks of
//! [`CHUNK_TEXT_BYTES`] of text, compresses those at level [`LEVEL`] (token filters rebuilt,
//! substring filters built), and writes one compacted segment in place of the inputs.
//!
//! It runs in three steps so a server can do the heavy middle one without holding the store's
//! lock: [`LogStore::plan_compaction`] (`&self`, cheap), [`CompactionPlan::run`] (reads the
//! inputs through its own file handles, writes `compact-<first input>-<pid>-<run>.seg.tmp`, fsynced) and
//! [`LogStore::install_compaction`] (`&mut self`: renames the file to the next segment number,
//! fsyncs the directory, writes the checkpoint listing it instead of the inputs, then deletes
//! the inputs). A crash at any point loses nothing: before the checkpoint the new file is an
//! orphan and the inputs are live; after it the inputs are orphans; open deletes orphans.
//! [`LogStore::compact`] runs the three steps in a row (`maintain` calls it).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bongsu_model::{Labels, LogEntry};

use crate::checkpoint::Checkpoint;
use crate::chunk::{self, ChunkMeta, DecodedChunk, Decompressor, EncodedChunk};
use crate::error::{corrupt, io_err, Error, Result};
use crate::segment::{self, Segment, FLAG_COMPACTED};
use crate::store::{ChunkRef, LogStore};

/// zstd level of compacted chunks.
pub(crate) const LEVEL: i32 = 9;
/// Line text per compacted chunk (the last chunk of a stream may be smaller).
pub(crate) const CHUNK_TEXT_BYTES: usize = 4 << 20;
/// Most line text one compaction step takes (at least one segment is taken).
pub(crate) const GROUP_TEXT_BYTES: u64 = 256 << 20;
/// Segments are merged only while their newest entries lie within this of the first one's, so
/// retention by time (whole segments) stays about as fine-grained.
pub(crate) const GROUP_SPAN_NS: i64 = 3600 * 1_000_000_000;

/// Where a compaction may stop in tests, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The new segment is written and renamed; the checkpoint still lists the inputs.
    Renamed,
    /// The checkpoint lists the new segment; the inputs are not deleted yet.
    Checkpointed,
}

struct Input {
    seq: u64,
    path: PathBuf,
    file: File,
}

/// A chunk of an input: (input index, offset, len, meta).
type InputChunk = (usize, u64, u32, ChunkMeta);

/// A compaction step's inputs, taken from the store; run it with [`CompactionPlan::run`].
pub struct CompactionPlan {
    dir: PathBuf,
    inputs: Vec<Input>,
    /// Per stream, its chunks in the inputs: (input index, offset, len, meta).
    streams: Vec<(Labels, Vec<InputChunk>)>,
}

impl std::fmt::Debug for CompactionPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompactionPlan")
            .field(
                "inputs",
                &self.inputs.iter().map(|i| i.seq).collect::<Vec<_>>(),
            )
            .field("streams", &self.streams.len())
            .finish()
    }
}

/// A written compacted segment waiting for [`LogStore::install_compaction`].
#[derive(Debug)]
pub struct Compacted {
    inputs: Vec<u64>,
    tmp: PathBuf,
}

impl LogStore {
    /// The oldest segments not yet compacted, up to 256 MiB of line text (at least one) whose
    /// newest entries lie within an hour of each other, or `None` when every segment is
    /// compacted.
    pub fn plan_compaction(&self) -> Result<Option<CompactionPlan>> {
        let mut picked: Vec<u64> = Vec::new();
        let mut text = 0u64;
        let mut first_max_ts = None;
        for (&seq, seg) in &self.segments {
            if seg.compacted {
                continue;
            }
            let first = *first_max_ts.get_or_insert(seg.max_ts);
            if seg.max_ts.abs_diff(first) > GROUP_SPAN_NS as u64 {
                break;
            }
            let t: u64 = self
                .streams
                .iter()
                .flat_map(|s| s.chunks.iter())
                .filter(|c| c.seg == seq)
                .map(|c| c.meta.line_bytes)
                .sum();
            if !picked.is_empty() && text + t > GROUP_TEXT_BYTES {
                break;
            }
            picked.push(seq);
            text += t;
        }
        if picked.is_empty() {
            return Ok(None);
        }
        let mut inputs = Vec::with_capacity(picked.len());
        for &seq in &picked {
            if let Some(seg) = self.segments.get(&seq) {
                inputs.push(Input {
                    seq,
                    path: seg.path.clone(),
                    file: seg.try_clone_file()?,
                });
            }
        }
        let mut streams = Vec::new();
        for s in &self.streams {
            let mut cs: Vec<InputChunk> = s
                .chunks
                .iter()
                .filter_map(|c| {
                    let i = picked.iter().position(|&p| p == c.seg)?;
                    Some((i, c.offset, c.len, c.meta.clone()))
                })
                .collect();
            if cs.is_empty() {
                continue;
            }
            // Input order, then file order: arrival order for equal timestamps.
            cs.sort_by_key(|c| (c.0, c.1));
            streams.push((s.labels.clone(), cs));
        }
        Ok(Some(CompactionPlan {
            dir: self.dir.clone(),
            inputs,
            streams,
        }))
    }

    /// Installs a compacted segment: renames it to the next segment number, writes the
    /// checkpoint listing it instead of its inputs, deletes the inputs. Returns false (and
    /// deletes the file) when an input is gone meanwhile (retention).
    pub fn install_compaction(&mut self, done: Compacted) -> Result<bool> {
        self.install_with(done, &mut |_| Ok(()))
    }

    pub(crate) fn install_with(
        &mut self,
        done: Compacted,
        fault: &mut dyn FnMut(Step) -> Result<()>,
    ) -> Result<bool> {
        if !done.inputs.iter().all(|s| self.segments.contains_key(s)) {
            std::fs::remove_file(&done.tmp).map_err(io_err(&done.tmp))?;
            return Ok(false);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.dir.join(segment::file_name(seq));
        std::fs::rename(&done.tmp, &path).map_err(io_err(&path))?;
        segment::sync_dir(&self.dir)?;
        fault(Step::Renamed)?;
        let (seg, listed) = Segment::open(&path)?;
        let cp = Checkpoint {
            next_seq: self.next_seq,
            segments: self
                .segments
                .keys()
                .copied()
                .filter(|s| !done.inputs.contains(s))
                .chain(std::iter::once(seq))
                .collect(),
            applied: self.durable.clone(),
        };
        cp.store(&self.dir)?;
        // From here the new segment is live: the store's view follows before any fault.
        for s in &mut self.streams {
            s.chunks.retain(|c| !done.inputs.contains(&c.seg));
        }
        for c in listed {
            let Some(&id) = self.by_labels.get(&c.stream) else {
                return Err(corrupt(&path, "compacted segment names an unknown stream"));
            };
            self.streams[id].chunks.push(ChunkRef {
                seg: seq,
                offset: c.offset,
                len: c.len,
                meta: c.meta,
            });
        }
        for s in &mut self.streams {
            s.chunks.sort_by_key(|c| c.meta.min_ts);
        }
        let mut old = Vec::new();
        for s in &done.inputs {
            if let Some(g) = self.segments.remove(s) {
                old.push(g.path);
            }
        }
        self.segments.insert(seq, seg);
        fault(Step::Checkpointed)?;
        for p in old {
            std::fs::remove_file(&p).map_err(io_err(&p))?;
        }
        Ok(true)
    }

    /// One compaction step (plan, run, install); false when there was nothing to compact.
    pub fn compact(&mut self) -> Result<bool> {
        match self.plan_compaction()? {
            Some(plan) => {
                let done = plan.run()?;
                self.install_compaction(done)
            }
            None => Ok(false),
        }
    }
}

impl CompactionPlan {
    /// Merges and recompresses the inputs into a new segment file (not yet live). Needs no
    /// access to the store; blocking (file I/O, CPU-heavy).
    pub fn run(self) -> Result<Compacted> {
        let mut dctx = Decompressor::new()
            .map_err(|e| Error::Codec(format!("cannot create a zstd context: {e}")))?;
        let mut scratch = Vec::new();
        let mut dec = DecodedChunk::default();
        let mut out: Vec<(Labels, EncodedChunk)> = Vec::new();
        for (labels, chunks) in &self.streams {
            let mut entries: Vec<LogEntry> = Vec::new();
            let mut offsets: BTreeMap<u32, u64> = BTreeMap::new();
            for (i, offset, len, meta) in chunks {
                let input = &self.inputs[*i];
                scratch.resize(*len as usize, 0);
                input
                    .file
                    .read_exact_at(&mut scratch, *offset)
                    .map_err(io_err(&input.path))?;
                chunk::decode_with(&mut dctx, &scratch, &mut dec).map_err(|what| {
                    corrupt(&input.path, format!("chunk at byte {offset}: {what}"))
                })?;
                for j in 0..dec.ts.len() {
                    let line = std::str::from_utf8(dec.line(j)).map_err(|_| {
                        corrupt(
                            &input.path,
                            format!("chunk at byte {offset}: a line is not UTF-8"),
                        )
                    })?;
                    entries.push(LogEntry {
                        timestamp_ns: dec.ts[j],
                        line: line.to_owned(),
                        structured_metadata: dec.metadata(j).to_vec(),
                    });
                }
                for &(p, o) in &meta.offsets {
                    let e = offsets.entry(p).or_insert(o);
                    *e = (*e).max(o);
                }
            }
            entries.sort_by_key(|e| e.timestamp_ns);
            let mut start = 0;
            while start < entries.len() {
                let mut end = start;
                let mut text = 0;
                while end < entries.len() && (end == start || text < CHUNK_TEXT_BYTES) {
                    text += entries[end].line.len();
                    end += 1;
                }
                let mut enc = chunk::encode_with_level(&entries[start..end], LEVEL, true);
                enc.meta.offsets = offsets.iter().map(|(&p, &o)| (p, o)).collect();
                out.push((labels.clone(), enc));
                start = end;
            }
        }
        let first = self.inputs.first().map_or(0, |i| i.seq);
        let list: Vec<(&Labels, &EncodedChunk)> = out.iter().map(|(l, c)| (l, c)).collect();
        let (buf, _) = segment::build(first, FLAG_COMPACTED, &list);
        // Unique per run: two plans may share their first input.
        static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.dir.join(format!(
            "compact-{first}-{}-{run}.seg.tmp",
            std::process::id()
        ));
        segment::write_durably(&tmp, &buf)?;
        Ok(Compacted {
            inputs: self.inputs.iter().map(|i| i.seq).collect(),
            tmp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Direction, ResultData};
    use bongsu_model::Label;

    fn labels(app: &str) -> Labels {
        Labels::from_pairs([("app", app)]).unwrap()
    }

    fn cfg() -> Config {
        Config {
            chunk_target_bytes: 2048,
            compaction: false,
            ..Config::default()
        }
    }

    /// Every entry the store returns, with its stream, in a canonical order.
    fn everything(st: &LogStore) -> Vec<(String, i64, String)> {
        let r = st
            .query_range(
                r#"{app=~".+"}"#,
                0,
                i64::MAX,
                1,
                1_000_000,
                Direction::Forward,
            )
            .unwrap();
        let ResultData::Streams(s) = r.data else {
            panic!("not streams")
        };
        let mut v: Vec<_> = s
            .into_iter()
            .flat_map(|s| {
                let l = s.labels.to_string();
                s.entries
                    .into_iter()
                    .map(move |(t, line)| (l.clone(), t, line))
            })
            .collect();
        v.sort();
        v
    }

    fn hits(st: &LogStore, q: &str) -> Vec<(i64, String)> {
        let r = st
            .query_range(q, 0, i64::MAX, 1, 1_000_000, Direction::Forward)
            .unwrap();
        let ResultData::Streams(s) = r.data else {
            panic!("not streams")
        };
        let mut v: Vec<_> = s.into_iter().flat_map(|s| s.entries).collect();
        v.sort();
        v
    }

    /// Three flushes (three segments) of two streams, overlapping in time, with metadata.
    fn fill(st: &mut LogStore, from: u64) -> u64 {
        let mut off = from;
        for round in 0..3i64 {
            for app in ["a", "b"] {
                let entries: Vec<LogEntry> = (0..300i64)
                    .map(|i| {
                        let ts = 1_000 + i * 10 + round * 7 + i64::from(app == "b");
                        let mut e = LogEntry::new(
                            ts,
                            format!(
                                "{app} round={round} i={i} id={:016x}-{:04x} ok",
                                (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                                i % 7
                            ),
                        );
                        if i % 50 == 0 {
                            e.structured_metadata = vec![Label::new("trace", format!("t{i}"))];
                        }
                        e
                    })
                    .collect();
                st.append(0, off, &labels(app), &entries).unwrap();
                off += 1;
            }
            st.flush().unwrap();
        }
        off
    }

    #[test]
    fn compaction_keeps_every_query_answer_and_merges_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = LogStore::open(dir.path(), cfg()).unwrap();
        fill(&mut st, 0);
        let before = everything(&st);
        let needle = format!("{:016x}", 42u64.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let queries = [
            format!(r#"{{app="a"}} |= "{needle}""#),
            r#"{app=~"a|b"} |~ "round=1 i=2[0-9] " != "i=25""#.to_owned(),
            r#"{app="b"} | trace="t50""#.to_owned(),
        ];
        let answers: Vec<_> = queries.iter().map(|q| hits(&st, q)).collect();
        assert!(answers.iter().all(|a| !a.is_empty()));
        let chunks_before = st.stats().chunks;
        assert_eq!(st.stats().segments, 3);

        assert!(st.compact().unwrap());
        assert!(!st.compact().unwrap(), "everything is compacted");
        assert_eq!(st.stats().segments, 1);
        assert!(chunks_before >= 6, "{chunks_before}");
        assert_eq!(
            st.stats().chunks,
            2,
            "one chunk per stream: {:?}",
            st.stats()
        );
        assert_eq!(everything(&st), before);
        for (q, a) in queries.iter().zip(&answers) {
            assert_eq!(&hits(&st, q), a, "{q}");
        }
        let applied = st.applied_offsets();
        drop(st);
        let st = LogStore::open(dir.path(), cfg()).unwrap();
        assert_eq!(everything(&st), before);
        assert_eq!(st.applied_offsets(), applied);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2, "one segment and the checkpoint");
    }

    #[test]
    fn replays_after_compaction_are_still_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = LogStore::open(dir.path(), cfg()).unwrap();
        let next = fill(&mut st, 0);
        st.compact().unwrap();
        let before = everything(&st);
        drop(st);
        let mut st = LogStore::open(dir.path(), cfg()).unwrap();
        // Replaying every record applies nothing twice.
        for off in 0..next {
            let app = if off % 2 == 0 { "a" } else { "b" };
            let applied = st
                .append(0, off, &labels(app), &[LogEntry::new(5_000, "dup")])
                .unwrap();
            assert!(!applied, "offset {off} applied twice");
        }
        assert_eq!(everything(&st), before);
    }

    #[test]
    fn a_crash_at_any_step_of_compaction_loses_nothing() {
        for crash in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let mut st = LogStore::open(dir.path(), cfg()).unwrap();
            fill(&mut st, 0);
            let before = everything(&st);
            let plan = st.plan_compaction().unwrap().unwrap();
            let done = plan.run().unwrap();
            let res = match crash {
                // Crash after the new file is written, before install.
                0 => Ok(false),
                1 => st.install_with(done, &mut |s| {
                    if s == Step::Renamed {
                        Err(Error::Codec("injected crash".into()))
                    } else {
                        Ok(())
                    }
                }),
                2 => st.install_with(done, &mut |s| {
                    if s == Step::Checkpointed {
                        Err(Error::Codec("injected crash".into()))
                    } else {
                        Ok(())
                    }
                }),
                _ => st.install_compaction(done),
            };
            assert_eq!(
                res.is_err(),
                crash == 1 || crash == 2,
                "crash point {crash}"
            );
            // The process dies here: reopen from disk only.
            drop(st);
            let mut st = LogStore::open(dir.path(), cfg()).unwrap();
            assert_eq!(everything(&st), before, "crash point {crash}");
            let segs = st.stats().segments;
            assert_eq!(segs, if crash >= 2 { 1 } else { 3 }, "crash point {crash}");
            let leftover: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tmp"))
                .collect();
            assert!(leftover.is_empty(), "{leftover:?}");
            while st.compact().unwrap() {}
            assert_eq!(everything(&st), before, "crash point {crash}");
        }
    }

    #[test]
    fn a_plan_whose_input_is_gone_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = LogStore::open(dir.path(), cfg()).unwrap();
        fill(&mut st, 0);
        let done = st.plan_compaction().unwrap().unwrap().run().unwrap();
        // Another compaction (standing in for retention) removes the inputs meanwhile.
        assert!(st.compact().unwrap());
        let before = everything(&st);
        assert!(!st.install_compaction(done).unwrap());
        assert_eq!(everything(&st), before);
        assert_eq!(st.stats().segments, 1);
    }
}
