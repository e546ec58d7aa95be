//! Counters of the embedded log.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the stream's counters (monotonic since open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamMetrics {
    /// Bytes of encoded batches written.
    pub bytes_in: u64,
    /// Bytes of records returned by fetches (keys + values).
    pub bytes_out: u64,
    /// Records appended.
    pub records_appended: u64,
    /// Batches appended.
    pub batches_appended: u64,
    /// fsync calls on segment files by writers.
    pub fsyncs: u64,
    /// Fetch calls served.
    pub fetches: u64,
    /// Segments deleted by retention.
    pub segments_deleted: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) records_appended: AtomicU64,
    pub(crate) batches_appended: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) segments_deleted: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StreamMetrics {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StreamMetrics {
            bytes_in: g(&self.bytes_in),
            bytes_out: g(&self.bytes_out),
            records_appended: g(&self.records_appended),
            batches_appended: g(&self.batches_appended),
            fsyncs: g(&self.fsyncs),
            fetches: g(&self.fetches),
            segments_deleted: g(&self.segments_deleted),
        }
    }
}
