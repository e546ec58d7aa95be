//! bongsu's log store and its LogQL-style query language.
//!
//! The store is a consumer of the `logs` topic of the durable log: the caller appends entries
//! with the stream offset they came from ([`LogStore::append`]); every [`LogStore::flush`]
//! writes one segment of zstd-compressed per-stream chunks (each with its time range and a
//! token bloom filter) and then, atomically, a checkpoint holding the offsets applied so far
//! ([`LogStore::applied_offsets`]). After a crash the caller replays from those offsets;
//! replayed records are skipped, so appends are idempotent.
//!
//! Queries ([`LogStore::query_range`], [`LogStore::query_instant`]) take LogQL as described in
//! `docs/logql.md`; [`to_loki_json`] renders results as Loki's HTTP API does.
//!
//! The store does blocking file I/O and CPU-heavy work (compression, scans): async callers run it
//! on a blocking thread (`spawn_blocking`) behind a lock (`RwLock<LogStore>`: writes take `&mut`,
//! queries `&self`). Time comes from an injectable [`Clock`].

mod bloom;
mod checkpoint;
mod chunk;
mod compact;
mod error;
mod hashset;
mod head;
mod literals;
mod logql;
mod ngrams;
mod pipeline;
mod query;
mod record;
mod result;
mod segment;
mod storage;
mod store;
mod tokens;
mod volume;

pub use compact::{Compacted, CompactionPlan};
pub use error::{Error, Result};
pub use record::{IndexStats, RejectedStream};
pub use result::{
    format_value, series_to_loki_json, strings_to_loki_json, to_loki_json, Direction, MatrixSeries,
    QueryResult, QueryStats, ResultData, StreamEntries, VectorSample,
};
pub use storage::StreamStorage;
pub use store::{Clock, Config, LogStore, ManualClock, StoreStats, SystemClock};
pub use volume::{VolumeAggregation, VolumeQuery, VolumeSeries, DEFAULT_VOLUME_LIMIT};

/// Checks a query's syntax without running it; the error names line and column.
pub fn check_query(query: &str) -> Result<()> {
    logql::parser::parse(query).map(|_| ())
}
