//! bongsu's PromQL engine.
//!
//! Parses queries with the `promql-parser` crate and evaluates them over any
//! [`Storage`]: instant and range queries, aggregations, binary operators with vector
//! matching, functions over float and native histogram samples, `offset`, `@`, subqueries, staleness markers
//! and the lookback delta. Results render to the Prometheus HTTP API `data` shape with
//! [`to_prometheus_json`].

mod engine;
mod error;
mod eval;
mod functions;
mod histogram;
mod json;
mod native;
mod storage;
mod value;

pub use engine::{Engine, EngineOptions};
pub use error::{Error, Result};
pub use json::{format_float, to_prometheus_json};
pub use native::{
    parse_histogram_literal, Bucket, Combined, CounterResetHint, FloatHistogram,
    IncompatibleSchemas, CUSTOM_BUCKETS_SCHEMA,
};
pub use storage::{
    HistogramSample, HistogramSeries, MatchOp, Matcher, MemoryStorage, SelectHints, Series, Storage,
};
pub use value::{InstantSample, QueryResult, RangeSeries, Value};
