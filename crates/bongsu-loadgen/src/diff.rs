//! The differential run: the query set against a reference (Prometheus) and a target, each
//! answer compared, listed differences checked to be exactly what they claim.

use std::future::Future;

use serde_json::Value;

use crate::compare::compare_answers;
use crate::error::Result;
use crate::queries::QUERIES;
use crate::send::{run_query, Query};

/// A difference from Prometheus 2.42 that is allowed, and how it is checked: evaluating
/// `equivalent` on the target must give Prometheus's answer to the original query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDifference {
    /// Name of the query in [`QUERIES`].
    pub name: &'static str,
    /// An expression the target evaluates to Prometheus 2.42's answer.
    pub equivalent: &'static str,
    pub reason: &'static str,
}

const SUBQUERY_REASON: &str = "Prometheus 2.x subqueries include the step on the window's left \
    boundary ([t-r, t]); Prometheus 3.x and bongsu take left-open windows ((t-r, t]); the same \
    subquery 1 ms wider gives 2.x's answer";

/// Differences between Prometheus 2.42 and bongsu that are allowed, with their reason.
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[
    KnownDifference {
        name: "subquery_max_rate",
        equivalent: r#"max_over_time(rate(node_cpu_seconds_total{mode="system"}[2m])[10m1ms:1m])"#,
        reason: SUBQUERY_REASON,
    },
    KnownDifference {
        name: "subquery_avg",
        equivalent: "avg_over_time(sum by (instance) (node_load1)[15m1ms:30s])",
        reason: SUBQUERY_REASON,
    },
];

/// Something that answers queries in the Prometheus HTTP API's JSON shape
/// (`{"status": ..., "data": ...}`).
pub trait QueryTarget {
    fn answer(&self, q: &Query) -> impl Future<Output = Result<Value>> + Send;
}

/// A Prometheus-compatible HTTP API.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    pub client: reqwest::Client,
    /// Base URL, e.g. `http://127.0.0.1:9090`.
    pub base: String,
}

impl QueryTarget for HttpTarget {
    fn answer(&self, q: &Query) -> impl Future<Output = Result<Value>> + Send {
        run_query(&self.client, &self.base, q)
    }
}

/// What a differential run found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiffReport {
    /// Queries (instant and range counted apart) run.
    pub total: usize,
    /// Queries whose answers were equal.
    pub passed: usize,
    /// Queries that differed exactly as a [`KnownDifference`] says.
    pub allowed: usize,
    /// Points compared in the equal answers.
    pub points: usize,
    /// (query name, "instant"/"range", what differed) of unexplained differences.
    pub failed: Vec<(String, String, String)>,
    /// One line per query, for printing.
    pub lines: Vec<String>,
}

fn with_expr(q: &Query, e: &str) -> Query {
    match q {
        Query::Instant { time_ms, .. } => Query::Instant {
            expr: e.to_owned(),
            time_ms: *time_ms,
        },
        Query::Range {
            start_ms,
            end_ms,
            step_ms,
            ..
        } => Query::Range {
            expr: e.to_owned(),
            start_ms: *start_ms,
            end_ms: *end_ms,
            step_ms: *step_ms,
        },
    }
}

/// Runs every query of [`QUERIES`] as an instant query at `instant_ms` and as a range query
/// over `range` (start, end, step in ms) against both targets and compares the answers.
pub async fn diff_query_set(
    expected: &impl QueryTarget,
    actual: &impl QueryTarget,
    instant_ms: i64,
    range: (i64, i64, i64),
) -> Result<DiffReport> {
    let mut r = DiffReport::default();
    for d in QUERIES {
        for q in [
            Query::Instant {
                expr: d.expr.to_owned(),
                time_ms: instant_ms,
            },
            Query::Range {
                expr: d.expr.to_owned(),
                start_ms: range.0,
                end_ms: range.1,
                step_ms: range.2,
            },
        ] {
            r.total += 1;
            let kind = if matches!(q, Query::Instant { .. }) {
                "instant"
            } else {
                "range"
            };
            let e = expected.answer(&q).await?;
            let a = actual.answer(&q).await?;
            match compare_answers(&e, &a) {
                Ok(n) => {
                    r.passed += 1;
                    r.points += n;
                    r.lines
                        .push(format!("PASS {kind:7} {:22} {n} points", d.name));
                }
                Err(m) => {
                    r.lines
                        .push(format!("DIFF {kind:7} {:22} {}: {m}", d.name, d.expr));
                    let known = KNOWN_DIFFERENCES.iter().find(|k| k.name == d.name);
                    let explained = match known {
                        Some(k) => {
                            let alt = actual.answer(&with_expr(&q, k.equivalent)).await?;
                            match compare_answers(&e, &alt) {
                                Ok(_) => true,
                                Err(m2) => {
                                    r.lines.push(format!(
                                        "     with {}: still differs: {m2}",
                                        k.equivalent
                                    ));
                                    false
                                }
                            }
                        }
                        None => false,
                    };
                    if explained {
                        r.allowed += 1;
                        r.lines
                            .push("     allowed: the listed difference, checked".to_owned());
                    } else {
                        r.failed.push((d.name.to_owned(), kind.to_owned(), m));
                    }
                }
            }
        }
    }
    Ok(r)
}
