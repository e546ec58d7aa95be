//! The record batch: the unit written to segments and checked on read.
//!
//! Layout (little-endian, see docs/formats/stream.md):
//!
//! ```text
//!  0  4 magic "BSRB"        4  2 version (1)         6  1 codec   7  1 reserved (0)
//!  8  4 crc32c over bytes 0..8 and 12..len
//! 12  4 len (whole batch)  16  8 base offset        24  4 record count
//! 28  8 first timestamp    36  8 max timestamp      44  4 uncompressed body length
//! 48 .. body (compressed with codec)
//! ```
//!
//! Body, per record: zigzag varint timestamp delta from the first timestamp, varint key length
//! plus one (0 = no key), key, varint value length, value.

use bytes::Bytes;

use crate::config::Compression;
use crate::error::{Error, Result};
use crate::types::{Record, StoredRecord};

pub(crate) const MAGIC: &[u8; 4] = b"BSRB";
pub(crate) const VERSION: u16 = 1;
pub(crate) const HEADER_LEN: usize = 48;
/// Largest uncompressed body accepted (encoder and decoder).
pub(crate) const MAX_BODY: usize = 256 << 20;

/// A decoded batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) codec: Compression,
    pub(crate) crc: u32,
    pub(crate) len: u32,
    pub(crate) base_offset: u64,
    pub(crate) count: u32,
    pub(crate) first_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) body_len: u32,
}

impl BatchHeader {
    /// Offset after the last record of the batch.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base_offset + self.count as u64
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *buf
            .get(*pos)
            .ok_or_else(|| Error::Decode("record body ends inside a varint".into()))?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(Error::Decode("varint overflows 64 bits".into()));
        }
        v |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(Error::Decode("varint longer than 10 bytes".into()));
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reusable buffers and compressor for encoding batches without per-record allocation.
pub(crate) struct Encoder {
    body: Vec<u8>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Encoder {
    pub(crate) fn new() -> Self {
        Encoder {
            body: Vec::new(),
            zstd: None,
        }
    }

    /// Appends one encoded batch of `records` with `base_offset` to `out`.
    pub(crate) fn encode(
        &mut self,
        out: &mut Vec<u8>,
        base_offset: u64,
        records: &[Record],
        codec: Compression,
    ) -> Result<()> {
        if records.is_empty() || records.len() > u32::MAX as usize {
            return Err(Error::InvalidConfig(
                "a batch needs between 1 and 4294967295 records".into(),
            ));
        }
        let first_ts = records[0].timestamp_ms;
        let mut max_ts = first_ts;
        let body = &mut self.body;
        body.clear();
        for r in records {
            max_ts = max_ts.max(r.timestamp_ms);
            put_varint(body, zigzag(r.timestamp_ms.wrapping_sub(first_ts)));
            match &r.key {
                None => put_varint(body, 0),
                Some(k) => {
                    put_varint(body, k.len() as u64 + 1);
                    body.extend_from_slice(k);
                }
            }
            put_varint(body, r.value.len() as u64);
            body.extend_from_slice(&r.value);
        }
        if body.len() > MAX_BODY {
            return Err(Error::InvalidConfig(format!(
                "batch body of {} bytes exceeds the {} byte limit: send fewer records per batch",
                body.len(),
                MAX_BODY
            )));
        }
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        match codec {
            Compression::None => out.extend_from_slice(body),
            Compression::Lz4 => {
                let bound = lz4_flex::block::get_maximum_output_size(body.len());
                let at = out.len();
                out.resize(at + bound, 0);
                let n = lz4_flex::block::compress_into(body, &mut out[at..])
                    .map_err(|e| Error::Decode(format!("lz4 compression failed: {e}")))?;
                out.truncate(at + n);
            }
            Compression::Zstd => {
                if self.zstd.is_none() {
                    self.zstd = Some(zstd::bulk::Compressor::new(1).map_err(|e| {
                        Error::Decode(format!("zstd compressor could not start: {e}"))
                    })?);
                }
                let bound = zstd::zstd_safe::compress_bound(body.len());
                let at = out.len();
                out.resize(at + bound, 0);
                let n = match self.zstd.as_mut() {
                    Some(c) => c
                        .compress_to_buffer(body.as_slice(), &mut out[at..])
                        .map_err(|e| Error::Decode(format!("zstd compression failed: {e}")))?,
                    None => 0,
                };
                out.truncate(at + n);
            }
        }
        let len = out.len() - start;
        if len > u32::MAX as usize {
            return Err(Error::InvalidConfig("batch larger than 4 GiB".into()));
        }
        let h = &mut out[start..start + HEADER_LEN];
        h[0..4].copy_from_slice(MAGIC);
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[6] = codec.code();
        h[7] = 0;
        h[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        h[16..24].copy_from_slice(&base_offset.to_le_bytes());
        h[24..28].copy_from_slice(&(records.len() as u32).to_le_bytes());
        h[28..36].copy_from_slice(&first_ts.to_le_bytes());
        h[36..44].copy_from_slice(&max_ts.to_le_bytes());
        h[44..48].copy_from_slice(&(body.len() as u32).to_le_bytes());
        let crc = batch_crc(&out[start..]);
        out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }
}

/// CRC-32C over a whole batch except its CRC field.
pub(crate) fn batch_crc(batch: &[u8]) -> u32 {
    let c = crc32c::crc32c(&batch[0..8]);
    crc32c::crc32c_append(c, &batch[12..])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses and sanity-checks a header (not the CRC). `buf` must hold at least [`HEADER_LEN`] bytes.
pub(crate) fn parse_header(buf: &[u8]) -> Result<BatchHeader> {
    if buf.len() < HEADER_LEN {
        return Err(Error::Decode(format!(
            "batch header needs {HEADER_LEN} bytes, {} available",
            buf.len()
        )));
    }
    if &buf[0..4] != MAGIC {
        return Err(Error::Decode("bad batch magic".into()));
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    if version != VERSION {
        return Err(Error::Decode(format!(
            "unsupported batch version {version}"
        )));
    }
    let codec = Compression::from_code(buf[6])
        .ok_or_else(|| Error::Decode(format!("unknown codec {}", buf[6])))?;
    let h = BatchHeader {
        codec,
        crc: le_u32(buf, 8),
        len: le_u32(buf, 12),
        base_offset: le_u64(buf, 16),
        count: le_u32(buf, 24),
        first_ts: le_u64(buf, 28) as i64,
        max_ts: le_u64(buf, 36) as i64,
        body_len: le_u32(buf, 44),
    };
    if (h.len as usize) < HEADER_LEN || h.count == 0 || h.body_len as usize > MAX_BODY {
        return Err(Error::Decode("implausible batch header".into()));
    }
    if h.base_offset.checked_add(h.count as u64).is_none() {
        return Err(Error::Decode("batch offsets overflow".into()));
    }
    Ok(h)
}

/// Checks the CRC of a complete batch (`batch.len() == header.len`).
pub(crate) fn check_crc(h: &BatchHeader, batch: &[u8]) -> bool {
    batch.len() == h.len as usize && batch_crc(batch) == h.crc
}

/// Decompresses the body of a verified batch.
pub(crate) fn body(h: &BatchHeader, batch: &Bytes) -> Result<Bytes> {
    let compressed = batch.slice(HEADER_LEN..);
    let n = h.body_len as usize;
    match h.codec {
        Compression::None => {
            if compressed.len() != n {
                return Err(Error::Decode("body length mismatch".into()));
            }
            Ok(compressed)
        }
        Compression::Lz4 => {
            let out = lz4_flex::block::decompress(&compressed, n)
                .map_err(|e| Error::Decode(format!("lz4: {e}")))?;
            if out.len() != n {
                return Err(Error::Decode("body length mismatch".into()));
            }
            Ok(Bytes::from(out))
        }
        Compression::Zstd => {
            let out = zstd::bulk::decompress(&compressed, n)
                .map_err(|e| Error::Decode(format!("zstd: {e}")))?;
            if out.len() != n {
                return Err(Error::Decode("body length mismatch".into()));
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Decodes the records of a verified batch with offset `>= from`, appending to `out`.
pub(crate) fn decode_records(
    h: &BatchHeader,
    batch: &Bytes,
    from: u64,
    out: &mut Vec<StoredRecord>,
) -> Result<()> {
    let body = body(h, batch)?;
    let b: &[u8] = &body;
    let mut pos = 0usize;
    out.reserve(h.count as usize);
    for i in 0..h.count as u64 {
        let ts = h.first_ts.wrapping_add(unzigzag(get_varint(b, &mut pos)?));
        let klen = get_varint(b, &mut pos)?;
        let key = if klen == 0 {
            None
        } else {
            let l = (klen - 1) as usize;
            if l > b.len() - pos {
                return Err(Error::Decode("key runs past the body".into()));
            }
            let k = body.slice(pos..pos + l);
            pos += l;
            Some(k)
        };
        let vlen = get_varint(b, &mut pos)? as usize;
        if vlen > b.len() - pos {
            return Err(Error::Decode("value runs past the body".into()));
        }
        let offset = h.base_offset + i;
        if offset >= from {
            out.push(StoredRecord {
                offset,
                timestamp_ms: ts,
                key,
                value: body.slice(pos..pos + vlen),
            });
        }
        pos += vlen;
    }
    if pos != b.len() {
        return Err(Error::Decode("trailing bytes after the last record".into()));
    }
    Ok(())
}

/// Encodes `records` as one batch starting at `base_offset` (for tools, benches and other
/// backends; the embedded log uses the same code).
pub fn encode_batch(
    base_offset: u64,
    records: &[Record],
    codec: Compression,
    out: &mut Vec<u8>,
) -> Result<()> {
    Encoder::new().encode(out, base_offset, records, codec)
}

/// Decodes one complete batch, verifying its CRC. Never panics on arbitrary input.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<StoredRecord>> {
    let h = parse_header(buf)?;
    if buf.len() != h.len as usize {
        return Err(Error::Decode(format!(
            "batch length {} does not match buffer length {}",
            h.len,
            buf.len()
        )));
    }
    if !check_crc(&h, buf) {
        return Err(Error::Decode("crc mismatch".into()));
    }
    let bytes = Bytes::copy_from_slice(buf);
    let mut out = Vec::with_capacity(h.count as usize);
    decode_records(&h, &bytes, 0, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<i64>(),
        )
            .prop_map(|(k, v, ts)| Record {
                key: k.map(Bytes::from),
                value: Bytes::from(v),
                timestamp_ms: ts,
            })
    }

    fn arb_codec() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Lz4),
            Just(Compression::Zstd)
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn batch_round_trips(records in proptest::collection::vec(arb_record(), 1..40),
                             base in 0u64..(1 << 60), codec in arb_codec()) {
            let mut buf = vec![7u8; 3];
            encode_batch(base, &records, codec, &mut buf).unwrap();
            let decoded = decode_batch(&buf[3..]).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
                prop_assert_eq!(d.offset, base + i as u64);
                prop_assert_eq!(d.timestamp_ms, r.timestamp_ms);
                prop_assert_eq!(&d.key, &r.key);
                prop_assert_eq!(&d.value, &r.value);
            }
            let h = parse_header(&buf[3..]).unwrap();
            prop_assert_eq!(h.max_ts, records.iter().map(|r| r.timestamp_ms).max().unwrap());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_batch(&bytes);
        }

        #[test]
        fn arbitrary_bodies_with_valid_crc_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            count in 1u32..50, codec in 0u8..3, body_len in 0u32..4096)
        {
            // A well-formed header with a correct CRC over garbage: exercises the body decoder.
            let mut buf = vec![0u8; HEADER_LEN];
            buf[0..4].copy_from_slice(MAGIC);
            buf[4..6].copy_from_slice(&VERSION.to_le_bytes());
            buf[6] = codec;
            buf.extend_from_slice(&body);
            let len = buf.len() as u32;
            buf[12..16].copy_from_slice(&len.to_le_bytes());
            buf[24..28].copy_from_slice(&count.to_le_bytes());
            let bl = if codec == 0 { body.len() as u32 } else { body_len };
            buf[44..48].copy_from_slice(&bl.to_le_bytes());
            let crc = batch_crc(&buf);
            buf[8..12].copy_from_slice(&crc.to_le_bytes());
            let _ = decode_batch(&buf);
        }

        #[test]
        fn flipped_bit_is_detected(records in proptest::collection::vec(arb_record(), 1..10),
                                   codec in arb_codec(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut buf = Vec::new();
            encode_batch(5, &records, codec, &mut buf).unwrap();
            let i = at.index(buf.len());
            buf[i] ^= 1 << bit;
            prop_assert!(decode_batch(&buf).is_err());
        }
    }
}
