//! bongsu's PromQL engine.
//!
//! Parses queries with the `promql-parser` crate and evaluates them over any
//! [`Storage`]: instant and range queries, aggregations, binary operators with vector
//! matching, functions over float samples, `offset`, `@`, subqueries, staleness markers
//! and the lookback delta. Results render to the Prometheus HTTP API `data` shape with
//! [`to_prometheus_json`].

mod engine;
mod error;
mod eval;
mod functions;
mod histogram;
mod json;
mod storage;
mod value;

pub use engine::{Engine, EngineOptions};
pub use error::{Error, Result};
pub use json::{format_float, to_prometheus_json};
pub use storage::{MatchOp, Matcher, MemoryStorage, SelectHints, Series, Storage};
pub use value::{InstantSample, QueryResult, RangeSeries, Value};
