//! bongsu's time-series store: a consumer of the `metrics` topic of the durable log.
//!
//! - [`Tsdb`]: append samples ([`Tsdb::append`]), tell it which log offsets they came from
//!   ([`Tsdb::mark_applied`]), and after a restart replay the log from
//!   [`Tsdb::applied_offsets`]; the store has no write-ahead log of its own.
//! - The head keeps recent samples in Gorilla/XOR chunks; [`Tsdb::cut`] persists them into
//!   immutable blocks; [`Tsdb::compact_now`] merges blocks into longer, pco-compressed ones,
//!   writes 5-minute and 1-hour rollups and applies retention.
//! - Queries: [`Tsdb::select`], [`Tsdb::select_rollup`], [`Tsdb::series`],
//!   [`Tsdb::label_names`], [`Tsdb::label_values`], [`Tsdb::stats`].
//!
//! File formats are described byte by byte in docs/formats/tsdb.md.

mod arena;
mod block;
mod chunk;
mod codec;
mod db;
mod error;
mod head;
mod index;
mod matcher;
mod packed;
mod rollup;
mod slab;
mod snapshot;

pub use chunk::{XorChunk, XorIter};
pub use db::{
    Appender, CompactionReport, Compactor, DiskUsage, Options, RollupSeries, Series, SeriesRef,
    Tsdb,
};
pub use error::{Error, Result};
pub use head::{AppendOutcome, HeadMemory};
pub use index::{CardinalityStats, LabelIndex};
pub use matcher::{MatchOp, Matcher};
pub use rollup::{increase, raw_increase, rollup, Resolution, RollupPoint};
pub use snapshot::SnapshotReport;
