use std::path::Path;
use std::sync::Arc;

use bongsu_stream::{Clock, EmbeddedStream, StreamOptions, TopicConfig};

pub(crate) fn opts(clock: Arc<dyn Clock>) -> StreamOptions {
    StreamOptions {
        retention_check_interval_ms: 0,
        clock,
        ..StreamOptions::default()
    }
}

pub(crate) fn open(dir: &Path) -> Arc<EmbeddedStream> {
    EmbeddedStream::open(dir, opts(Arc::new(bongsu_stream::SystemClock))).unwrap()
}

pub(crate) fn topic(partitions: u32, segment_bytes: u64) -> TopicConfig {
    TopicConfig {
        partitions,
        segment_bytes,
        index_interval_bytes: 256,
        retention_ms: -1,
        ..TopicConfig::default()
    }
}

/// Bytes of `.log` files under a partition directory.
pub(crate) fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Segment files of a partition, sorted.
pub(crate) fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}
