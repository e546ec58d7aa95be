//! Step-wise evaluation of a parsed PromQL expression.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bongsu_model::{Labels, METRIC_NAME};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality,
};

use crate::engine::{offset_ms, selector_key, system_time_ms};
use crate::native::FloatHistogram;
use crate::value::{QueryResult, Value};
use crate::{Error, Result};

/// A label set shared between steps and elements: selectors hand out the stored
/// series' labels without copying them, and only operations that change labels
/// (`Arc::make_mut`) copy.
pub(crate) type SLabels = Arc<Labels>;

/// One element of an instant vector during evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Elem {
    pub(crate) labels: SLabels,
    pub(crate) value: f64,
    /// Timestamp of the underlying sample (for `timestamp()`).
    pub(crate) ts: i64,
    /// The metric name is to be dropped when the result is returned.
    pub(crate) drop_name: bool,
    /// A native histogram sample (then `value` is 0).
    pub(crate) h: Option<Arc<FloatHistogram>>,
}

/// Drops the metric name and the metric-schema labels that travel with it.
pub(crate) fn drop_schema(l: &mut Labels) {
    l.remove(METRIC_NAME);
    l.remove("__type__");
    l.remove("__unit__");
}

/// `labels` without the metric name when `drop_name`; shares `labels` when nothing is
/// dropped.
pub(crate) fn final_of(labels: &SLabels, drop_name: bool) -> SLabels {
    if drop_name
        && labels
            .iter()
            .any(|l| matches!(l.name.as_str(), METRIC_NAME | "__type__" | "__unit__"))
    {
        let mut l = (**labels).clone();
        drop_schema(&mut l);
        Arc::new(l)
    } else {
        labels.clone()
    }
}

impl Elem {
    pub(crate) fn final_labels(&self) -> SLabels {
        final_of(&self.labels, self.drop_name)
    }
}

/// The float points of a range-vector series: a window of a buffer shared with the
/// selected series (a range selector at each step copies nothing), or points of its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct Points {
    buf: Arc<Vec<(i64, f64)>>,
    lo: usize,
    hi: usize,
}

impl Points {
    /// The window `lo..hi` of `buf`.
    pub(crate) fn window(buf: &Arc<Vec<(i64, f64)>>, lo: usize, hi: usize) -> Self {
        debug_assert!(lo <= hi && hi <= buf.len());
        Self {
            buf: buf.clone(),
            lo,
            hi,
        }
    }

    pub(crate) fn push(&mut self, p: (i64, f64)) {
        if self.lo != 0 || self.hi != self.buf.len() {
            let owned = self.to_vec();
            self.buf = Arc::new(owned);
            self.lo = 0;
        }
        Arc::make_mut(&mut self.buf).push(p);
        self.hi = self.buf.len();
    }

    pub(crate) fn into_vec(self) -> Vec<(i64, f64)> {
        if self.lo == 0 && self.hi == self.buf.len() {
            Arc::unwrap_or_clone(self.buf)
        } else {
            self.to_vec()
        }
    }
}

impl<'a> IntoIterator for &'a Points {
    type Item = &'a (i64, f64);
    type IntoIter = std::slice::Iter<'a, (i64, f64)>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::ops::Deref for Points {
    type Target = [(i64, f64)];
    fn deref(&self) -> &[(i64, f64)] {
        &self.buf[self.lo..self.hi]
    }
}

/// One series of a range vector during evaluation.
#[derive(Debug, Clone)]
pub(crate) struct MSeries {
    pub(crate) labels: SLabels,
    pub(crate) points: Points,
    pub(crate) drop_name: bool,
    /// Native histogram points, in timestamp order.
    pub(crate) hists: Vec<(i64, Arc<FloatHistogram>)>,
}

impl MSeries {
    pub(crate) fn final_labels(&self) -> SLabels {
        final_of(&self.labels, self.drop_name)
    }
}

/// One stored point: a float (possibly a staleness marker) or a native histogram.
#[derive(Debug, Clone)]
pub(crate) struct Pt {
    pub(crate) t: i64,
    pub(crate) v: f64,
    pub(crate) h: Option<Arc<FloatHistogram>>,
}

impl Pt {
    pub(crate) fn is_stale(&self) -> bool {
        self.h.is_none() && bongsu_model::is_stale_nan(self.v)
    }
}

/// A selected series with its float and histogram points merged in time order.
#[derive(Debug, Clone)]
pub(crate) struct EvSeries {
    pub(crate) labels: SLabels,
    pub(crate) points: Vec<Pt>,
    /// The float points without staleness markers, which range selectors hand out.
    floats: Arc<Vec<(i64, f64)>>,
    has_hists: bool,
}

impl EvSeries {
    pub(crate) fn new(labels: SLabels, points: Vec<Pt>) -> Self {
        let floats = points
            .iter()
            .filter(|p| p.h.is_none() && !p.is_stale())
            .map(|p| (p.t, p.v))
            .collect();
        let has_hists = points.iter().any(|p| p.h.is_some());
        Self {
            labels,
            points,
            floats: Arc::new(floats),
            has_hists,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Elem>),
    Matrix(Vec<MSeries>),
}

pub(crate) struct Evaluator<'a> {
    pub(crate) query: &'a str,
    data: HashMap<String, Arc<Vec<EvSeries>>>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) step: i64,
    pub(crate) lookback: i64,
    sub_step: i64,
    deadline: Instant,
    timeout: Duration,
    warnings: BTreeSet<String>,
    /// Inside histogram_count/sum/avg: selectors read counter reset hints the way
    /// Prometheus's histogram statistics decoding sets them (reset or not, per sample).
    stats_mode: bool,
    stats_data: HashMap<String, Arc<Vec<EvSeries>>>,
    /// `pos_of` results by expression address (the AST outlives the evaluation).
    pos_cache: std::cell::RefCell<HashMap<usize, String>>,
    /// Grouping labels by (aggregation expression address, input labels address), with
    /// the input labels kept alive: see `aggregate`.
    group_cache: HashMap<(usize, usize), (SLabels, SLabels)>,
    /// Vector-matching signatures by (binary expression address, labels address): see
    /// `sig_of`.
    sig_cache: HashMap<(usize, usize), (SLabels, SLabels)>,
    /// Result labels of a vector-matching binary expression by (expression, left labels,
    /// right labels) addresses, with both inputs kept alive; only label sets that differ
    /// from the many side's are kept.
    res_cache: HashMap<(usize, usize, usize), ([SLabels; 2], SLabels)>,
    /// Inner results of subqueries by (subquery address, histogram statistics mode) and
    /// evaluation time: see `subquery`.
    sub_cache: HashMap<(usize, bool), std::collections::BTreeMap<i64, Val>>,
    infos: BTreeSet<String>,
}

pub(crate) fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

/// Kahan-Neumaier compensated addition, as Prometheus does it.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Mean with Prometheus's overflow-safe strategy.
pub(crate) fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut c = 0.0;
    let mut incremental = false;
    let mut m = 0.0;
    for f in values {
        count += 1.0;
        if count == 1.0 {
            sum = f;
            continue;
        }
        if !incremental {
            let (ns, nc) = kahan_inc(f, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            m = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if m.is_infinite() {
            if f.is_infinite() && (m > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let cur = m + c;
        let (nm, nc) = kahan_inc(f / count - cur / count, m, c);
        m = nm;
        c = nc;
    }
    if count == 0.0 {
        return f64::NAN;
    }
    if incremental {
        m + c
    } else {
        (sum + c) / count
    }
}

/// Go's `math.Max` / `math.Min`: NaN wins.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Go's `%q`-like label set rendering: `{a="b", c="d"}` with the name as a label.
pub(crate) fn go_labels(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| format!("{}={:?}", x.name, x.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Signature of `l` for vector matching.
fn signature(l: &Labels, on: bool, names: &[String]) -> Labels {
    let kept: Vec<bongsu_model::Label> = l
        .iter()
        .filter(|x| {
            if on {
                names.iter().any(|n| n == &x.name)
            } else {
                x.name != METRIC_NAME && !names.iter().any(|n| n == &x.name)
            }
        })
        .cloned()
        .collect();
    Labels::new(kept).unwrap_or_default()
}

impl<'a> Evaluator<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        query: &'a str,
        data: HashMap<String, Arc<Vec<EvSeries>>>,
        start: i64,
        end: i64,
        step: i64,
        lookback: i64,
        sub_step: i64,
        deadline: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            query,
            data,
            start,
            end,
            step,
            lookback,
            sub_step,
            deadline,
            timeout,
            warnings: BTreeSet::new(),
            stats_mode: false,
            stats_data: HashMap::new(),
            pos_cache: std::cell::RefCell::new(HashMap::new()),
            group_cache: HashMap::new(),
            sig_cache: HashMap::new(),
            res_cache: HashMap::new(),
            sub_cache: HashMap::new(),
            infos: BTreeSet::new(),
        }
    }

    pub(crate) fn finish(self, value: Value) -> QueryResult {
        QueryResult {
            value,
            warnings: self.warnings.into_iter().collect(),
            infos: self.infos.into_iter().collect(),
        }
    }

    pub(crate) fn check_deadline(&self) -> Result<()> {
        if Instant::now() >= self.deadline {
            return Err(Error::Timeout(self.timeout));
        }
        Ok(())
    }

    /// `(line:col)` of `e` in the query text, found by its printed form.
    pub(crate) fn pos_of(&self, e: &Expr) -> String {
        let key = e as *const Expr as usize;
        if let Some(p) = self.pos_cache.borrow().get(&key) {
            return p.clone();
        }
        let pos = self.pos_of_uncached(e);
        self.pos_cache.borrow_mut().insert(key, pos.clone());
        pos
    }

    /// `pos_of` for an expression that is not part of the parsed query (a temporary).
    fn pos_of_uncached(&self, e: &Expr) -> String {
        let printed = e.to_string();
        match self.query.find(&printed) {
            Some(i) => self.pos_at(i),
            None => String::new(),
        }
    }

    pub(crate) fn pos_at(&self, byte: usize) -> String {
        let before = &self.query[..byte];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map(|n| byte - n - 1).unwrap_or(byte) + 1;
        format!(" ({line}:{col})")
    }

    /// Position of a call to `name` in the query text.
    pub(crate) fn pos_of_call(&self, name: &str) -> String {
        let pat = format!("{name}(");
        let mut from = 0;
        while let Some(i) = self.query[from..].find(&pat) {
            let at = from + i;
            let prev = self.query[..at].chars().next_back();
            if !prev.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                return self.pos_at(at);
            }
            from = at + pat.len();
        }
        String::new()
    }

    pub(crate) fn warn(&mut self, msg: String) {
        self.warnings.insert(format!("PromQL warning: {msg}"));
    }

    pub(crate) fn info(&mut self, msg: String) {
        self.infos.insert(format!("PromQL info: {msg}"));
    }

    pub(crate) fn ref_time(&self, at: &Option<AtModifier>, off: &Option<Offset>, t: i64) -> i64 {
        let base = match at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(x)) => system_time_ms(*x),
        };
        base.saturating_sub(offset_ms(off))
    }

    pub(crate) fn series_for(
        &mut self,
        vs: &promql_parser::parser::VectorSelector,
    ) -> Arc<Vec<EvSeries>> {
        let key = selector_key(vs);
        let plain = self.data.get(&key).cloned().unwrap_or_default();
        if !self.stats_mode {
            return plain;
        }
        if let Some(d) = self.stats_data.get(&key) {
            return d.clone();
        }
        let rehinted: Vec<EvSeries> = plain
            .iter()
            .map(|s| {
                let mut points = s.points.clone();
                let mut prev: Option<Arc<FloatHistogram>> = None;
                for p in &mut points {
                    let Some(h) = &p.h else {
                        prev = None;
                        continue;
                    };
                    let cur = h.clone();
                    if let Some(pr) = &prev {
                        use crate::native::CounterResetHint as H;
                        if !matches!(h.counter_reset_hint, H::Gauge | H::CounterReset) {
                            let mut c = (**h).clone();
                            c.counter_reset_hint = if h.detect_reset_ignoring_hint(pr) {
                                H::CounterReset
                            } else {
                                H::NotCounterReset
                            };
                            p.h = Some(Arc::new(c));
                        }
                    }
                    prev = Some(cur);
                }
                EvSeries::new(s.labels.clone(), points)
            })
            .collect();
        let d = Arc::new(rehinted);
        self.stats_data.insert(key, d.clone());
        d
    }

    pub(crate) fn eval(&mut self, expr: &Expr, t: i64) -> Result<Val> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(mut v) => {
                    for e in &mut v {
                        e.value = -e.value;
                        e.drop_name = true;
                        if let Some(h) = &mut e.h {
                            Arc::make_mut(h).mul(-1.0);
                        }
                    }
                    Ok(Val::Vector(v))
                }
                _ => Err(Error::Eval(
                    "unary minus needs a scalar or an instant vector".into(),
                )),
            },
            Expr::VectorSelector(vs) => {
                self.check_deadline()?;
                let rt = self.ref_time(&vs.at, &vs.offset, t);
                let data = self.series_for(vs);
                let mut out = Vec::with_capacity(data.len());
                for s in data.iter() {
                    let idx = s.points.partition_point(|x| x.t <= rt);
                    if idx == 0 {
                        continue;
                    }
                    let p = &s.points[idx - 1];
                    if p.t <= rt.saturating_sub(self.lookback) || p.is_stale() {
                        continue;
                    }
                    out.push(Elem {
                        labels: s.labels.clone(),
                        value: if p.h.is_some() { 0.0 } else { p.v },
                        ts: p.t,
                        drop_name: false,
                        h: p.h.clone(),
                    });
                }
                Ok(Val::Vector(out))
            }
            Expr::MatrixSelector(ms) => {
                self.check_deadline()?;
                let rt = self.ref_time(&ms.vs.at, &ms.vs.offset, t);
                let lo = rt.saturating_sub(ms.range.as_millis() as i64);
                let data = self.series_for(&ms.vs);
                let mut out = Vec::with_capacity(data.len());
                for s in data.iter() {
                    let fa = s.floats.partition_point(|x| x.0 <= lo);
                    let fb = s.floats.partition_point(|x| x.0 <= rt);
                    let points = Points::window(&s.floats, fa, fb);
                    let mut hists = Vec::new();
                    if s.has_hists {
                        let a = s.points.partition_point(|x| x.t <= lo);
                        let b = s.points.partition_point(|x| x.t <= rt);
                        for p in &s.points[a..b] {
                            if let Some(h) = &p.h {
                                hists.push((p.t, h.clone()));
                            }
                        }
                    }
                    if points.is_empty() && hists.is_empty() {
                        continue;
                    }
                    out.push(MSeries {
                        labels: s.labels.clone(),
                        points,
                        drop_name: false,
                        hists,
                    });
                }
                Ok(Val::Matrix(out))
            }
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, t)?)),
            Expr::Call(c) => {
                let saved = self.stats_mode;
                match c.func.name {
                    "histogram_count" | "histogram_sum" | "histogram_avg" => self.stats_mode = true,
                    "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
                        self.stats_mode = false
                    }
                    _ => {}
                }
                let r = crate::functions::call(self, c, t);
                self.stats_mode = saved;
                r
            }
            Expr::Aggregate(a) => self.aggregate(a, t),
            Expr::Binary(b) => self.binary(b, t),
            Expr::Extension(_) => Err(Error::Eval(
                "extension expressions are not supported".into(),
            )),
        }
    }

    pub(crate) fn subquery(&mut self, sq: &SubqueryExpr, t: i64) -> Result<Vec<MSeries>> {
        let rt = self.ref_time(&sq.at, &sq.offset, t);
        let step = sq
            .step
            .map(|d| d.as_millis() as i64)
            .filter(|s| *s > 0)
            .unwrap_or(self.sub_step);
        let range = sq.range.as_millis() as i64;
        let lo = rt.saturating_sub(range);
        let mut ts = step * (lo / step);
        if ts <= lo {
            ts = ts.saturating_add(step);
        }
        let mut order: Vec<SLabels> = Vec::new();
        let mut map: HashMap<SLabels, MSeries> = HashMap::new();
        // Inner evaluation times are multiples of the step, so the windows of successive
        // outer steps share most of them: each inner result is computed once per query and
        // kept while later windows can still use it.
        let cache_key = (sq as *const SubqueryExpr as usize, self.stats_mode);
        let mut cache = self.sub_cache.remove(&cache_key).unwrap_or_default();
        cache = cache.split_off(&ts);
        while ts <= rt {
            self.check_deadline()?;
            let val = match cache.get(&ts) {
                Some(v) => v.clone(),
                None => {
                    let v = self.eval(&sq.expr, ts)?;
                    cache.insert(ts, v.clone());
                    v
                }
            };
            match val {
                Val::Scalar(v) => {
                    let l = SLabels::default();
                    map.entry(l.clone())
                        .or_insert_with(|| {
                            order.push(l.clone());
                            MSeries {
                                labels: l,
                                points: Points::default(),
                                drop_name: false,
                                hists: Vec::new(),
                            }
                        })
                        .points
                        .push((ts, v));
                }
                Val::Vector(v) => {
                    for e in v {
                        let entry = map.entry(e.labels.clone()).or_insert_with(|| {
                            order.push(e.labels.clone());
                            MSeries {
                                labels: e.labels.clone(),
                                points: Points::default(),
                                drop_name: false,
                                hists: Vec::new(),
                            }
                        });
                        entry.drop_name |= e.drop_name;
                        match e.h {
                            Some(h) => {
                                // A subquery may skip or repeat samples: its points say
                                // nothing about resets between them.
                                use crate::native::CounterResetHint as H;
                                let h = if matches!(
                                    h.counter_reset_hint,
                                    H::CounterReset | H::NotCounterReset
                                ) {
                                    let mut c = (*h).clone();
                                    c.counter_reset_hint = H::Unknown;
                                    Arc::new(c)
                                } else {
                                    h
                                };
                                entry.hists.push((ts, h))
                            }
                            None => entry.points.push((ts, e.value)),
                        }
                    }
                }
                _ => {
                    return Err(Error::Eval(
                        "subquery is only allowed on instant vector or scalar expressions".into(),
                    ))
                }
            }
            match ts.checked_add(step) {
                Some(n) => ts = n,
                None => break,
            }
        }
        self.sub_cache.insert(cache_key, cache);
        let mut out = Vec::with_capacity(order.len());
        for l in order {
            if let Some(s) = map.remove(&l) {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub(crate) fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64> {
        match self.eval(e, t)? {
            Val::Scalar(v) => Ok(v),
            _ => Err(Error::Eval("expected a scalar expression".into())),
        }
    }

    pub(crate) fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Elem>> {
        match self.eval(e, t)? {
            Val::Vector(v) => Ok(v),
            _ => Err(Error::Eval("expected an instant vector expression".into())),
        }
    }

    // ---------------------------------------------------------------- binary

    fn binary(&mut self, b: &BinaryExpr, t: i64) -> Result<Val> {
        let op = b.op.to_string();
        let op = op.as_str();
        let return_bool = b.return_bool();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => {
                let (v, keep) = scalar_op(op, l, r)?;
                if is_comparison(op) {
                    Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
                } else {
                    Ok(Val::Scalar(v))
                }
            }
            (Val::Vector(v), Val::Scalar(s)) => self.vector_scalar(op, v, s, false, return_bool, b),
            (Val::Scalar(s), Val::Vector(v)) => self.vector_scalar(op, v, s, true, return_bool, b),
            (Val::Vector(l), Val::Vector(r)) => match op {
                "and" | "or" | "unless" => Ok(Val::Vector(self.set_op(op, b, l, r))),
                _ => self.vector_vector(op, b, l, r, return_bool),
            },
            _ => Err(Error::Eval(format!(
                "binary operator {op} needs scalar or instant vector operands"
            ))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn vector_scalar(
        &mut self,
        op: &str,
        v: Vec<Elem>,
        s: f64,
        swap: bool,
        return_bool: bool,
        b: &BinaryExpr,
    ) -> Result<Val> {
        let cmp = is_comparison(op);
        let mut out = Vec::with_capacity(v.len());
        for mut e in v {
            let (l, r) = if swap {
                ((s, None), (e.value, e.h.as_ref()))
            } else {
                ((e.value, e.h.as_ref()), (s, None))
            };
            let Some((mut val, mut hist, keep)) = self.elem_op(op, l, r, b)? else {
                continue;
            };
            if cmp && swap {
                val = e.value;
                hist = e.h.clone();
            }
            if return_bool {
                val = if keep { 1.0 } else { 0.0 };
                hist = None;
            } else if !keep {
                continue;
            }
            if !cmp || return_bool {
                e.drop_name = true;
            }
            e.value = val;
            e.h = hist;
            e.ts = 0;
            out.push(e);
        }
        Ok(Val::Vector(out))
    }

    /// Applies a binary operator to two vector elements (float or histogram each):
    /// `Some((value, histogram, keep))`, or `None` when the combination has no result
    /// (an annotation says why).
    #[allow(clippy::type_complexity)]
    fn elem_op(
        &mut self,
        op: &str,
        l: (f64, Option<&Arc<FloatHistogram>>),
        r: (f64, Option<&Arc<FloatHistogram>>),
        b: &BinaryExpr,
    ) -> Result<Option<(f64, Option<Arc<FloatHistogram>>, bool)>> {
        let incompatible = |ev: &mut Self, lt: &str, rt: &str| {
            let pos = ev.pos_of_binary(b);
            ev.info(format!(
                "incompatible sample types encountered for binary operator {op:?}: {lt} {op} {rt}{pos}"
            ));
            Ok(None)
        };
        match (l.1, r.1) {
            (None, None) => {
                let (v, keep) = scalar_op(op, l.0, r.0)?;
                Ok(Some((v, None, keep)))
            }
            (None, Some(h)) => match op {
                "*" => {
                    let mut h = (**h).clone();
                    h.mul(l.0).compact();
                    Ok(Some((0.0, Some(Arc::new(h)), true)))
                }
                _ => incompatible(self, "float", "histogram"),
            },
            (Some(h), None) => match op {
                "*" | "/" => {
                    let mut h = (**h).clone();
                    if op == "*" {
                        h.mul(r.0);
                    } else {
                        h.div(r.0);
                    }
                    h.compact();
                    Ok(Some((0.0, Some(Arc::new(h)), true)))
                }
                _ => incompatible(self, "histogram", "float"),
            },
            (Some(hl), Some(hr)) => match op {
                "+" | "-" => {
                    let mut h = (**hl).clone();
                    let res = if op == "+" { h.add(hr) } else { h.sub(hr) };
                    let what = if op == "+" { "addition" } else { "subtraction" };
                    match res {
                        Ok(c) => {
                            let pos = self.pos_of_binary(b);
                            if c.counter_reset_collision {
                                self.warn(format!(
                                    "conflicting counter resets during histogram {what}{pos}"
                                ));
                            }
                            if c.custom_bounds_reconciled {
                                self.info(format!(
                                    "mismatched custom buckets were reconciled during {what}{pos}"
                                ));
                            }
                            if op == "-" {
                                h.counter_reset_hint = crate::native::CounterResetHint::Gauge;
                            }
                            h.compact();
                            Ok(Some((0.0, Some(Arc::new(h)), true)))
                        }
                        Err(_) => {
                            let pos = self.pos_of_binary(b);
                            self.warn(format!(
                                "incompatible bucket layout encountered for binary operator {op}{pos}"
                            ));
                            Ok(None)
                        }
                    }
                }
                "==" => Ok(Some((0.0, Some(hl.clone()), hl.equals(hr)))),
                "!=" => Ok(Some((0.0, Some(hl.clone()), !hl.equals(hr)))),
                _ => incompatible(self, "histogram", "histogram"),
            },
        }
    }

    /// Position of a binary expression: where its left operand starts.
    pub(crate) fn pos_of_binary(&self, b: &BinaryExpr) -> String {
        let whole = self.pos_of_uncached(&Expr::Binary(b.clone()));
        if !whole.is_empty() {
            return whole;
        }
        self.pos_of(&b.lhs)
    }

    fn vector_vector(
        &mut self,
        op: &str,
        b: &BinaryExpr,
        lhs: Vec<Elem>,
        rhs: Vec<Elem>,
        return_bool: bool,
    ) -> Result<Val> {
        let modifier = b.modifier.as_ref();
        // In (many, one) space: the value used when the many side, or the one side,
        // has no series for a match group (`fill_left`, `fill_right`, `fill`).
        let fill_many = modifier.and_then(|m| m.fill_values.lhs);
        let fill_one = modifier.and_then(|m| m.fill_values.rhs);
        if (lhs.is_empty() || rhs.is_empty()) && fill_many.is_none() && fill_one.is_none() {
            return Ok(Val::Vector(Vec::new()));
        }
        let cmp = is_comparison(op);
        let (on, names): (bool, Vec<String>) = match modifier.and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        let card = modifier
            .map(|m| m.card.clone())
            .unwrap_or(VectorMatchCardinality::OneToOne);
        let (include, one_to_many, many_to_one) = match &card {
            VectorMatchCardinality::ManyToOne(l) => (l.labels.clone(), false, true),
            VectorMatchCardinality::OneToMany(l) => (l.labels.clone(), true, false),
            _ => (Vec::new(), false, false),
        };
        let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
        let mut one_sigs: HashMap<SLabels, usize> = HashMap::with_capacity(one.len());
        for (i, e) in one.iter().enumerate() {
            let sig = self.sig_of(b, &e.labels, on, &names);
            if let Some(&j) = one_sigs.get(&sig) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(Error::Eval(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    go_labels(&sig),
                    go_labels(&one[j].labels),
                    go_labels(&e.labels),
                )));
            }
            one_sigs.insert(sig, i);
        }
        let mut matched: HashMap<SLabels, ()> = HashMap::new();
        let mut inserted: std::collections::HashSet<Labels> = Default::default();
        let mut out = Vec::new();
        let mut one_matched = vec![false; one.len()];
        let filler = Elem {
            labels: SLabels::default(),
            value: fill_one.unwrap_or(f64::NAN),
            ts: 0,
            drop_name: false,
            h: None,
        };
        for e in &many {
            let sig = self.sig_of(b, &e.labels, on, &names);
            let r = match one_sigs.get(&sig) {
                Some(&j) => {
                    one_matched[j] = true;
                    &one[j]
                }
                None if fill_one.is_some() => &filler,
                None => continue,
            };
            let (fl, fr) = if one_to_many {
                ((r.value, r.h.as_ref()), (e.value, e.h.as_ref()))
            } else {
                ((e.value, e.h.as_ref()), (r.value, r.h.as_ref()))
            };
            if !one_to_many && !many_to_one && matched.insert(sig.clone(), ()).is_some() {
                return Err(Error::Eval(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
            let Some((mut val, mut hist, keep)) = self.elem_op(op, fl, fr, b)? else {
                continue;
            };
            if return_bool {
                val = if keep { 1.0 } else { 0.0 };
                hist = None;
            } else if !keep {
                continue;
            }
            // Result labels.
            let mut labels = e.labels.clone();
            let mut drop_name = e.drop_name;
            if !cmp || return_bool {
                drop_name = true;
            }
            let res_key = (
                b as *const BinaryExpr as usize,
                Arc::as_ptr(&e.labels) as usize,
                Arc::as_ptr(&r.labels) as usize,
            );
            if let Some((_, l)) = self.res_cache.get(&res_key) {
                // Computed at an earlier step for the same pair of series.
                labels = l.clone();
            } else if !one_to_many && !many_to_one {
                if on {
                    // The labels named by on(...) are the match signature.
                    labels = sig.clone();
                } else if names.iter().any(|n| labels.get(n).is_some()) {
                    let l = Arc::make_mut(&mut labels);
                    for n in &names {
                        l.remove(n);
                    }
                }
            } else {
                for n in &include {
                    match r.labels.get(n) {
                        Some(v) => {
                            if labels.get(n) != Some(v) {
                                Arc::make_mut(&mut labels).set(n, v);
                            }
                        }
                        None => {
                            if labels.get(n).is_some() {
                                Arc::make_mut(&mut labels).remove(n);
                            }
                        }
                    }
                }
            }
            if !Arc::ptr_eq(&labels, &e.labels) && !self.res_cache.contains_key(&res_key) {
                self.res_cache.insert(
                    res_key,
                    ([e.labels.clone(), r.labels.clone()], labels.clone()),
                );
            }
            if one_to_many || many_to_one {
                let mut key = (*labels).clone();
                if drop_name {
                    key.remove(METRIC_NAME);
                }
                if !inserted.insert(key) {
                    return Err(Error::Eval(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
            }
            out.push(Elem {
                labels,
                value: val,
                ts: 0,
                drop_name,
                h: hist,
            });
        }
        if let Some(fm) = fill_many {
            for (j, r) in one.iter().enumerate() {
                if one_matched[j] {
                    continue;
                }
                let (fl, fr) = if one_to_many {
                    ((r.value, r.h.as_ref()), (fm, None))
                } else {
                    ((fm, None), (r.value, r.h.as_ref()))
                };
                let Some((mut val, mut hist, keep)) = self.elem_op(op, fl, fr, b)? else {
                    continue;
                };
                if return_bool {
                    val = if keep { 1.0 } else { 0.0 };
                    hist = None;
                } else if !keep {
                    continue;
                }
                out.push(Elem {
                    labels: Arc::new(signature(&r.labels, on, &names)),
                    value: val,
                    ts: 0,
                    drop_name: false,
                    h: hist,
                });
            }
        }
        Ok(Val::Vector(out))
    }

    // ----------------------------------------------------------- aggregation

    fn aggregate(&mut self, a: &AggregateExpr, t: i64) -> Result<Val> {
        let op = a.op.to_string();
        let op = op.as_str();
        let param = match &a.param {
            Some(p) => Some(self.eval(p, t)?),
            None => None,
        };
        let input = self.eval_vector(&a.expr, t)?;
        let (by, names): (bool, Vec<String>) = match &a.modifier {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (true, Vec::new()),
        };
        let group_labels = |l: &Labels| -> Labels {
            let kept: Vec<bongsu_model::Label> = l
                .iter()
                .filter(|x| {
                    if by {
                        names.iter().any(|n| n == &x.name)
                    } else {
                        x.name != METRIC_NAME && !names.iter().any(|n| n == &x.name)
                    }
                })
                .cloned()
                .collect();
            Labels::new(kept).unwrap_or_default()
        };
        // Group in order of first appearance.
        let mut order: Vec<SLabels> = Vec::new();
        let mut groups: HashMap<SLabels, Vec<Elem>> = HashMap::new();
        let count_values_label = match (op, &param) {
            ("count_values", Some(Val::Str(s))) => {
                if !valid_label_name(s) {
                    return Err(Error::Eval(format!("invalid label name {s:?}")));
                }
                // The parser decodes `\xNN` escapes to characters; as bytes (what
                // PromQL means) they may not be valid UTF-8, which no label name may be.
                if let Some(raw) = raw_string_arg(self.query, "count_values") {
                    if std::str::from_utf8(&go_unescape(&raw)).is_err() {
                        return Err(Error::Eval(format!("invalid label name \"{raw}\"")));
                    }
                }
                Some(s.clone())
            }
            ("count_values", _) => {
                return Err(Error::Eval(
                    "count_values needs a string label name parameter".into(),
                ))
            }
            _ => None,
        };
        let scalar_param = match &param {
            Some(Val::Scalar(v)) => Some(*v),
            _ => None,
        };
        match op {
            "topk" | "bottomk" | "limitk" => {
                let k = scalar_param.unwrap_or(f64::NAN);
                if k.is_nan() {
                    return Err(Error::Eval("Parameter value is NaN".into()));
                }
                if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&k) {
                    return Err(Error::Eval(format!("Scalar value {k} overflows int64")));
                }
            }
            "limit_ratio" if scalar_param.unwrap_or(f64::NAN).is_nan() => {
                return Err(Error::Eval("Ratio value is NaN".into()));
            }
            "quantile" => {
                let q = scalar_param.unwrap_or(f64::NAN);
                if q.is_nan() || !(0.0..=1.0).contains(&q) {
                    let pos = a.param.as_ref().map(|p| self.pos_of(p)).unwrap_or_default();
                    self.warn(format!(
                        "quantile value should be between 0 and 1, got {}{pos}",
                        crate::json::format_float(q)
                    ));
                }
            }
            _ => {}
        }
        // Aggregations that read float values ignore histograms (with an info).
        let ignores_hists = matches!(
            op,
            "min" | "max" | "stddev" | "stdvar" | "quantile" | "topk" | "bottomk"
        );
        let mut input = input;
        if ignores_hists && input.iter().any(|e| e.h.is_some()) {
            input.retain(|e| e.h.is_none());
            let pos = if matches!(op, "topk" | "bottomk") {
                self.pos_of_keyword(op)
            } else {
                self.pos_of(&a.expr)
            };
            self.info(format!("ignored histogram in {op} aggregation{pos}"));
        }
        let agg_id = a as *const AggregateExpr as usize;
        for e in input {
            // The grouping labels of a series are the same at every step: computed once
            // per series and aggregation (the cache holds the input labels, so their
            // address is not reused while the entry lives).
            let cache_key = (agg_id, Arc::as_ptr(&e.labels) as usize);
            let mut g = match self.group_cache.get(&cache_key) {
                Some((_, g)) => g.clone(),
                None => {
                    let g = Arc::new(group_labels(&e.labels));
                    self.group_cache
                        .insert(cache_key, (e.labels.clone(), g.clone()));
                    g
                }
            };
            if let Some(lbl) = &count_values_label {
                let g = Arc::make_mut(&mut g);
                match &e.h {
                    Some(h) => g.set(lbl, &crate::native::go_string(h)),
                    None => g.set(lbl, &crate::json::format_float(e.value)),
                }
            }
            groups
                .entry(g.clone())
                .or_insert_with(|| {
                    order.push(g);
                    Vec::new()
                })
                .push(e);
        }
        let mut out = Vec::new();
        match op {
            "topk" | "bottomk" | "limitk" => {
                let k = scalar_param.unwrap_or(0.0) as i64;
                if k < 1 {
                    return Ok(Val::Vector(Vec::new()));
                }
                for g in order {
                    let Some(mut members) = groups.remove(&g) else {
                        continue;
                    };
                    if op != "limitk" {
                        let top = op == "topk";
                        members.sort_by(|x, y| {
                            use std::cmp::Ordering::*;
                            match (x.value.is_nan(), y.value.is_nan()) {
                                (true, true) => Equal,
                                (true, false) => Greater,
                                (false, true) => Less,
                                _ => {
                                    let o = x.value.partial_cmp(&y.value).unwrap_or(Equal);
                                    if top {
                                        o.reverse()
                                    } else {
                                        o
                                    }
                                }
                            }
                        });
                    }
                    members.truncate(k as usize);
                    out.extend(members);
                }
            }
            "limit_ratio" => {
                let mut r = scalar_param.unwrap_or(0.0);
                if r == 0.0 {
                    return Ok(Val::Vector(Vec::new()));
                }
                if !(-1.0..=1.0).contains(&r) {
                    let capped = r.clamp(-1.0, 1.0);
                    let pos = a.param.as_ref().map(|p| self.pos_of(p)).unwrap_or_default();
                    self.warn(format!(
                        "ratio value should be between -1 and 1, got {}, capping to {}{pos}",
                        crate::json::format_float(r),
                        crate::json::format_float(capped)
                    ));
                    r = capped;
                }
                for g in order {
                    for e in groups.remove(&g).unwrap_or_default() {
                        let off = label_hash(&e.labels) as f64 / u64::MAX as f64;
                        if (r >= 0.0 && off < r) || (r < 0.0 && off >= 1.0 + r) {
                            out.push(e);
                        }
                    }
                }
            }
            _ => {
                for g in order {
                    let Some(members) = groups.remove(&g) else {
                        continue;
                    };
                    let drop_name =
                        g.get(METRIC_NAME).is_some() && members.iter().any(|m| m.drop_name);
                    if matches!(op, "sum" | "avg") && members.iter().any(|m| m.h.is_some()) {
                        if members.iter().any(|m| m.h.is_none()) {
                            let pos = self.pos_of(&a.expr);
                            self.warn(format!(
                                "encountered a mix of histograms and floats for aggregation{pos}"
                            ));
                            continue;
                        }
                        if let Some(h) = self.sum_histograms(&members, &a.expr, op == "avg") {
                            out.push(Elem {
                                labels: g,
                                value: 0.0,
                                ts: 0,
                                drop_name,
                                h: Some(Arc::new(h)),
                            });
                        }
                        continue;
                    }
                    let vals = members.iter().map(|m| m.value);
                    let v = match op {
                        "sum" => {
                            let (mut s, mut c) = (0.0, 0.0);
                            for x in vals {
                                (s, c) = kahan_inc(x, s, c);
                            }
                            if s.is_infinite() {
                                s
                            } else {
                                s + c
                            }
                        }
                        "avg" => mean(vals),
                        "count" | "count_values" => members.len() as f64,
                        "group" => 1.0,
                        "min" => vals.fold(
                            f64::NAN,
                            |acc, x| {
                                if acc.is_nan() || x < acc {
                                    x
                                } else {
                                    acc
                                }
                            },
                        ),
                        "max" => vals.fold(
                            f64::NAN,
                            |acc, x| {
                                if acc.is_nan() || x > acc {
                                    x
                                } else {
                                    acc
                                }
                            },
                        ),
                        "stddev" | "stdvar" => {
                            let (mut n, mut m, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
                            for x in vals {
                                n += 1.0;
                                let delta = x - (m + cm);
                                (m, cm) = kahan_inc(delta / n, m, cm);
                                (aux, ca) = kahan_inc(delta * (x - (m + cm)), aux, ca);
                            }
                            let var = (aux + ca) / n;
                            if op == "stddev" {
                                var.sqrt()
                            } else {
                                var
                            }
                        }
                        "quantile" => {
                            let mut v: Vec<f64> = vals.collect();
                            quantile(scalar_param.unwrap_or(f64::NAN), &mut v)
                        }
                        other => {
                            return Err(Error::Eval(format!(
                                "aggregation {other} is not supported"
                            )))
                        }
                    };
                    out.push(Elem {
                        labels: g,
                        value: v,
                        ts: 0,
                        drop_name,
                        h: None,
                    });
                }
            }
        }
        Ok(Val::Vector(out))
    }
}

impl Evaluator<'_> {
    /// Sum (or mean) of histogram elements, with Prometheus's annotations; `None` when
    /// the histograms cannot be combined.
    pub(crate) fn sum_histograms(
        &mut self,
        members: &[Elem],
        pos_expr: &Expr,
        mean: bool,
    ) -> Option<FloatHistogram> {
        let hs: Vec<&FloatHistogram> = members.iter().filter_map(|m| m.h.as_deref()).collect();
        let name = members
            .first()
            .and_then(|m| m.labels.get(METRIC_NAME))
            .unwrap_or("")
            .to_owned();
        self.sum_hist_refs(&hs, pos_expr, mean, &name)
    }

    pub(crate) fn sum_hist_refs(
        &mut self,
        hs: &[&FloatHistogram],
        pos_expr: &Expr,
        mean: bool,
        name: &str,
    ) -> Option<FloatHistogram> {
        let (first, rest) = hs.split_first()?;
        let mut acc = (*first).clone();
        let mut collision = false;
        let mut reconciled = false;
        for h in rest {
            match acc.add(h) {
                Ok(c) => {
                    collision |= c.counter_reset_collision;
                    reconciled |= c.custom_bounds_reconciled;
                }
                Err(_) => {
                    let pos = self.pos_of(pos_expr);
                    self.warn(format!(
                        "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}{pos}"
                    ));
                    return None;
                }
            }
        }
        // Prometheus reports a conflict when the inputs hold both a declared reset
        // and a declared non-reset, whatever else they hold.
        use crate::native::CounterResetHint as H;
        collision |= hs.iter().any(|h| h.counter_reset_hint == H::CounterReset)
            && hs
                .iter()
                .any(|h| h.counter_reset_hint == H::NotCounterReset);
        if collision {
            let pos = self.pos_of(pos_expr);
            self.warn(format!(
                "conflicting counter resets during histogram aggregation{pos}"
            ));
        }
        if reconciled {
            let pos = self.pos_of(pos_expr);
            self.info(format!(
                "mismatched custom buckets were reconciled during aggregation{pos}"
            ));
        }
        if !rest.is_empty() {
            exact_fields(&mut acc, hs, mean);
        }
        acc.compact();
        Some(acc)
    }

    /// Position of the first `word` in the query not inside a longer identifier.
    pub(crate) fn pos_of_keyword(&self, word: &str) -> String {
        let mut from = 0;
        while let Some(i) = self.query[from..].find(word) {
            let at = from + i;
            let prev = self.query[..at].chars().next_back();
            let next = self.query[at + word.len()..].chars().next();
            let ident = |c: char| c.is_alphanumeric() || c == '_';
            if !prev.is_some_and(ident) && !next.is_some_and(ident) {
                return self.pos_at(at);
            }
            from = at + word.len();
        }
        String::new()
    }
}

/// The text between the quotes of the first string argument of `func` in `query`.
fn raw_string_arg(query: &str, func: &str) -> Option<String> {
    let at = query.find(func)? + func.len();
    let rest = &query[at..];
    let open = rest.find(['"', '\''])?;
    let quote = rest[open..].chars().next()?;
    let body = &rest[open + 1..];
    let mut end = None;
    let mut esc = false;
    for (i, c) in body.char_indices() {
        if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if c == quote {
            end = Some(i);
            break;
        }
    }
    Some(body[..end?].to_owned())
}

/// Decodes Go string escapes (`\xNN`, octal, `\u`, `\n`, ...) into bytes.
fn go_unescape(raw: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        let hex = |s: &[u8]| {
            std::str::from_utf8(s)
                .ok()
                .and_then(|t| u32::from_str_radix(t, 16).ok())
        };
        match c {
            b'x' if i + 4 <= b.len() => match hex(&b[i + 2..i + 4]) {
                Some(v) => {
                    out.push(v as u8);
                    i += 4;
                }
                None => {
                    out.push(c);
                    i += 2;
                }
            },
            b'0'..=b'7' if i + 4 <= b.len() => {
                let v = std::str::from_utf8(&b[i + 1..i + 4])
                    .ok()
                    .and_then(|t| u32::from_str_radix(t, 8).ok())
                    .unwrap_or(0);
                out.push(v as u8);
                i += 4;
            }
            b'u' | b'U' => {
                let n = if c == b'u' { 4 } else { 8 };
                let ch = b
                    .get(i + 2..i + 2 + n)
                    .and_then(hex)
                    .and_then(char::from_u32)
                    .unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += 2 + n;
            }
            _ => {
                out.push(match c {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'a' => 7,
                    b'b' => 8,
                    b'f' => 12,
                    b'v' => 11,
                    other => other,
                });
                i += 2;
            }
        }
    }
    out
}

/// Recomputes every count and the sum of `acc` (the plain sum of `hs`, which fixed the
/// common layout) field by field on that layout: compensated sums, or for `mean` the
/// overflow-safe mean, as Prometheus aggregates floats.
fn exact_fields(acc: &mut FloatHistogram, hs: &[&FloatHistogram], mean_of: bool) {
    let norm: Vec<std::borrow::Cow<'_, FloatHistogram>> = hs
        .iter()
        .map(|h| {
            // Already on the common layout: use as is.
            if h.schema == acc.schema
                && h.zero_threshold == acc.zero_threshold
                && h.custom_values == acc.custom_values
            {
                return std::borrow::Cow::Borrowed(*h);
            }
            let mut x = FloatHistogram {
                schema: acc.schema,
                zero_threshold: acc.zero_threshold,
                custom_values: acc.custom_values.clone(),
                ..FloatHistogram::default()
            };
            let _ = x.add(h);
            std::borrow::Cow::Owned(x)
        })
        .collect();
    let agg = |vals: &mut dyn Iterator<Item = f64>| -> f64 {
        if mean_of {
            mean(vals)
        } else {
            let (mut s, mut c) = (0.0, 0.0);
            for v in vals {
                (s, c) = kahan_inc(v, s, c);
            }
            if s.is_infinite() {
                s
            } else {
                s + c
            }
        }
    };
    acc.count = agg(&mut norm.iter().map(|x| x.count));
    acc.sum = agg(&mut norm.iter().map(|x| x.sum));
    acc.zero_count = agg(&mut norm.iter().map(|x| x.zero_count));
    let lookup = |v: &[(i32, f64)], i: i32| -> f64 {
        v.binary_search_by_key(&i, |b| b.0)
            .map(|k| v[k].1)
            .unwrap_or(0.0)
    };
    for b in acc.positive.iter_mut() {
        b.1 = agg(&mut norm.iter().map(|x| lookup(&x.positive, b.0)));
    }
    for b in acc.negative.iter_mut() {
        b.1 = agg(&mut norm.iter().map(|x| lookup(&x.negative, b.0)));
    }
}

fn label_hash(l: &Labels) -> u64 {
    let mut b = Vec::new();
    for x in l.iter() {
        b.extend_from_slice(x.name.as_bytes());
        b.push(0xff);
        b.extend_from_slice(x.value.as_bytes());
        b.push(0xff);
    }
    xxhash_rust::xxh64::xxh64(&b, 0)
}

pub(crate) fn valid_label_name(s: &str) -> bool {
    !s.is_empty() && std::str::from_utf8(s.as_bytes()).is_ok() && !s.contains('\u{fffd}')
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// Applies a binary operator to two floats: (value, keep).
fn scalar_op(op: &str, l: f64, r: f64) -> Result<(f64, bool)> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "%" => (l % r, true),
        "^" => (l.powf(r), true),
        "atan2" => (l.atan2(r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => {
            return Err(Error::Eval(format!(
                "operator {other} is not defined between these operands"
            )))
        }
    })
}

impl Evaluator<'_> {
    /// The vector-matching signature of `labels` for binary expression `b`, computed once
    /// per series and expression (the cache holds `labels`, so its address is not reused
    /// while the entry lives).
    fn sig_of(&mut self, b: &BinaryExpr, labels: &SLabels, on: bool, names: &[String]) -> SLabels {
        let key = (
            b as *const BinaryExpr as usize,
            Arc::as_ptr(labels) as usize,
        );
        if let Some((_, sig)) = self.sig_cache.get(&key) {
            return sig.clone();
        }
        let sig = Arc::new(signature(labels, on, names));
        self.sig_cache.insert(key, (labels.clone(), sig.clone()));
        sig
    }

    fn set_op(&mut self, op: &str, b: &BinaryExpr, lhs: Vec<Elem>, rhs: Vec<Elem>) -> Vec<Elem> {
        let (on, names): (bool, Vec<String>) =
            match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
                Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
                None => (false, Vec::new()),
            };
        let (probe, other) = match op {
            "and" | "unless" => (lhs, rhs),
            _ => (rhs, lhs),
        };
        let sigs: std::collections::HashSet<SLabels> = other
            .iter()
            .map(|e| self.sig_of(b, &e.labels, on, &names))
            .collect();
        let mut out = Vec::with_capacity(probe.len());
        for e in probe {
            let found = sigs.contains(&self.sig_of(b, &e.labels, on, &names));
            if found == (op == "and") {
                out.push(e);
            }
        }
        if op == "or" {
            let mut all = other;
            all.extend(out);
            return all;
        }
        out
    }
}
