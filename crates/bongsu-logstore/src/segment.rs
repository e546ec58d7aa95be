//! Segment files: many chunks (of any streams) written by one flush, with an index footer.
//!
//! See `docs/formats/logstore.md` for the byte layout.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bongsu_model::{Label, Labels};

use crate::bloom::Bloom;
use crate::chunk::{ChunkMeta, EncodedChunk, CHUNK_HEADER_LEN};
use crate::error::{corrupt, io_err, Result};
use crate::ngrams::GramFilter;

const SEG_MAGIC: &[u8; 4] = b"BSEG";
/// Version 2 adds the substring filter to the index; version 1 segments still open (their
/// chunks have no substring filter).
const SEG_VERSION: u16 = 2;
const SEG_VERSION_1: u16 = 1;
const IDX_MAGIC: &[u8; 4] = b"BIDX";
const TRAILER_MAGIC: &[u8; 4] = b"BSGE";
const HEADER_LEN: u64 = 16;
const TRAILER_LEN: u64 = 24;
/// Largest index footer accepted; guards allocations on corrupt input.
const MAX_INDEX_LEN: u64 = 1 << 30;

/// One chunk as listed in a segment's index.
#[derive(Debug, Clone)]
pub(crate) struct SegmentChunk {
    pub(crate) stream: Labels,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) meta: ChunkMeta,
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    file: File,
    pub(crate) size: u64,
    /// Newest entry in the segment (retention by time).
    pub(crate) max_ts: i64,
    /// Written by compaction (header flag bit 0): not compacted again.
    pub(crate) compacted: bool,
}

/// Header flag: the segment was written by compaction.
pub(crate) const FLAG_COMPACTED: u16 = 1;

pub(crate) fn file_name(seq: u64) -> String {
    format!("{seq:020}.seg")
}

/// Parses `<seq>.seg`.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_suffix(".seg")?.parse().ok()
}

impl Segment {
    /// Writes chunks to `dir/<seq>.seg` durably (temp file, fsync, rename, fsync dir) and opens it.
    pub(crate) fn write(
        dir: &Path,
        seq: u64,
        chunks: &[(&Labels, &EncodedChunk)],
    ) -> Result<(Segment, Vec<SegmentChunk>)> {
        let path = dir.join(file_name(seq));
        let tmp = dir.join(format!("{}.tmp", file_name(seq)));
        let (buf, listed) = build(seq, 0, chunks);
        write_durably(&tmp, &buf)?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir)?;
        let file = File::open(&path).map_err(io_err(&path))?;
        let max_ts = newest(&listed);
        Ok((
            Segment {
                path,
                file,
                size: buf.len() as u64,
                max_ts,
                compacted: false,
            },
            listed,
        ))
    }

    /// Opens a segment and reads its index, verifying the footer's CRC-32C.
    pub(crate) fn open(path: &Path) -> Result<(Segment, Vec<SegmentChunk>)> {
        let file = File::open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        if size < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(path, "segment shorter than header and trailer"));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0).map_err(io_err(path))?;
        if &header[0..4] != SEG_MAGIC {
            return Err(corrupt(path, "bad segment magic"));
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if version != SEG_VERSION && version != SEG_VERSION_1 {
            return Err(corrupt(
                path,
                format!(
                    "unsupported segment version {version} (this build reads 1 and 2): \
                     run a newer bongsu or move the log store directory aside"
                ),
            ));
        }
        let mut trailer = [0u8; TRAILER_LEN as usize];
        file.read_exact_at(&mut trailer, size - TRAILER_LEN)
            .map_err(io_err(path))?;
        if &trailer[20..24] != TRAILER_MAGIC {
            return Err(corrupt(path, "bad segment trailer magic (torn write?)"));
        }
        let index_offset = le_u64(&trailer[0..8]);
        let index_len = le_u64(&trailer[8..16]);
        let crc = u32::from_le_bytes([trailer[16], trailer[17], trailer[18], trailer[19]]);
        if index_len > MAX_INDEX_LEN
            || index_offset < HEADER_LEN
            || index_offset.checked_add(index_len) != Some(size - TRAILER_LEN)
        {
            return Err(corrupt(path, "segment index location out of bounds"));
        }
        let mut idx = vec![0u8; index_len as usize];
        file.read_exact_at(&mut idx, index_offset)
            .map_err(io_err(path))?;
        if crc32c::crc32c(&idx) != crc {
            return Err(corrupt(path, "segment index checksum mismatch"));
        }
        let listed = parse_index(&idx, index_offset, version)
            .ok_or_else(|| corrupt(path, "segment index malformed"))?;
        let max_ts = newest(&listed);
        let flags = u16::from_le_bytes([header[6], header[7]]);
        Ok((
            Segment {
                path: path.to_owned(),
                file,
                size,
                max_ts,
                compacted: flags & FLAG_COMPACTED != 0,
            },
            listed,
        ))
    }

    /// Another handle on the segment's file (for reading without the store).
    pub(crate) fn try_clone_file(&self) -> Result<File> {
        self.file.try_clone().map_err(io_err(&self.path))
    }

    /// Reads a chunk's bytes.
    pub(crate) fn read_chunk(&self, offset: u64, len: u32, out: &mut Vec<u8>) -> Result<()> {
        if (len as usize) < CHUNK_HEADER_LEN || offset.saturating_add(u64::from(len)) > self.size {
            return Err(corrupt(&self.path, "chunk location out of bounds"));
        }
        out.resize(len as usize, 0);
        self.file
            .read_exact_at(out, offset)
            .map_err(io_err(&self.path))
    }
}

/// The bytes of a segment file holding `chunks`, and where each chunk lies in it.
pub(crate) fn build(
    seq: u64,
    flags: u16,
    chunks: &[(&Labels, &EncodedChunk)],
) -> (Vec<u8>, Vec<SegmentChunk>) {
    let mut buf = Vec::with_capacity(
        HEADER_LEN as usize
            + chunks
                .iter()
                .map(|(_, c)| c.bytes.len() + 64)
                .sum::<usize>(),
    );
    buf.extend_from_slice(SEG_MAGIC);
    buf.extend_from_slice(&SEG_VERSION.to_le_bytes());
    buf.extend_from_slice(&flags.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    // Stream table: each distinct label set once.
    let mut streams: Vec<&Labels> = Vec::new();
    let mut stream_idx = Vec::with_capacity(chunks.len());
    let mut listed = Vec::with_capacity(chunks.len());
    for (labels, c) in chunks {
        let idx = match streams.iter().position(|s| s == labels) {
            Some(i) => i,
            None => {
                streams.push(labels);
                streams.len() - 1
            }
        };
        stream_idx.push(idx as u32);
        listed.push(SegmentChunk {
            stream: (*labels).clone(),
            offset: buf.len() as u64,
            len: c.bytes.len() as u32,
            meta: c.meta.clone(),
        });
        buf.extend_from_slice(&c.bytes);
    }
    let index_offset = buf.len() as u64;
    buf.extend_from_slice(IDX_MAGIC);
    buf.extend_from_slice(&(streams.len() as u32).to_le_bytes());
    for s in &streams {
        buf.extend_from_slice(&(s.len() as u16).to_le_bytes());
        for l in s.iter() {
            buf.extend_from_slice(&(l.name.len() as u16).to_le_bytes());
            buf.extend_from_slice(l.name.as_bytes());
            buf.extend_from_slice(&(l.value.len() as u32).to_le_bytes());
            buf.extend_from_slice(l.value.as_bytes());
        }
    }
    buf.extend_from_slice(&(listed.len() as u32).to_le_bytes());
    for (c, &si) in listed.iter().zip(&stream_idx) {
        buf.extend_from_slice(&si.to_le_bytes());
        buf.extend_from_slice(&c.offset.to_le_bytes());
        buf.extend_from_slice(&c.len.to_le_bytes());
        buf.extend_from_slice(&c.meta.min_ts.to_le_bytes());
        buf.extend_from_slice(&c.meta.max_ts.to_le_bytes());
        buf.extend_from_slice(&c.meta.entries.to_le_bytes());
        buf.extend_from_slice(&c.meta.line_bytes.to_le_bytes());
        buf.extend_from_slice(&(c.meta.offsets.len() as u16).to_le_bytes());
        for (p, o) in &c.meta.offsets {
            buf.extend_from_slice(&p.to_le_bytes());
            buf.extend_from_slice(&o.to_le_bytes());
        }
        buf.extend_from_slice(&(c.meta.filter.encoded_len() as u32).to_le_bytes());
        c.meta.filter.encode(&mut buf);
        match &c.meta.grams {
            Some(g) => {
                buf.extend_from_slice(&(g.encoded_len() as u32).to_le_bytes());
                g.encode(&mut buf);
            }
            None => buf.extend_from_slice(&0u32.to_le_bytes()),
        }
    }
    let index_len = buf.len() as u64 - index_offset;
    let crc = crc32c::crc32c(&buf[index_offset as usize..]);
    buf.extend_from_slice(&index_offset.to_le_bytes());
    buf.extend_from_slice(&index_len.to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(TRAILER_MAGIC);

    (buf, listed)
}

/// Writes `buf` to `path` (created or truncated) and fsyncs it.
pub(crate) fn write_durably(path: &Path, buf: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(buf).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

fn newest(listed: &[SegmentChunk]) -> i64 {
    listed
        .iter()
        .map(|c| c.meta.max_ts)
        .max()
        .unwrap_or(i64::MIN)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(le_u64)
    }
    fn str(&mut self, n: usize) -> Option<String> {
        self.take(n)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    }
}

fn parse_index(idx: &[u8], index_offset: u64, version: u16) -> Option<Vec<SegmentChunk>> {
    let mut r = Reader { b: idx, pos: 0 };
    if r.take(4)? != IDX_MAGIC {
        return None;
    }
    let n_streams = r.u32()? as usize;
    if n_streams > idx.len() {
        return None;
    }
    let mut streams = Vec::with_capacity(n_streams);
    for _ in 0..n_streams {
        let n = r.u16()? as usize;
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let nl = r.u16()? as usize;
            let name = r.str(nl)?;
            let vl = r.u32()? as usize;
            let value = r.str(vl)?;
            labels.push(Label { name, value });
        }
        streams.push(Labels::new(labels).ok()?);
    }
    let n_chunks = r.u32()? as usize;
    if n_chunks > idx.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n_chunks);
    for _ in 0..n_chunks {
        let si = r.u32()? as usize;
        let offset = r.u64()?;
        let len = r.u32()?;
        let min_ts = r.u64()? as i64;
        let max_ts = r.u64()? as i64;
        let entries = r.u32()?;
        let line_bytes = r.u64()?;
        let n_off = r.u16()? as usize;
        let mut offsets = Vec::with_capacity(n_off);
        for _ in 0..n_off {
            offsets.push((r.u32()?, r.u64()?));
        }
        let flen = r.u32()? as usize;
        let filter = Bloom::decode(r.take(flen)?)?;
        let grams = if version >= SEG_VERSION {
            match r.u32()? as usize {
                0 => None,
                glen => Some(GramFilter::decode(r.take(glen)?)?),
            }
        } else {
            None
        };
        if offset < HEADER_LEN || offset.checked_add(u64::from(len))? > index_offset {
            return None;
        }
        out.push(SegmentChunk {
            stream: streams.get(si)?.clone(),
            offset,
            len,
            meta: ChunkMeta {
                min_ts,
                max_ts,
                entries,
                line_bytes,
                offsets,
                filter,
                grams,
            },
        });
    }
    if r.pos != idx.len() {
        return None;
    }
    Some(out)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}
