//! Little-endian primitives, varints and durable file helpers for the on-disk formats.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A bounds-checked reader over a byte slice; every read fails cleanly past the end.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes(2)?.try_into().ok()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    pub(crate) fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(crate) fn varint(&mut self) -> Option<i64> {
        let u = self.uvarint()?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Appends the CRC-32C of `buf` to it.
pub(crate) fn seal(buf: &mut Vec<u8>) {
    let crc = crc32c::crc32c(buf);
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// Checks a trailing CRC-32C and returns the bytes before it.
pub(crate) fn unseal<'a>(buf: &'a [u8], path: &Path, what: &str) -> Result<&'a [u8]> {
    if buf.len() < 4 {
        return Err(Error::corrupt(path, format!("{what} is truncated")));
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != want {
        return Err(Error::corrupt(path, format!("{what} checksum mismatch")));
    }
    Ok(body)
}

pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to `path` atomically: a synced temporary file renamed over it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    write_file_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(u in any::<u64>(), i in any::<i64>()) {
            let mut b = Vec::new();
            put_uvarint(&mut b, u);
            put_varint(&mut b, i);
            let mut c = Cursor::new(&b);
            prop_assert_eq!(c.uvarint(), Some(u));
            prop_assert_eq!(c.varint(), Some(i));
            prop_assert_eq!(c.remaining(), 0);
        }

        #[test]
        fn cursor_never_panics(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut c = Cursor::new(&b);
            while c.uvarint().is_some() && c.u32().is_some() {}
        }
    }
}
