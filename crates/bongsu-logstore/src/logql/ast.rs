//! The parsed query.

use regex::Regex;

use crate::logql::template::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatchOp {
    Eq,
    Neq,
    Re,
    Nre,
}

/// A string match (stream matcher or string label filter).
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    pub(crate) name: String,
    pub(crate) op: MatchOp,
    pub(crate) value: String,
    /// Fully anchored regex for `=~`/`!~`.
    pub(crate) re: Option<Regex>,
}

impl Matcher {
    pub(crate) fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Neq => v != self.value,
            MatchOp::Re => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::Nre => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineOp {
    Contains,
    NotContains,
    Match,
    NotMatch,
}

#[derive(Debug, Clone)]
pub(crate) struct LineFilter {
    pub(crate) op: LineOp,
    pub(crate) pattern: String,
    /// For `|~`/`!~`: the regex as written (unanchored).
    pub(crate) re: Option<regex::bytes::Regex>,
    /// For `|~`: the same regex in multi-line mode, for scanning whole chunks at once.
    pub(crate) scan_re: Option<regex::bytes::Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Cmp {
    pub(crate) fn apply(self, a: f64, b: f64) -> bool {
        match self {
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumKind {
    Number,
    /// Seconds; label values parse as durations.
    Duration,
    /// Bytes; label values parse as humanized sizes.
    Bytes,
}

#[derive(Debug, Clone)]
pub(crate) enum LabelPred {
    And(Box<LabelPred>, Box<LabelPred>),
    Or(Box<LabelPred>, Box<LabelPred>),
    Str(Matcher),
    Num {
        name: String,
        cmp: Cmp,
        value: f64,
        kind: NumKind,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum LabelFmt {
    Rename(String),
    Template(Template),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    None,
    Duration,
    Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Unwrap {
    pub(crate) label: String,
    pub(crate) conv: Conv,
}

#[derive(Debug, Clone)]
pub(crate) enum PatternPart {
    Lit(String),
    /// A named capture; `None` for `<_>`.
    Cap(Option<String>),
}

#[derive(Debug, Clone)]
pub(crate) enum Stage {
    Line(LineFilter),
    Json,
    Logfmt,
    Pattern(Vec<PatternPart>),
    Regexp(Regex),
    Label(LabelPred),
    LineFormat(Template),
    LabelFormat(Vec<(String, LabelFmt)>),
    Drop(Vec<String>),
    Keep(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct LogExpr {
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) stages: Vec<Stage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOp {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    SumOverTime,
    AvgOverTime,
    MaxOverTime,
    MinOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "count_over_time" => Self::CountOverTime,
            "rate" => Self::Rate,
            "bytes_over_time" => Self::BytesOverTime,
            "bytes_rate" => Self::BytesRate,
            "sum_over_time" => Self::SumOverTime,
            "avg_over_time" => Self::AvgOverTime,
            "max_over_time" => Self::MaxOverTime,
            "min_over_time" => Self::MinOverTime,
            "quantile_over_time" => Self::QuantileOverTime,
            "first_over_time" => Self::FirstOverTime,
            "last_over_time" => Self::LastOverTime,
            _ => return None,
        })
    }

    pub(crate) fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            Self::CountOverTime | Self::Rate | Self::BytesOverTime | Self::BytesRate
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VecOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Topk,
    Bottomk,
    Stddev,
    Stdvar,
}

impl VecOp {
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "count" => Self::Count,
            "topk" => Self::Topk,
            "bottomk" => Self::Bottomk,
            "stddev" => Self::Stddev,
            "stdvar" => Self::Stdvar,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Grouping {
    pub(crate) without: bool,
    pub(crate) labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum MetricExpr {
    Range {
        op: RangeOp,
        param: Option<f64>,
        log: LogExpr,
        unwrap: Option<Unwrap>,
        /// Label filters after `| unwrap` (e.g. `| __error__=""`).
        post: Vec<LabelPred>,
        range_ns: i64,
        grouping: Option<Grouping>,
    },
    Vector {
        op: VecOp,
        param: Option<f64>,
        grouping: Grouping,
        inner: Box<MetricExpr>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}
