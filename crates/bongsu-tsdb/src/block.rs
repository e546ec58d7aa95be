//! Immutable on-disk blocks: `meta`, `index` and `data` files in one directory.
//! Byte layouts are documented in docs/formats/tsdb.md.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bongsu_model::Labels;

use crate::codec::{put_uvarint, put_varint, seal, sync_dir, unseal, write_file_synced, Cursor};
use crate::index::{MemIndex, SymbolTable};
use crate::rollup::{Resolution, RollupPoint};
use crate::{Error, Result};

const META_MAGIC: &[u8; 4] = b"BTMT";
const INDEX_MAGIC: &[u8; 4] = b"BTIX";
const DATA_MAGIC: &[u8; 4] = b"BTDA";
const VERSION: u16 = 1;
const ROLLUP_COLS: usize = 10;

pub(crate) const META_FILE: &str = "meta";
pub(crate) const INDEX_FILE: &str = "index";
pub(crate) const DATA_FILE: &str = "data";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockKind {
    Raw,
    Rollup(Resolution),
}

impl BlockKind {
    fn code(self) -> u8 {
        match self {
            BlockKind::Raw => 0,
            BlockKind::Rollup(r) => r.code(),
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(BlockKind::Raw),
            1 => Some(BlockKind::Rollup(Resolution::FiveMinutes)),
            2 => Some(BlockKind::Rollup(Resolution::OneHour)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockMeta {
    pub(crate) seq: u64,
    pub(crate) kind: BlockKind,
    pub(crate) level: u8,
    /// The aligned time window the block belongs to: `[range_start, range_end)`.
    pub(crate) range_start: i64,
    pub(crate) range_end: i64,
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) num_series: u64,
    /// Samples (raw) or points (rollup).
    pub(crate) num_samples: u64,
    /// Blocks this one replaces; they are deleted if still present on open.
    pub(crate) parents: Vec<u64>,
}

impl BlockMeta {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(80);
        b.extend_from_slice(META_MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.push(self.kind.code());
        b.push(self.level);
        for v in [
            self.seq,
            self.range_start as u64,
            self.range_end as u64,
            self.min_t as u64,
            self.max_t as u64,
            self.num_series,
            self.num_samples,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&(self.parents.len() as u32).to_le_bytes());
        for p in &self.parents {
            b.extend_from_slice(&p.to_le_bytes());
        }
        seal(&mut b);
        b
    }

    fn decode(buf: &[u8], path: &Path) -> Result<Self> {
        let body = unseal(buf, path, "meta")?;
        let bad = || Error::corrupt(path, "meta is malformed");
        let mut c = Cursor::new(body);
        if c.bytes(4).ok_or_else(bad)? != META_MAGIC {
            return Err(Error::corrupt(
                path,
                "bad magic: not a tsdb block meta file",
            ));
        }
        check_version(c.u16().ok_or_else(bad)?, path)?;
        let kind = BlockKind::from_code(c.u8().ok_or_else(bad)?).ok_or_else(bad)?;
        let level = c.u8().ok_or_else(bad)?;
        let mut f = || c.u64().ok_or_else(bad);
        let (seq, rs, re, mn, mx, ns, nsa) = (f()?, f()?, f()?, f()?, f()?, f()?, f()?);
        let np = c.u32().ok_or_else(bad)? as usize;
        if np > c.remaining() / 8 {
            return Err(bad());
        }
        let parents = (0..np)
            .map(|_| c.u64().ok_or_else(bad))
            .collect::<Result<_>>()?;
        Ok(Self {
            seq,
            kind,
            level,
            range_start: rs as i64,
            range_end: re as i64,
            min_t: mn as i64,
            max_t: mx as i64,
            num_series: ns,
            num_samples: nsa,
            parents,
        })
    }
}

fn check_version(v: u16, path: &Path) -> Result<()> {
    if v != VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_owned(),
            version: v,
        });
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub(crate) struct BlockSeries {
    pub(crate) pairs: Box<[(u32, u32)]>,
    offset: u64,
    len: u32,
    pub(crate) min_t: i64,
    pub(crate) max_t: i64,
    pub(crate) count: u32,
    /// 0: the record holds its own timestamps; k > 0: the timestamps are those of
    /// series `id - k` (series scraped together share one timestamp column).
    ts_ref: u32,
}

/// Decoded shared timestamp columns, keyed by the owning series id.
pub(crate) type TsCache = std::collections::HashMap<u32, std::sync::Arc<Vec<i64>>>;
const TS_CACHE_MAX: usize = 4096;
const SHARED_TS_MAX: usize = 1 << 16;

fn pco_err(e: impl std::fmt::Display) -> Error {
    Error::Compress(e.to_string())
}

fn compress_i64(v: &[i64]) -> Result<Vec<u8>> {
    pco::standalone::simpler_compress(v, pco::DEFAULT_COMPRESSION_LEVEL).map_err(pco_err)
}

/// Largest decimal exponent tried when storing floats as scaled integers.
const MAX_DECIMALS: u8 = 6;
const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// Mantissas when every value is exactly `m / 10^e` (bit for bit) with `|m| < 2^53`.
fn as_decimals(v: &[f64], e: u8) -> Option<Vec<i64>> {
    let scale = POW10[usize::from(e)];
    v.iter()
        .map(|&x| {
            let m = (x * scale).round();
            if !m.is_finite() || m.abs() >= 9_007_199_254_740_992.0 {
                return None;
            }
            let m = m as i64;
            ((m as f64 / scale).to_bits() == x.to_bits()).then_some(m)
        })
        .collect()
}

/// A float column: a mode byte, then pco bytes. Mode 0: the f64 values themselves.
/// Mode `1 + e`: i64 mantissas `m` with each value exactly `m / 10^e` — counters and
/// gauges exported with a few decimals compress far better as integers.
fn compress_f64(v: &[f64]) -> Result<Vec<u8>> {
    for e in 0..=MAX_DECIMALS {
        if let Some(m) = as_decimals(v, e) {
            let mut out = vec![1 + e];
            out.extend(compress_i64(&m)?);
            return Ok(out);
        }
    }
    let mut out = vec![0];
    out.extend(
        pco::standalone::simpler_compress(v, pco::DEFAULT_COMPRESSION_LEVEL).map_err(pco_err)?,
    );
    Ok(out)
}

/// Writes a block into `<blocks>/.tmp-<seq>` and renames it to its final name when done.
pub(crate) struct BlockWriter {
    tmp: PathBuf,
    dst: PathBuf,
    data: BufWriter<File>,
    data_path: PathBuf,
    off: u64,
    series: Vec<(Labels, BlockSeries)>,
    meta: BlockMeta,
    /// Compressed timestamp columns already written, by the series that owns them.
    shared_ts: std::collections::HashMap<Vec<u8>, u32>,
}

pub(crate) fn block_dir_name(seq: u64) -> String {
    format!("b-{seq:016x}")
}

impl BlockWriter {
    pub(crate) fn new(
        blocks_dir: &Path,
        seq: u64,
        kind: BlockKind,
        level: u8,
        range: (i64, i64),
        parents: Vec<u64>,
    ) -> Result<Self> {
        let tmp = blocks_dir.join(format!(".tmp-{seq:016x}"));
        let dst = blocks_dir.join(block_dir_name(seq));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let data_path = tmp.join(DATA_FILE);
        let f = File::create(&data_path).map_err(|e| Error::io(&data_path, e))?;
        let mut data = BufWriter::new(f);
        let mut head = Vec::new();
        head.extend_from_slice(DATA_MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&[0, 0]);
        data.write_all(&head)
            .map_err(|e| Error::io(&data_path, e))?;
        Ok(Self {
            tmp,
            dst,
            data,
            data_path,
            off: head.len() as u64,
            series: Vec::new(),
            meta: BlockMeta {
                seq,
                kind,
                level,
                range_start: range.0,
                range_end: range.1,
                min_t: i64::MAX,
                max_t: i64::MIN,
                num_series: 0,
                num_samples: 0,
                parents,
            },
            shared_ts: std::collections::HashMap::new(),
        })
    }

    fn add_record(
        &mut self,
        labels: &Labels,
        cols: &[Vec<u8>],
        (min_t, max_t): (i64, i64),
        count: usize,
        ts_ref: u32,
    ) -> Result<()> {
        let mut rec = Vec::with_capacity(cols.iter().map(|c| c.len() + 4).sum::<usize>() + 5);
        rec.push(cols.len() as u8);
        for c in cols {
            rec.extend_from_slice(&(c.len() as u32).to_le_bytes());
        }
        for c in cols {
            rec.extend_from_slice(c);
        }
        seal(&mut rec);
        self.data
            .write_all(&rec)
            .map_err(|e| Error::io(&self.data_path, e))?;
        self.series.push((
            labels.clone(),
            BlockSeries {
                pairs: Box::new([]),
                offset: self.off,
                len: rec.len() as u32,
                min_t,
                max_t,
                count: count as u32,
                ts_ref,
            },
        ));
        self.off += rec.len() as u64;
        self.meta.min_t = self.meta.min_t.min(min_t);
        self.meta.max_t = self.meta.max_t.max(max_t);
        self.meta.num_series += 1;
        self.meta.num_samples += count as u64;
        Ok(())
    }

    /// Adds one series' samples; series must come in ascending label order, samples in
    /// ascending time order without duplicates. Empty series are skipped.
    pub(crate) fn add_raw(&mut self, labels: &Labels, ts: &[i64], vals: &[f64]) -> Result<()> {
        debug_assert_eq!(self.meta.kind, BlockKind::Raw);
        debug_assert!(self.series.last().is_none_or(|(l, _)| l < labels));
        let (Some(&min_t), Some(&max_t)) = (ts.first(), ts.last()) else {
            return Ok(());
        };
        let id = self.series.len() as u32;
        let ts_col = compress_i64(ts)?;
        if let Some(&src) = self.shared_ts.get(&ts_col) {
            let cols = [compress_f64(vals)?];
            return self.add_record(labels, &cols, (min_t, max_t), ts.len(), id - src);
        }
        if self.shared_ts.len() < SHARED_TS_MAX {
            self.shared_ts.insert(ts_col.clone(), id);
        }
        let cols = [ts_col, compress_f64(vals)?];
        self.add_record(labels, &cols, (min_t, max_t), ts.len(), 0)
    }

    pub(crate) fn add_rollup(&mut self, labels: &Labels, pts: &[RollupPoint]) -> Result<()> {
        debug_assert!(self.series.last().is_none_or(|(l, _)| l < labels));
        let (Some(first), Some(last)) = (pts.first(), pts.last()) else {
            return Ok(());
        };
        let i = |f: fn(&RollupPoint) -> i64| compress_i64(&pts.iter().map(f).collect::<Vec<_>>());
        let fl = |f: fn(&RollupPoint) -> f64| compress_f64(&pts.iter().map(f).collect::<Vec<_>>());
        let cols = [
            i(|p| p.t)?,
            i(|p| p.count as i64)?,
            fl(|p| p.sum)?,
            fl(|p| p.min)?,
            fl(|p| p.max)?,
            fl(|p| p.first)?,
            fl(|p| p.last)?,
            i(|p| p.first_ts - p.t)?,
            i(|p| p.last_ts - p.t)?,
            fl(|p| p.increase)?,
        ];
        self.add_record(labels, &cols, (first.t, last.t), pts.len(), 0)
    }

    /// Writes index and meta, syncs everything and renames the block into place.
    pub(crate) fn finish(mut self) -> Result<Block> {
        self.data
            .flush()
            .map_err(|e| Error::io(&self.data_path, e))?;
        self.data
            .get_ref()
            .sync_all()
            .map_err(|e| Error::io(&self.data_path, e))?;
        let index = encode_index(&self.series);
        write_file_synced(&self.tmp.join(INDEX_FILE), &index)?;
        if self.meta.num_series == 0 {
            self.meta.min_t = self.meta.range_start;
            self.meta.max_t = self.meta.range_start;
        }
        write_file_synced(&self.tmp.join(META_FILE), &self.meta.encode())?;
        sync_dir(&self.tmp)?;
        std::fs::rename(&self.tmp, &self.dst).map_err(|e| Error::io(&self.dst, e))?;
        if let Some(parent) = self.dst.parent() {
            sync_dir(parent)?;
        }
        Block::open(&self.dst)
    }
}

fn encode_index(series: &[(Labels, BlockSeries)]) -> Vec<u8> {
    let mut strs = BTreeSet::new();
    for (l, _) in series {
        for p in l {
            strs.insert(p.name.as_str());
            strs.insert(p.value.as_str());
        }
    }
    let strs: Vec<&str> = strs.into_iter().collect();
    let sym = |s: &str| strs.binary_search(&s).unwrap_or(0) as u64;
    let mut b = Vec::new();
    b.extend_from_slice(INDEX_MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    // symbols section
    let mut sec = Vec::new();
    put_uvarint(&mut sec, strs.len() as u64);
    for s in &strs {
        put_uvarint(&mut sec, s.len() as u64);
        sec.extend_from_slice(s.as_bytes());
    }
    push_section(&mut b, sec);
    // series section
    let mut sec = Vec::new();
    put_uvarint(&mut sec, series.len() as u64);
    let mut prev_off = 0u64;
    for (l, s) in series {
        put_uvarint(&mut sec, l.len() as u64);
        for p in l {
            put_uvarint(&mut sec, sym(&p.name));
            put_uvarint(&mut sec, sym(&p.value));
        }
        put_uvarint(&mut sec, s.offset - prev_off);
        prev_off = s.offset;
        put_uvarint(&mut sec, u64::from(s.len));
        put_varint(&mut sec, s.min_t);
        put_uvarint(&mut sec, s.max_t.wrapping_sub(s.min_t) as u64);
        put_uvarint(&mut sec, u64::from(s.count));
        put_uvarint(&mut sec, u64::from(s.ts_ref));
    }
    push_section(&mut b, sec);
    b
}

fn push_section(b: &mut Vec<u8>, mut sec: Vec<u8>) {
    b.extend_from_slice(&(sec.len() as u32).to_le_bytes());
    seal(&mut sec);
    b.extend_from_slice(&sec);
}

fn read_section<'a>(c: &mut Cursor<'a>, path: &Path, what: &str) -> Result<&'a [u8]> {
    let bad = || Error::corrupt(path, format!("{what} section is truncated"));
    let len = c.u32().ok_or_else(bad)? as usize;
    let sec = c
        .bytes(len.checked_add(4).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    unseal(sec, path, what)
}

/// An open, immutable block. The index is held in memory; data is read on demand and
/// every record's checksum is verified before it is served.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) dir: PathBuf,
    pub(crate) meta: BlockMeta,
    pub(crate) syms: SymbolTable,
    pub(crate) series: Vec<BlockSeries>,
    pub(crate) index: MemIndex,
    data: File,
    data_path: PathBuf,
    data_len: u64,
}

impl Block {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let meta_path = dir.join(META_FILE);
        let buf = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let meta = BlockMeta::decode(&buf, &meta_path)?;
        let index_path = dir.join(INDEX_FILE);
        let buf = std::fs::read(&index_path).map_err(|e| Error::io(&index_path, e))?;
        let (syms, series) = decode_index(&buf, &index_path)?;
        if series.len() as u64 != meta.num_series {
            return Err(Error::corrupt(
                &meta_path,
                "series count disagrees with the index",
            ));
        }
        let mut index = MemIndex::default();
        for (i, s) in series.iter().enumerate() {
            index.add(i as u32, &s.pairs);
        }
        let data_path = dir.join(DATA_FILE);
        let data = File::open(&data_path).map_err(|e| Error::io(&data_path, e))?;
        let data_len = data.metadata().map_err(|e| Error::io(&data_path, e))?.len();
        let mut head = [0u8; 8];
        data.read_exact_at(&mut head, 0)
            .map_err(|_| Error::corrupt(&data_path, "data header is truncated"))?;
        if &head[..4] != DATA_MAGIC {
            return Err(Error::corrupt(
                &data_path,
                "bad magic: not a tsdb block data file",
            ));
        }
        check_version(u16::from_le_bytes([head[4], head[5]]), &data_path)?;
        Ok(Self {
            dir: dir.to_owned(),
            meta,
            syms,
            series,
            index,
            data,
            data_path,
            data_len,
        })
    }

    pub(crate) fn labels(&self, id: u32) -> Labels {
        self.series
            .get(id as usize)
            .map(|s| self.syms.labels(&s.pairs))
            .unwrap_or_default()
    }

    fn read_cols(&self, id: u32, want: usize) -> Result<Vec<Vec<u8>>> {
        let s = self
            .series
            .get(id as usize)
            .ok_or_else(|| Error::corrupt(&self.data_path, "series id out of range"))?;
        let end = s.offset.checked_add(u64::from(s.len));
        if end.is_none_or(|e| e > self.data_len) {
            return Err(Error::corrupt(
                &self.data_path,
                "record lies past the end of the file",
            ));
        }
        let mut rec = vec![0u8; s.len as usize];
        self.data
            .read_exact_at(&mut rec, s.offset)
            .map_err(|e| Error::io(&self.data_path, e))?;
        let body = unseal(&rec, &self.data_path, "series record")?;
        let bad = || Error::corrupt(&self.data_path, "series record is malformed");
        let mut c = Cursor::new(body);
        let n = usize::from(c.u8().ok_or_else(bad)?);
        if n != want {
            return Err(bad());
        }
        let lens = (0..n)
            .map(|_| c.u32().map(|l| l as usize).ok_or_else(bad))
            .collect::<Result<Vec<_>>>()?;
        lens.into_iter()
            .map(|l| c.bytes(l).map(<[u8]>::to_vec).ok_or_else(bad))
            .collect()
    }

    fn decode_f64(&self, col: &[u8], n: usize) -> Result<Vec<f64>> {
        match col.split_first() {
            Some((0, rest)) => self.decode_col::<f64>(rest, n),
            Some((&mode, rest)) if mode <= 1 + MAX_DECIMALS => {
                let scale = POW10[usize::from(mode - 1)];
                let m = self.decode_col::<i64>(rest, n)?;
                Ok(m.into_iter().map(|m| m as f64 / scale).collect())
            }
            _ => Err(Error::corrupt(&self.data_path, "unknown float column mode")),
        }
    }

    fn decode_col<T: pco::data_types::Number>(&self, col: &[u8], n: usize) -> Result<Vec<T>> {
        let v: Vec<T> = pco::standalone::simple_decompress(col)
            .map_err(|e| Error::corrupt(&self.data_path, format!("column does not decode: {e}")))?;
        if v.len() != n {
            return Err(Error::corrupt(
                &self.data_path,
                "column length disagrees with the index",
            ));
        }
        Ok(v)
    }

    /// The samples of local series `id`, in time order.
    #[cfg(test)]
    pub(crate) fn read_raw(&self, id: u32) -> Result<Vec<(i64, f64)>> {
        self.read_raw_cached(id, &mut TsCache::new())
    }

    /// Like `read_raw`, reusing timestamp columns shared between series through `cache`.
    pub(crate) fn read_raw_cached(&self, id: u32, cache: &mut TsCache) -> Result<Vec<(i64, f64)>> {
        let Some(entry) = self.series.get(id as usize) else {
            return Err(Error::corrupt(&self.data_path, "series id out of range"));
        };
        let n = entry.count as usize;
        let (ts, vs) = if entry.ts_ref == 0 {
            let cols = self.read_cols(id, 2)?;
            let ts: Vec<i64> = self.decode_col(&cols[0], n)?;
            (std::sync::Arc::new(ts), self.decode_f64(&cols[1], n)?)
        } else {
            // checked against the series table when the block was opened
            let src = id - entry.ts_ref;
            let ts = match cache.get(&src) {
                Some(ts) => ts.clone(),
                None => {
                    let cols = self.read_cols(src, 2)?;
                    let ts = std::sync::Arc::new(self.decode_col::<i64>(&cols[0], n)?);
                    if cache.len() >= TS_CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert(src, ts.clone());
                    ts
                }
            };
            let cols = self.read_cols(id, 1)?;
            (ts, self.decode_f64(&cols[0], n)?)
        };
        Ok(ts.iter().copied().zip(vs).collect())
    }

    pub(crate) fn read_rollup(&self, id: u32) -> Result<Vec<RollupPoint>> {
        let n = self.series.get(id as usize).map_or(0, |s| s.count as usize);
        let cols = self.read_cols(id, ROLLUP_COLS)?;
        let i = |k: usize| self.decode_col::<i64>(&cols[k], n);
        let f = |k: usize| self.decode_f64(&cols[k], n);
        let (t, count, sum, min, max, first, last, fts, lts, inc) = (
            i(0)?,
            i(1)?,
            f(2)?,
            f(3)?,
            f(4)?,
            f(5)?,
            f(6)?,
            i(7)?,
            i(8)?,
            f(9)?,
        );
        Ok((0..n)
            .map(|k| RollupPoint {
                t: t[k],
                count: count[k] as u64,
                sum: sum[k],
                min: min[k],
                max: max[k],
                first: first[k],
                last: last[k],
                first_ts: t[k].wrapping_add(fts[k]),
                last_ts: t[k].wrapping_add(lts[k]),
                increase: inc[k],
            })
            .collect())
    }

    /// Total size of the block's files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        [META_FILE, INDEX_FILE, DATA_FILE]
            .iter()
            .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn decode_index(buf: &[u8], path: &Path) -> Result<(SymbolTable, Vec<BlockSeries>)> {
    let bad = || Error::corrupt(path, "index is malformed");
    let mut c = Cursor::new(buf);
    if c.bytes(4).ok_or_else(bad)? != INDEX_MAGIC {
        return Err(Error::corrupt(
            path,
            "bad magic: not a tsdb block index file",
        ));
    }
    check_version(c.u16().ok_or_else(bad)?, path)?;
    c.u16().ok_or_else(bad)?;
    let sym_sec = read_section(&mut c, path, "symbols")?;
    let series_sec = read_section(&mut c, path, "series")?;
    let mut syms = SymbolTable::default();
    let mut s = Cursor::new(sym_sec);
    let n = s.uvarint().ok_or_else(bad)?;
    if n > sym_sec.len() as u64 {
        return Err(bad());
    }
    for _ in 0..n {
        let len = s.uvarint().ok_or_else(bad)? as usize;
        let bytes = s.bytes(len).ok_or_else(bad)?;
        let st = std::str::from_utf8(bytes).map_err(|_| bad())?;
        syms.intern(st);
    }
    if syms.len() as u64 != n {
        return Err(Error::corrupt(path, "duplicate symbols"));
    }
    let mut s = Cursor::new(series_sec);
    let n = s.uvarint().ok_or_else(bad)?;
    if n > series_sec.len() as u64 {
        return Err(bad());
    }
    let mut series = Vec::with_capacity(n as usize);
    let mut off = 0u64;
    for _ in 0..n {
        let nl = s.uvarint().ok_or_else(bad)?;
        if nl > s.remaining() as u64 {
            return Err(bad());
        }
        let mut pairs = Vec::with_capacity(nl as usize);
        for _ in 0..nl {
            let a = s.uvarint().ok_or_else(bad)?;
            let b = s.uvarint().ok_or_else(bad)?;
            if a >= syms.len() as u64 || b >= syms.len() as u64 {
                return Err(bad());
            }
            pairs.push((a as u32, b as u32));
        }
        off = off
            .checked_add(s.uvarint().ok_or_else(bad)?)
            .ok_or_else(bad)?;
        let len = u32::try_from(s.uvarint().ok_or_else(bad)?).map_err(|_| bad())?;
        let min_t = s.varint().ok_or_else(bad)?;
        let max_t = min_t.wrapping_add(s.uvarint().ok_or_else(bad)? as i64);
        let count = u32::try_from(s.uvarint().ok_or_else(bad)?).map_err(|_| bad())?;
        let ts_ref = u32::try_from(s.uvarint().ok_or_else(bad)?).map_err(|_| bad())?;
        let id = series.len() as u32;
        if ts_ref > 0 {
            let src: Option<&BlockSeries> = id
                .checked_sub(ts_ref)
                .and_then(|src| series.get(src as usize));
            if src.is_none_or(|s| s.ts_ref != 0 || s.count != count) {
                return Err(Error::corrupt(
                    path,
                    "shared timestamp reference is invalid",
                ));
            }
        }
        series.push(BlockSeries {
            pairs: pairs.into_boxed_slice(),
            offset: off,
            len,
            min_t,
            max_t,
            count,
            ts_ref,
        });
    }
    if s.pos() != series_sec.len() {
        return Err(bad());
    }
    Ok((syms, series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn labels(i: usize) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", &format!("{i:04}"))]).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn raw_block_round_trip(series in proptest::collection::vec(
            proptest::collection::btree_map(-1_000_000i64..1_000_000, prop_oneof![
                any::<u64>(), Just(STALE_NAN_BITS), Just(f64::NAN.to_bits()),
                Just(f64::NEG_INFINITY.to_bits()), (0u32..100).prop_map(|x| f64::from(x).to_bits())], 0..50), 0..6)) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = BlockWriter::new(dir.path(), 7, BlockKind::Raw, 0, (-1_000_000, 1_000_000), vec![3]).unwrap();
            for (i, s) in series.iter().enumerate() {
                let ts: Vec<i64> = s.keys().copied().collect();
                let vs: Vec<f64> = s.values().map(|&b| f64::from_bits(b)).collect();
                w.add_raw(&labels(i), &ts, &vs).unwrap();
            }
            let b = w.finish().unwrap();
            let b = Block::open(&b.dir).unwrap();
            prop_assert_eq!(b.meta.parents.clone(), vec![3]);
            let nonempty: Vec<usize> = (0..series.len()).filter(|&i| !series[i].is_empty()).collect();
            prop_assert_eq!(b.series.len(), nonempty.len());
            for (id, &i) in nonempty.iter().enumerate() {
                prop_assert_eq!(b.labels(id as u32), labels(i));
                let got: Vec<(i64, u64)> = b.read_raw(id as u32).unwrap().into_iter().map(|(t, v)| (t, v.to_bits())).collect();
                let want: Vec<(i64, u64)> = series[i].iter().map(|(&t, &v)| (t, v)).collect();
                prop_assert_eq!(got, want);
            }
        }

        #[test]
        fn arbitrary_index_and_meta_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let p = Path::new("x");
            let _ = decode_index(&bytes, p);
            let _ = BlockMeta::decode(&bytes, p);
            let mut sealed = bytes.clone();
            seal(&mut sealed);
            let _ = BlockMeta::decode(&sealed, p);
        }
    }

    #[test]
    fn series_scraped_together_share_one_timestamp_column() {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            BlockWriter::new(dir.path(), 1, BlockKind::Raw, 0, (0, 1_000_000), vec![]).unwrap();
        let ts: Vec<i64> = (0..500).map(|i| i * 15_000 + i % 3).collect();
        for i in 0..4 {
            let vs: Vec<f64> = (0..500).map(|k| (k * i) as f64).collect();
            w.add_raw(&labels(i), &ts, &vs).unwrap();
        }
        w.add_raw(&labels(9), &ts[..10], &[1.0; 10]).unwrap();
        let b = w.finish().unwrap();
        let refs: Vec<u32> = b.series.iter().map(|s| s.ts_ref).collect();
        assert_eq!(refs, [0, 1, 2, 3, 0]);
        let mut cache = TsCache::new();
        for i in 0..4u32 {
            let got = b.read_raw_cached(i, &mut cache).unwrap();
            let want: Vec<(i64, f64)> = ts
                .iter()
                .enumerate()
                .map(|(k, &t)| (t, (k as u32 * i) as f64))
                .collect();
            assert_eq!(got, want);
            assert_eq!(b.read_raw(i).unwrap(), want);
        }
        assert_eq!(b.read_raw(4).unwrap().len(), 10);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn float_columns_round_trip_bit_exactly(v in proptest::collection::vec(prop_oneof![
            any::<f64>(), (-100_000i64..100_000).prop_map(|m| m as f64 / 100.0),
            (0u32..1000).prop_map(f64::from), Just(-0.0), Just(f64::from_bits(STALE_NAN_BITS))], 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = BlockWriter::new(dir.path(), 1, BlockKind::Raw, 0, (0, 1000), vec![]).unwrap();
            let ts: Vec<i64> = (0..v.len() as i64).collect();
            w.add_raw(&labels(0), &ts, &v).unwrap();
            let b = w.finish().unwrap();
            let got: Vec<u64> = b.read_raw(0).unwrap().iter().map(|s| s.1.to_bits()).collect();
            prop_assert_eq!(got, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn decimal_values_are_stored_as_integers() {
        let v: Vec<f64> = (0..100)
            .map(|i| f64::from(i * 7) / 100.0 + 1234.5)
            .collect();
        assert_eq!(compress_f64(&v).unwrap()[0], 3);
        assert_eq!(compress_f64(&[1.0, 2.0]).unwrap()[0], 1);
        assert_eq!(compress_f64(&[0.1 + 0.2]).unwrap()[0], 0);
        assert_eq!(compress_f64(&[-0.0]).unwrap()[0], 0);
    }

    #[test]
    fn rollup_block_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let samples: Vec<(i64, f64)> = (0..1000).map(|i| (i * 15_000, (i % 97) as f64)).collect();
        let pts = crate::rollup::rollup(&samples, Resolution::FiveMinutes);
        let mut w = BlockWriter::new(
            dir.path(),
            1,
            BlockKind::Rollup(Resolution::FiveMinutes),
            1,
            (0, 86_400_000),
            vec![],
        )
        .unwrap();
        w.add_rollup(&labels(0), &pts).unwrap();
        let b = w.finish().unwrap();
        assert_eq!(b.meta.kind, BlockKind::Rollup(Resolution::FiveMinutes));
        assert_eq!(b.read_rollup(0).unwrap(), pts);
    }

    #[test]
    fn flipped_data_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BlockWriter::new(dir.path(), 1, BlockKind::Raw, 0, (0, 100), vec![]).unwrap();
        w.add_raw(&labels(0), &[1, 2, 3], &[1.0, 2.0, 3.0]).unwrap();
        let b = w.finish().unwrap();
        let data = b.dir.join(DATA_FILE);
        let mut bytes = std::fs::read(&data).unwrap();
        bytes[12] ^= 0x40;
        std::fs::write(&data, bytes).unwrap();
        let b = Block::open(&b.dir).unwrap();
        let err = b.read_raw(0).unwrap_err().to_string();
        assert!(
            err.contains("checksum") && err.contains(&data.display().to_string()),
            "{err}"
        );
    }
}
