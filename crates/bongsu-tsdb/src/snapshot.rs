//! Snapshots: a consistent copy of the store as a directory that [`crate::Tsdb::open`] can
//! open. Blocks already on disk are hard-linked (copied where links are impossible); the
//! head's samples are written as one raw block with the same column encoding the cut and the
//! compactor use, so the snapshot's size is the size the head's samples take on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::block::{
    block_dir_name, Block, BlockKind, BlockWriter, DATA_FILE, INDEX_FILE, META_FILE,
};
use crate::codec::sync_dir;
use crate::head::{Drained, Head};
use crate::{Error, Result};

/// Subdirectory of the store that holds snapshots; `Tsdb::open` ignores it.
pub(crate) const SNAPSHOTS_DIR: &str = "snapshots";

/// What [`crate::Tsdb::snapshot`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotReport {
    /// Directory name under `<store>/snapshots/`.
    pub name: String,
    /// The snapshot's directory: a store that `Tsdb::open` opens.
    pub dir: PathBuf,
    /// Blocks in the snapshot (linked or written).
    pub blocks: usize,
    /// Raw samples in the snapshot's raw blocks.
    pub samples: u64,
    /// Of `samples`, those written from the head (and from a cut still in progress).
    pub head_samples: u64,
    /// Series in the block written from the head.
    pub head_series: u64,
    /// Bytes of the raw blocks' `index` files (symbols and series tables).
    pub raw_index_bytes: u64,
    /// Bytes of the raw blocks' `data` files (timestamp and value columns).
    pub raw_data_bytes: u64,
    /// Bytes of the raw blocks' `meta` files.
    pub raw_meta_bytes: u64,
    /// Bytes of the rollup blocks (all files).
    pub rollup_bytes: u64,
}

impl SnapshotReport {
    /// Bytes of the raw-sample blocks, index included.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_index_bytes + self.raw_data_bytes + self.raw_meta_bytes
    }
}

/// Writes a snapshot named `name` under `<store_dir>/snapshots/`. The caller holds the
/// maintenance lock, so `blocks` and `frozen` do not change meanwhile; `head` keeps taking
/// appends and is read one series at a time.
pub(crate) fn write(
    store_dir: &Path,
    name: &str,
    blocks: &[Arc<Block>],
    frozen: &[&Drained],
    head: &RwLock<Head>,
    mut seq: impl FnMut() -> u64,
) -> Result<SnapshotReport> {
    let root = store_dir.join(SNAPSHOTS_DIR);
    let tmp = root.join(format!(".tmp-{name}"));
    let dst = root.join(name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    let blocks_dir = tmp.join(crate::db::BLOCKS_DIR);
    std::fs::create_dir_all(&blocks_dir).map_err(|e| Error::io(&blocks_dir, e))?;
    let mut report = SnapshotReport {
        name: name.to_owned(),
        dir: dst.clone(),
        blocks: 0,
        samples: 0,
        head_samples: 0,
        head_series: 0,
        raw_index_bytes: 0,
        raw_data_bytes: 0,
        raw_meta_bytes: 0,
        rollup_bytes: 0,
    };
    let add = |b: &Block, report: &mut SnapshotReport| -> Result<()> {
        report.blocks += 1;
        let size = |f: &str| {
            let p = b.dir.join(f);
            std::fs::metadata(&p)
                .map(|m| m.len())
                .map_err(|e| Error::io(&p, e))
        };
        match b.meta.kind {
            BlockKind::Raw => {
                report.samples += b.meta.num_samples;
                report.raw_meta_bytes += size(META_FILE)?;
                report.raw_index_bytes += size(INDEX_FILE)?;
                report.raw_data_bytes += size(DATA_FILE)?;
            }
            BlockKind::Rollup(_) => {
                report.rollup_bytes += size(META_FILE)? + size(INDEX_FILE)? + size(DATA_FILE)?;
            }
        }
        Ok(())
    };
    for b in blocks {
        let to = blocks_dir.join(block_dir_name(b.meta.seq));
        std::fs::create_dir_all(&to).map_err(|e| Error::io(&to, e))?;
        for f in [DATA_FILE, INDEX_FILE, META_FILE] {
            link_or_copy(&b.dir.join(f), &to.join(f))?;
        }
        sync_dir(&to)?;
        add(b, &mut report)?;
    }
    for data in frozen {
        if data.is_empty() {
            continue;
        }
        let (lo, hi) = span(
            data.iter()
                .flat_map(|(_, s)| s.first().into_iter().chain(s.last())),
        );
        let mut w = BlockWriter::new(&blocks_dir, seq(), BlockKind::Raw, 0, (lo, hi), Vec::new())?;
        for (labels, s) in data.iter() {
            write_series(&mut w, labels, s)?;
        }
        let b = w.finish()?;
        report.head_samples += b.meta.num_samples;
        add(&b, &mut report)?;
    }
    let series = head.read().sorted_series();
    if !series.is_empty() {
        let (lo, hi) = {
            let h = head.read();
            (h.min_t().unwrap_or(0), h.max_t().unwrap_or(0))
        };
        let mut w = BlockWriter::new(
            &blocks_dir,
            seq(),
            BlockKind::Raw,
            0,
            (lo, hi.saturating_add(1)),
            Vec::new(),
        )?;
        for (labels, id) in series {
            // Newer appends may land between series; the span stays a hint for readers.
            let s = head.read().samples(id, i64::MIN, i64::MAX);
            write_series(&mut w, &labels, &s)?;
        }
        let b = w.finish()?;
        report.head_samples += b.meta.num_samples;
        report.head_series = b.meta.num_series;
        add(&b, &mut report)?;
    }
    sync_dir(&blocks_dir)?;
    sync_dir(&tmp)?;
    if dst.exists() {
        std::fs::remove_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
    }
    std::fs::rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
    sync_dir(&root)?;
    Ok(report)
}

fn write_series(
    w: &mut BlockWriter,
    labels: &bongsu_model::Labels,
    s: &[(i64, f64)],
) -> Result<()> {
    let ts: Vec<i64> = s.iter().map(|x| x.0).collect();
    let vs: Vec<f64> = s.iter().map(|x| x.1).collect();
    w.add_raw(labels, &ts, &vs)
}

fn span<'a>(it: impl Iterator<Item = &'a (i64, f64)>) -> (i64, i64) {
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for &(t, _) in it {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if lo > hi {
        (0, 1)
    } else {
        (lo, hi.saturating_add(1))
    }
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(to, e))
}
