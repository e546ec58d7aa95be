//! Query results and their rendering as Loki's HTTP API JSON.

use bongsu_model::Labels;
use serde_json::{json, Map, Value};

/// Order of entries in a log query result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    Forward,
    #[default]
    Backward,
}

/// One stream of a log query result: its labels (stream labels plus extracted ones) and entries
/// `(timestamp ns, line)` in the query's direction.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntries {
    pub labels: Labels,
    pub entries: Vec<(i64, String)>,
}

/// One series of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub timestamp_ns: i64,
    pub value: f64,
}

/// One series of a range query: `(timestamp ns, value)` points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSeries {
    pub labels: Labels,
    pub values: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResultData {
    Streams(Vec<StreamEntries>),
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
}

/// What a query did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// Chunks (and heads) in the selected streams and time range.
    pub chunks_total: usize,
    /// Chunks skipped because their token filter lacks a required token.
    pub chunks_skipped_by_filter: usize,
    /// Chunks decoded and scanned.
    pub chunks_scanned: usize,
    /// Bytes of line text scanned.
    pub bytes_scanned: u64,
    /// Lines in the scanned time ranges.
    pub lines_scanned: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub data: ResultData,
    pub stats: QueryStats,
}

fn labels_obj(l: &Labels) -> Value {
    let mut m = Map::new();
    for p in l {
        m.insert(p.name.clone(), Value::String(p.value.clone()));
    }
    Value::Object(m)
}

/// Prometheus's float notation: `NaN`, `+Inf`, `-Inf`, else the shortest round-trip form.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Unix seconds with millisecond precision, as a JSON number.
fn ts_seconds(ns: i64) -> Value {
    let ms = ns.div_euclid(1_000_000);
    serde_json::Number::from_f64(ms as f64 / 1000.0).map_or(Value::Null, Value::Number)
}

/// Renders a result as the body of Loki's `/loki/api/v1/query` and `query_range`:
/// `{"status":"success","data":{"resultType":...,"result":[...],"stats":{...}}}`.
pub fn to_loki_json(r: &QueryResult) -> Value {
    let (kind, result) = match &r.data {
        ResultData::Streams(streams) => (
            "streams",
            streams
                .iter()
                .map(|s| {
                    json!({
                        "stream": labels_obj(&s.labels),
                        "values": s.entries.iter().map(|(ts, line)| json!([ts.to_string(), line])).collect::<Vec<_>>(),
                    })
                })
                .collect::<Vec<_>>(),
        ),
        ResultData::Vector(v) => (
            "vector",
            v.iter()
                .map(|s| json!({"metric": labels_obj(&s.labels), "value": [ts_seconds(s.timestamp_ns), format_value(s.value)]}))
                .collect(),
        ),
        ResultData::Matrix(m) => (
            "matrix",
            m.iter()
                .map(|s| {
                    json!({
                        "metric": labels_obj(&s.labels),
                        "values": s.values.iter().map(|(t, v)| json!([ts_seconds(*t), format_value(*v)])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        ),
    };
    json!({
        "status": "success",
        "data": {
            "resultType": kind,
            "result": result,
            "stats": {
                "summary": {
                    "totalChunksScanned": r.stats.chunks_scanned,
                    "totalChunksSkipped": r.stats.chunks_skipped_by_filter,
                    "totalBytesProcessed": r.stats.bytes_scanned,
                    "totalLinesProcessed": r.stats.lines_scanned,
                }
            }
        }
    })
}

/// Body of `/loki/api/v1/labels` and `/loki/api/v1/label/<name>/values`.
pub fn strings_to_loki_json(values: &[String]) -> Value {
    json!({"status": "success", "data": values})
}

/// Body of `/loki/api/v1/series`.
pub fn series_to_loki_json(series: &[Labels]) -> Value {
    json!({"status": "success", "data": series.iter().map(labels_obj).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let l = Labels::from_pairs([("app", "a")]).unwrap();
        let r = QueryResult {
            data: ResultData::Streams(vec![StreamEntries {
                labels: l.clone(),
                entries: vec![(1_700_000_000_000_000_001, "hi".into())],
            }]),
            stats: QueryStats::default(),
        };
        let j = to_loki_json(&r);
        assert_eq!(j["data"]["resultType"], "streams");
        assert_eq!(j["data"]["result"][0]["stream"]["app"], "a");
        assert_eq!(
            j["data"]["result"][0]["values"][0],
            json!(["1700000000000000001", "hi"])
        );
        let r = QueryResult {
            data: ResultData::Vector(vec![VectorSample {
                labels: l,
                timestamp_ns: 1_500_000_000,
                value: 2.0,
            }]),
            stats: QueryStats::default(),
        };
        let j = to_loki_json(&r);
        assert_eq!(j["data"]["result"][0]["value"], json!([1.5, "2"]));
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(0.25), "0.25");
    }
}
