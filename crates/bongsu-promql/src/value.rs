//! Query results.

use bongsu_model::Labels;

use crate::native::FloatHistogram;

/// One sample of an instant vector: a float, or a native histogram when `histogram`
/// is set (`value` is then 0).
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub timestamp_ms: i64,
    pub value: f64,
    pub histogram: Option<FloatHistogram>,
}

/// One series of a range vector (matrix): labels, (timestamp, value) float points and
/// (timestamp, histogram) native histogram points, each in timestamp order.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
    pub histograms: Vec<(i64, FloatHistogram)>,
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
