//! The checkpoint: which segments are live and up to which stream offsets the store has applied
//! the log. Replaced atomically (temp file, fsync, rename, fsync dir) after each flush.
//!
//! See `docs/formats/logstore.md` for the byte layout.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::error::{corrupt, io_err, Result};
use crate::segment::sync_dir;

pub(crate) const FILE_NAME: &str = "CHECKPOINT";
const MAGIC: &[u8; 4] = b"BCKP";
const VERSION: u16 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) next_seq: u64,
    pub(crate) segments: Vec<u64>,
    /// partition -> next offset to apply.
    pub(crate) applied: BTreeMap<u32, u64>,
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + self.segments.len() * 8 + self.applied.len() * 12);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.next_seq.to_le_bytes());
        b.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        for s in &self.segments {
            b.extend_from_slice(&s.to_le_bytes());
        }
        b.extend_from_slice(&(self.applied.len() as u32).to_le_bytes());
        for (p, o) in &self.applied {
            b.extend_from_slice(&p.to_le_bytes());
            b.extend_from_slice(&o.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> std::result::Result<Self, String> {
        if b.len() < 24 {
            return Err("checkpoint too short".into());
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err("checkpoint checksum mismatch".into());
        }
        if &body[0..4] != MAGIC {
            return Err("bad checkpoint magic".into());
        }
        let version = u16::from_le_bytes([body[4], body[5]]);
        if version != VERSION {
            return Err(format!("unsupported checkpoint version {version}"));
        }
        let bad = || "checkpoint malformed".to_owned();
        let mut pos = 8;
        let mut take = |n: usize| -> std::result::Result<&[u8], String> {
            let s = body.get(pos..pos + n).ok_or_else(bad)?;
            pos += n;
            Ok(s)
        };
        let u64_of = |s: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_le_bytes(a)
        };
        let u32_of = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let next_seq = u64_of(take(8)?);
        let n = u32_of(take(4)?) as usize;
        let mut segments = Vec::with_capacity(n.min(body.len()));
        for _ in 0..n {
            segments.push(u64_of(take(8)?));
        }
        let n = u32_of(take(4)?) as usize;
        let mut applied = BTreeMap::new();
        for _ in 0..n {
            let p = u32_of(take(4)?);
            let o = u64_of(take(8)?);
            applied.insert(p, o);
        }
        if pos != body.len() {
            return Err(bad());
        }
        Ok(Self {
            next_seq,
            segments,
            applied,
        })
    }

    /// Reads `dir/CHECKPOINT`; a missing file is an empty store.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        match std::fs::read(&path) {
            Ok(b) => Self::decode(&b).map_err(|what| corrupt(&path, what)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&self.encode()).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trip(next_seq in any::<u64>(), segments in proptest::collection::vec(any::<u64>(), 0..20),
                      applied in proptest::collection::btree_map(any::<u32>(), any::<u64>(), 0..10)) {
            let c = Checkpoint { next_seq, segments, applied };
            prop_assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Checkpoint::decode(&bytes);
        }
    }
}
