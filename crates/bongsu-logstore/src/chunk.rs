//! The chunk codec: a run of one stream's entries, sorted by time, zstd-compressed.
//!
//! See `docs/formats/logstore.md` for the byte layout.

use bongsu_model::Label;

use crate::bloom::Bloom;
use crate::head::Entries;
use crate::ngrams::GramFilter;
use crate::tokens;

pub(crate) const CHUNK_MAGIC: &[u8; 4] = b"BLCK";
pub(crate) const CHUNK_VERSION: u8 = 1;
pub(crate) const CODEC_ZSTD: u8 = 1;
pub(crate) const CHUNK_HEADER_LEN: usize = 40;
/// Largest uncompressed payload a chunk may declare; guards allocations on corrupt input.
pub(crate) const MAX_RAW_LEN: usize = 256 << 20;
const FLAG_METADATA: u8 = 1;
/// zstd level of chunks cut at ingest: level 1 costs least per byte, and on log text it
/// compresses as well as level 3 in 1 MiB chunks; compaction recompresses harder later.
const INGEST_LEVEL: i32 = 1;

/// What the index keeps about a chunk besides its bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChunkMeta {
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) entries: u32,
    /// Bytes of line text (without separators), for sizing and `bytes_over_time`-free stats.
    pub(crate) line_bytes: u64,
    /// Per partition, the next stream offset after the last record in this chunk (the
    /// stream's replay watermark once the chunk is in a segment). Set by the store.
    pub(crate) offsets: Vec<(u32, u64)>,
    pub(crate) filter: Bloom,
    /// The substring filter; `None` for chunks cut at ingest (compaction builds it) and
    /// chunks written before it existed.
    pub(crate) grams: Option<GramFilter>,
}

/// An encoded chunk and its index metadata.
#[derive(Debug)]
pub(crate) struct EncodedChunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) meta: ChunkMeta,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes entries that are already sorted by timestamp (stable for equal timestamps), as
/// ingest cuts them: zstd level 1, the token filter only. The substring filter (a quarter of
/// a cut's cost) is left to compaction, which rebuilds every filter anyway; until a chunk is
/// compacted, `|=` literals inside longer tokens read it instead of skipping it.
pub(crate) fn encode<E: Entries + ?Sized>(entries: &E) -> EncodedChunk {
    encode_with_level(entries, INGEST_LEVEL, false)
}

/// [`encode`] at zstd level `level`, with the substring filter if asked (compaction: a higher
/// level, every filter).
pub(crate) fn encode_with_level<E: Entries + ?Sized>(
    entries: &E,
    level: i32,
    substring_filter: bool,
) -> EncodedChunk {
    let n = entries.count();
    debug_assert!((1..n).all(|i| entries.timestamp_ns(i - 1) <= entries.timestamp_ns(i)));
    let has_meta = entries.has_metadata();
    let line_bytes: usize = (0..n).map(|i| entries.line(i).len()).sum();
    let mut meta_bytes = 0;
    if has_meta {
        for i in 0..n {
            meta_bytes += 2;
            entries.for_each_metadata(i, |name, value| meta_bytes += name.len() + value.len() + 4);
        }
    }
    // Sized once: growing it would copy everything written so far.
    let mut raw = Vec::with_capacity(line_bytes + meta_bytes + n * 14 + 16);
    raw.extend_from_slice(&(n as u32).to_le_bytes());
    raw.push(if has_meta { FLAG_METADATA } else { 0 });
    let mut prev = 0i64;
    for i in 0..n {
        let ts = entries.timestamp_ns(i);
        if i == 0 {
            raw.extend_from_slice(&ts.to_le_bytes());
        } else {
            put_varint(&mut raw, zigzag(ts.wrapping_sub(prev)));
        }
        prev = ts;
    }
    for i in 0..n {
        put_varint(&mut raw, entries.line(i).len() as u64);
    }
    if has_meta {
        for i in 0..n {
            put_varint(&mut raw, entries.metadata_len(i) as u64);
            entries.for_each_metadata(i, |name, value| {
                put_varint(&mut raw, name.len() as u64);
                raw.extend_from_slice(name.as_bytes());
                put_varint(&mut raw, value.len() as u64);
                raw.extend_from_slice(value.as_bytes());
            });
        }
    }
    let text_start = raw.len();
    for i in 0..n {
        raw.extend_from_slice(entries.line(i).as_bytes());
        raw.push(b'\n');
    }
    // Token filter over the line text (structured metadata is not indexed).
    let filter = tokens::filter(&raw[text_start..], n * 4);
    let grams = substring_filter.then(|| GramFilter::build(&raw[text_start..]));

    // zstd's bulk API on an in-memory buffer cannot fail for valid levels; an error would be
    // a broken invariant of the library, so fall back to storing nothing rather than panic.
    let compressed = zstd::bulk::compress(&raw, level).unwrap_or_default();
    let min_ts = if n == 0 { 0 } else { entries.timestamp_ns(0) };
    let max_ts = if n == 0 {
        0
    } else {
        entries.timestamp_ns(n - 1)
    };
    let mut bytes = Vec::with_capacity(CHUNK_HEADER_LEN + compressed.len());
    bytes.extend_from_slice(CHUNK_MAGIC);
    bytes.push(CHUNK_VERSION);
    bytes.push(CODEC_ZSTD);
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&min_ts.to_le_bytes());
    bytes.extend_from_slice(&max_ts.to_le_bytes());
    bytes.extend_from_slice(&(n as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes), &compressed);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&compressed);
    EncodedChunk {
        bytes,
        meta: ChunkMeta {
            min_ts,
            max_ts,
            entries: n as u32,
            line_bytes: line_bytes as u64,
            offsets: Vec::new(),
            filter,
            grams,
        },
    }
}

/// A decoded chunk: columns over one reused buffer, no allocation per line.
#[derive(Debug, Default)]
pub(crate) struct DecodedChunk {
    pub(crate) ts: Vec<i64>,
    /// `starts[i]..starts[i+1]-1` is line `i` within `text()` (each line ends with `\n`).
    pub(crate) starts: Vec<u32>,
    /// The decompressed payload; the text starts at `text_off`.
    buf: Vec<u8>,
    text_off: usize,
    /// Structured metadata per entry; empty when the chunk has none.
    pub(crate) metadata: Vec<Vec<Label>>,
}

impl DecodedChunk {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// All lines, each followed by `\n`.
    #[inline]
    pub(crate) fn text(&self) -> &[u8] {
        &self.buf[self.text_off..]
    }

    #[inline]
    pub(crate) fn line(&self, i: usize) -> &[u8] {
        &self.text()[self.starts[i] as usize..self.starts[i + 1] as usize - 1]
    }

    /// Index of the line holding text byte `pos`.
    #[inline]
    pub(crate) fn line_at(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s as usize <= pos) - 1
    }

    pub(crate) fn metadata(&self, i: usize) -> &[Label] {
        self.metadata.get(i).map_or(&[], |v| v.as_slice())
    }

    /// Builds a decoded view of in-memory entries (the head of a stream).
    pub(crate) fn from_entries<E: Entries + ?Sized>(entries: &E) -> Self {
        let mut c = DecodedChunk::default();
        let has_meta = entries.has_metadata();
        c.starts.push(0);
        for i in 0..entries.count() {
            c.ts.push(entries.timestamp_ns(i));
            c.buf.extend_from_slice(entries.line(i).as_bytes());
            c.buf.push(b'\n');
            c.starts.push(c.buf.len() as u32);
            if has_meta {
                let mut md = Vec::with_capacity(entries.metadata_len(i));
                entries.for_each_metadata(i, |n, v| md.push(Label::new(n, v)));
                c.metadata.push(md);
            }
        }
        c
    }
}

/// Why a chunk failed to decode.
pub(crate) type DecodeError = String;

/// A reusable zstd decompression context.
pub(crate) type Decompressor = zstd::bulk::Decompressor<'static>;

/// Decodes and verifies a chunk's bytes (header, CRC-32C, payload) with a fresh context.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8], out: &mut DecodedChunk) -> Result<(), DecodeError> {
    let mut d = Decompressor::new().map_err(|e| e.to_string())?;
    decode_with(&mut d, bytes, out)
}

/// Decodes and verifies a chunk's bytes (header, CRC-32C, payload), reusing `out`'s buffers.
pub(crate) fn decode_with(
    dctx: &mut Decompressor,
    bytes: &[u8],
    out: &mut DecodedChunk,
) -> Result<(), DecodeError> {
    let h = bytes
        .get(..CHUNK_HEADER_LEN)
        .ok_or_else(|| "chunk shorter than its header".to_owned())?;
    if &h[0..4] != CHUNK_MAGIC {
        return Err("bad chunk magic".into());
    }
    if h[4] != CHUNK_VERSION {
        return Err(format!("unsupported chunk version {}", h[4]));
    }
    if h[5] != CODEC_ZSTD {
        return Err(format!("unknown chunk codec {}", h[5]));
    }
    let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let raw_len = u32_at(8) as usize;
    let comp_len = u32_at(12) as usize;
    let n = u32_at(32) as usize;
    let crc = u32_at(36);
    if raw_len > MAX_RAW_LEN {
        return Err(format!(
            "chunk declares {raw_len} raw bytes, over the limit"
        ));
    }
    let payload = bytes
        .get(CHUNK_HEADER_LEN..CHUNK_HEADER_LEN + comp_len)
        .ok_or_else(|| "chunk payload truncated".to_owned())?;
    if crc32c::crc32c_append(crc32c::crc32c(&h[..36]), payload) != crc {
        return Err("chunk checksum mismatch".into());
    }
    let mut raw = std::mem::take(&mut out.buf);
    raw.clear();
    raw.reserve(raw_len);
    let res = dctx
        .decompress_to_buffer(payload, &mut raw)
        .map_err(|e| format!("chunk decompression failed: {e}"))
        .and_then(|n| {
            if n == raw_len {
                Ok(())
            } else {
                Err("chunk payload length mismatch".to_owned())
            }
        })
        .and_then(|()| parse_raw(&raw, n, out));
    out.buf = raw;
    if res.is_err() {
        out.buf.clear();
        out.ts.clear();
        out.starts.clear();
        out.metadata.clear();
    }
    res
}

fn parse_raw(raw: &[u8], n: usize, out: &mut DecodedChunk) -> Result<(), DecodeError> {
    let bad = || "chunk payload malformed".to_owned();
    if raw.len() < 5 || n > raw.len() {
        return Err(bad());
    }
    let count = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    if count != n {
        return Err(bad());
    }
    let flags = raw[4];
    let mut pos = 5;
    out.ts.clear();
    out.starts.clear();
    out.metadata.clear();
    out.ts.reserve(n);
    let mut prev = 0i64;
    for i in 0..n {
        let t = if i == 0 {
            let b = raw.get(pos..pos + 8).ok_or_else(bad)?;
            pos += 8;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            i64::from_le_bytes(a)
        } else {
            prev.wrapping_add(unzigzag(get_varint(raw, &mut pos).ok_or_else(bad)?))
        };
        out.ts.push(t);
        prev = t;
    }
    out.starts.reserve(n + 1);
    out.starts.push(0);
    let mut acc = 0u64;
    for _ in 0..n {
        acc += get_varint(raw, &mut pos).ok_or_else(bad)? + 1;
        if acc > u32::MAX as u64 || acc > raw.len() as u64 {
            return Err(bad());
        }
        out.starts.push(acc as u32);
    }
    if flags & FLAG_METADATA != 0 {
        out.metadata.reserve(n);
        for _ in 0..n {
            let cnt = get_varint(raw, &mut pos).ok_or_else(bad)? as usize;
            if cnt > raw.len() {
                return Err(bad());
            }
            let mut labels = Vec::with_capacity(cnt);
            for _ in 0..cnt {
                let mut s = [String::new(), String::new()];
                for part in &mut s {
                    let len = get_varint(raw, &mut pos).ok_or_else(bad)? as usize;
                    let b = raw
                        .get(pos..pos.checked_add(len).ok_or_else(bad)?)
                        .ok_or_else(bad)?;
                    *part = std::str::from_utf8(b).map_err(|_| bad())?.to_owned();
                    pos += len;
                }
                let [name, value] = s;
                labels.push(Label { name, value });
            }
            out.metadata.push(labels);
        }
    }
    let text = raw.get(pos..).ok_or_else(bad)?;
    if text.len() as u64 != acc {
        return Err(bad());
    }
    // Every line must end with its separator. UTF-8 is checked per line when a line is
    // returned (a query scans bytes and returns few lines; validating the whole text here
    // would cost every scan about 7 % of its time).
    for i in 0..n {
        if text[out.starts[i + 1] as usize - 1] != b'\n' {
            return Err(bad());
        }
    }
    out.text_off = pos;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bongsu_model::LogEntry;
    use proptest::prelude::*;

    fn entry_strategy() -> impl Strategy<Value = LogEntry> {
        (
            -1_000_000i64..1_000_000,
            "\\PC{0,40}",
            proptest::collection::vec(("[a-z]{1,5}", "\\PC{0,8}"), 0..3),
        )
            .prop_map(|(ts, line, md)| LogEntry {
                timestamp_ns: ts,
                line,
                structured_metadata: md.into_iter().map(|(n, v)| Label::new(n, v)).collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn round_trip(
            mut entries in proptest::collection::vec(entry_strategy(), 0..60),
            compacted in any::<bool>(),
        ) {
            entries.sort_by_key(|e| e.timestamp_ns);
            // As ingest cuts (no substring filter) and as compaction writes (with one).
            let enc = if compacted {
                encode_with_level(&entries[..], 9, true)
            } else {
                encode(&entries[..])
            };
            prop_assert_eq!(enc.meta.grams.is_some(), compacted);
            let mut dec = DecodedChunk::default();
            decode(&enc.bytes, &mut dec).unwrap();
            prop_assert_eq!(dec.len(), entries.len());
            for (i, e) in entries.iter().enumerate() {
                prop_assert_eq!(dec.ts[i], e.timestamp_ns);
                prop_assert_eq!(dec.line(i), e.line.as_bytes());
                prop_assert_eq!(dec.metadata(i), e.structured_metadata.as_slice());
                // The filter never lacks a token of a stored line.
                let mut ok = true;
                tokens::for_each_token(e.line.as_bytes(), |h| ok &= enc.meta.filter.may_contain(h));
                prop_assert!(ok);
                if let Some(grams) = enc.meta.grams.as_ref() {
                    crate::ngrams::for_each_winnowed_gram(e.line.as_bytes(), |h| ok &= grams.may_contain(h));
                    prop_assert!(ok);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut dec = DecodedChunk::default();
            let _ = decode(&bytes, &mut dec);
        }

        #[test]
        fn flipped_bit_is_detected(mut entries in proptest::collection::vec(entry_strategy(), 1..20), at in any::<usize>(), bit in 0u8..8) {
            entries.sort_by_key(|e| e.timestamp_ns);
            let mut enc = encode(&entries[..]).bytes;
            let i = at % enc.len();
            enc[i] ^= 1 << bit;
            let mut dec = DecodedChunk::default();
            prop_assert!(decode(&enc, &mut dec).is_err());
        }

        #[test]
        fn valid_header_garbage_payload_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..200), n in 0u32..50) {
            // A CRC-valid chunk whose compressed payload is a valid zstd frame of junk.
            let raw = payload.clone();
            let comp = zstd::bulk::compress(&raw, 1).unwrap();
            let mut bytes = Vec::new();
            bytes.extend_from_slice(CHUNK_MAGIC);
            bytes.push(CHUNK_VERSION);
            bytes.push(CODEC_ZSTD);
            bytes.extend_from_slice(&0u16.to_le_bytes());
            bytes.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&(comp.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&0i64.to_le_bytes());
            bytes.extend_from_slice(&0i64.to_le_bytes());
            bytes.extend_from_slice(&n.to_le_bytes());
            let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes), &comp);
            bytes.extend_from_slice(&crc.to_le_bytes());
            bytes.extend_from_slice(&comp);
            let mut dec = DecodedChunk::default();
            let _ = decode(&bytes, &mut dec);
        }
    }
}
