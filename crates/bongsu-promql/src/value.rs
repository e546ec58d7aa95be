//! Query results.

use bongsu_model::Labels;

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub value: f64,
}

/// One series of a range vector (matrix): labels and (timestamp, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { timestamp_ms: i64, value: f64 },
    String { timestamp_ms: i64, value: String },
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
}

/// A query's value with the warnings and infos raised while evaluating it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    /// Messages starting with `PromQL warning: `.
    pub warnings: Vec<String>,
    /// Messages starting with `PromQL info: `.
    pub infos: Vec<String>,
}
