//! The tailer's checkpoint file: where each tracked file is read up to, written atomically.
//! Format (version 1) is described byte by byte in `docs/agent.md`.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::Result;

pub(crate) const MAGIC: &[u8; 4] = b"BSTC";
pub(crate) const VERSION: u16 = 1;
const FLAG_DISCARDING: u8 = 1;

/// One file's resume point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckpointEntry {
    pub(crate) dev: u64,
    pub(crate) inode: u64,
    /// Every byte before this offset has been emitted (as a line or part of an event).
    pub(crate) offset: u64,
    pub(crate) fingerprint_len: u32,
    /// CRC-32C of the first `fingerprint_len` bytes of the file.
    pub(crate) fingerprint_crc: u32,
    /// The offset is inside an over-long line whose cut head was already emitted.
    pub(crate) discarding: bool,
    pub(crate) path: PathBuf,
}

pub(crate) fn encode(entries: &[CheckpointEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + entries.len() * 64);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        b.extend_from_slice(&e.dev.to_le_bytes());
        b.extend_from_slice(&e.inode.to_le_bytes());
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.fingerprint_len.to_le_bytes());
        b.extend_from_slice(&e.fingerprint_crc.to_le_bytes());
        b.push(if e.discarding { FLAG_DISCARDING } else { 0 });
        let path = e.path.as_os_str().as_bytes();
        let len = path.len().min(u16::MAX as usize);
        b.extend_from_slice(&(len as u16).to_le_bytes());
        b.extend_from_slice(&path[..len]);
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }
}

pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Vec<CheckpointEntry>, String> {
    if bytes.len() < 16 {
        return Err(format!("{} bytes, shorter than a header", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != want {
        return Err("crc mismatch".into());
    }
    let mut r = Reader { b: body, pos: 0 };
    if r.take(4)? != MAGIC {
        return Err("bad magic".into());
    }
    let version = r.u16()?;
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let _reserved = r.u16()?;
    let count = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let dev = r.u64()?;
        let inode = r.u64()?;
        let offset = r.u64()?;
        let fingerprint_len = r.u32()?;
        let fingerprint_crc = r.u32()?;
        let flags = r.take(1)?[0];
        let len = r.u16()? as usize;
        let path = PathBuf::from(std::ffi::OsString::from_vec(r.take(len)?.to_vec()));
        out.push(CheckpointEntry {
            dev,
            inode,
            offset,
            fingerprint_len,
            fingerprint_crc,
            discarding: flags & FLAG_DISCARDING != 0,
            path,
        });
    }
    if r.pos != body.len() {
        return Err(format!("{} trailing bytes", body.len() - r.pos));
    }
    Ok(out)
}

/// Reads the checkpoint at `path`; a missing file is an empty checkpoint.
pub(crate) fn load(path: &Path) -> Result<Vec<CheckpointEntry>> {
    Ok(crate::state_file::load(path, decode)?.unwrap_or_default())
}

/// Replaces the checkpoint at `path` atomically (never torn by a crash).
pub(crate) fn store(path: &Path, entries: &[CheckpointEntry]) -> Result<()> {
    crate::state_file::store(path, &encode(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = CheckpointEntry> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            "/[a-z./]{0,40}",
        )
            .prop_map(
                |(dev, inode, offset, fingerprint_len, fingerprint_crc, discarding, p)| {
                    CheckpointEntry {
                        dev,
                        inode,
                        offset,
                        fingerprint_len,
                        fingerprint_crc,
                        discarding,
                        path: PathBuf::from(p),
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn round_trips(entries in proptest::collection::vec(entry(), 0..8)) {
            prop_assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&b);
        }

        #[test]
        fn any_flipped_bit_is_detected(entries in proptest::collection::vec(entry(), 1..4), bit in any::<usize>()) {
            let mut b = encode(&entries);
            let i = bit % (b.len() * 8);
            b[i / 8] ^= 1 << (i % 8);
            prop_assert!(decode(&b).is_err());
        }
    }

    /// A checkpoint written by format version 1, checked in; it must keep loading.
    #[test]
    fn reads_checked_in_version_1_file() {
        let b = include_bytes!("../../tests/data/tail-checkpoint-v1.bin");
        let e = decode(b).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, PathBuf::from("/var/log/app.log"));
        assert_eq!((e[0].dev, e[0].inode, e[0].offset), (2049, 131_073, 4096));
        assert_eq!(
            (e[0].fingerprint_len, e[0].fingerprint_crc),
            (256, 0xdead_beef)
        );
        assert!(!e[0].discarding);
        assert!(e[1].discarding);
        assert_eq!(e[1].path, PathBuf::from("/var/log/syslog"));
    }
}
