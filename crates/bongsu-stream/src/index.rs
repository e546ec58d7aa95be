//! Sparse offset and time indexes of a closed segment (`.index`, `.timeindex`).
//!
//! Both files share one layout (little-endian, see docs/formats/stream.md):
//!
//! ```text
//!  0  4 magic ("BSOI" offset index, "BSTI" time index)   4  2 version (1)   6  2 reserved
//!  8  8 segment base offset      16  8 segment size in bytes (the log file length covered)
//! 24  8 next offset (after the segment's last record)    32  8 max timestamp of the segment
//! 40  4 entry count  44 .. entries   then 4 crc32c over everything before it
//! ```
//!
//! Offset index entry (8 bytes): relative offset of a batch's base (u32), byte position (u32).
//! Time index entry (12 bytes): largest timestamp up to and including that batch (i64),
//! relative offset of the batch's base (u32).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{io_err, Result};

pub(crate) const OFFSET_MAGIC: &[u8; 4] = b"BSOI";
pub(crate) const TIME_MAGIC: &[u8; 4] = b"BSTI";
const VERSION: u16 = 1;
const HEADER: usize = 44;

/// What an index file says about its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexHeader {
    pub(crate) base_offset: u64,
    pub(crate) size: u64,
    pub(crate) next_offset: u64,
    pub(crate) max_ts: i64,
}

fn encode(magic: &[u8; 4], h: &IndexHeader, count: usize, entries: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + entries.len() + 4);
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&h.base_offset.to_le_bytes());
    out.extend_from_slice(&h.size.to_le_bytes());
    out.extend_from_slice(&h.next_offset.to_le_bytes());
    out.extend_from_slice(&h.max_ts.to_le_bytes());
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(entries);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode<'a>(magic: &[u8; 4], entry_len: usize, buf: &'a [u8]) -> Option<(IndexHeader, &'a [u8])> {
    if buf.len() < HEADER + 4 || &buf[0..4] != magic {
        return None;
    }
    if u16::from_le_bytes([buf[4], buf[5]]) != VERSION {
        return None;
    }
    let crc_at = buf.len() - 4;
    let stored = u32::from_le_bytes(buf[crc_at..].try_into().ok()?);
    if crc32c::crc32c(&buf[..crc_at]) != stored {
        return None;
    }
    let u64_at =
        |at: usize| -> Option<u64> { Some(u64::from_le_bytes(buf[at..at + 8].try_into().ok()?)) };
    let h = IndexHeader {
        base_offset: u64_at(8)?,
        size: u64_at(16)?,
        next_offset: u64_at(24)?,
        max_ts: u64_at(32)? as i64,
    };
    let count = u32::from_le_bytes(buf[40..44].try_into().ok()?) as usize;
    let entries = &buf[HEADER..crc_at];
    if entries.len() != count.checked_mul(entry_len)? {
        return None;
    }
    Some((h, entries))
}

pub(crate) fn encode_offset_index(h: &IndexHeader, entries: &[(u32, u32)]) -> Vec<u8> {
    let mut e = Vec::with_capacity(entries.len() * 8);
    for (rel, pos) in entries {
        e.extend_from_slice(&rel.to_le_bytes());
        e.extend_from_slice(&pos.to_le_bytes());
    }
    encode(OFFSET_MAGIC, h, entries.len(), &e)
}

pub(crate) fn encode_time_index(h: &IndexHeader, entries: &[(i64, u32)]) -> Vec<u8> {
    let mut e = Vec::with_capacity(entries.len() * 12);
    for (ts, rel) in entries {
        e.extend_from_slice(&ts.to_le_bytes());
        e.extend_from_slice(&rel.to_le_bytes());
    }
    encode(TIME_MAGIC, h, entries.len(), &e)
}

pub(crate) fn decode_offset_index(buf: &[u8]) -> Option<(IndexHeader, Vec<(u32, u32)>)> {
    let (h, e) = decode(OFFSET_MAGIC, 8, buf)?;
    let v = e
        .chunks_exact(8)
        .map(|c| {
            (
                u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    Some((h, v))
}

pub(crate) fn decode_time_index(buf: &[u8]) -> Option<(IndexHeader, Vec<(i64, u32)>)> {
    let (h, e) = decode(TIME_MAGIC, 12, buf)?;
    let v = e
        .chunks_exact(12)
        .map(|c| {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[0..8]);
            (
                i64::from_le_bytes(ts),
                u32::from_le_bytes([c[8], c[9], c[10], c[11]]),
            )
        })
        .collect();
    Some((h, v))
}

/// Writes `bytes` to `path` and fsyncs it.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_files_round_trip_and_reject_corruption() {
        let h = IndexHeader {
            base_offset: 100,
            size: 4096,
            next_offset: 180,
            max_ts: 77,
        };
        let e = vec![(0, 0), (40, 2048)];
        let buf = encode_offset_index(&h, &e);
        assert_eq!(decode_offset_index(&buf), Some((h, e)));
        let t = vec![(5i64, 0u32), (77, 40)];
        let buf2 = encode_time_index(&h, &t);
        assert_eq!(decode_time_index(&buf2), Some((h, t)));
        let mut bad = buf.clone();
        bad[20] ^= 4;
        assert_eq!(decode_offset_index(&bad), None);
        assert_eq!(decode_offset_index(&buf2), None);
        assert_eq!(decode_offset_index(&buf[..10]), None);
    }
}
