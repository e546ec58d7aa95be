//! Native histograms: exponential (sparse) buckets and custom buckets (NHCB), with the
//! arithmetic PromQL needs.
//!
//! Buckets are kept as `(index, count)` pairs sorted by index. For exponential schemas
//! (`-4..=8`) bucket `i` of the positive side covers `(2^((i-1)/2^s), 2^(i/2^s)]`; the
//! negative side mirrors it. For the custom-buckets schema (`-53`) bucket `i` covers
//! `(custom_values[i-1], custom_values[i]]`, the last one reaching `+Inf`.

use std::fmt;

/// The schema number of histograms with custom bucket bounds.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// What a histogram sample says about counter resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum CounterResetHint {
    /// Nothing is known; a reset is detected by comparing with the previous sample.
    #[default]
    Unknown,
    /// The counter was reset before this sample.
    CounterReset,
    /// The counter was not reset before this sample.
    NotCounterReset,
    /// The histogram is a gauge: resets do not apply.
    Gauge,
}

/// The two histograms use exponential and custom buckets and cannot be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncompatibleSchemas;

/// What happened while adding or subtracting two histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Combined {
    /// One side said "counter reset", the other "not a counter reset".
    pub counter_reset_collision: bool,
    /// Custom bucket bounds differed and were reduced to the common ones.
    pub custom_bounds_reconciled: bool,
}

/// One bucket with its bounds, for iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
    pub index: i32,
}

/// A native histogram with float counts, as PromQL evaluates it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    /// `-4..=8` for exponential buckets, [`CUSTOM_BUCKETS_SCHEMA`] for custom bounds.
    pub schema: i32,
    /// Width of the zero bucket `[-zero_threshold, zero_threshold]`.
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    /// `(bucket index, count)` of the positive buckets, ascending by index.
    pub positive: Vec<(i32, f64)>,
    /// `(bucket index, count)` of the negative buckets, ascending by index (away from 0).
    pub negative: Vec<(i32, f64)>,
    /// Upper bounds of the custom buckets (without the last `+Inf` one).
    pub custom_values: Vec<f64>,
}

/// Upper bound of exponential bucket `idx` in `schema`.
pub(crate) fn exp_bound(idx: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (idx as i64) << (-schema);
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let frac_idx = idx & ((1 << schema) - 1);
    let frac = (frac_idx as f64 / (1i64 << schema) as f64).exp2() / 2.0;
    let exp = ((idx as i64) >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

fn ldexp(frac: f64, exp: i64) -> f64 {
    if exp > 2000 {
        return f64::INFINITY * frac.signum();
    }
    if exp < -2200 {
        return 0.0;
    }
    // Split the exponent so that no intermediate power overflows.
    let mut v = frac;
    let mut e = exp;
    while e > 1000 {
        v *= 2f64.powi(1000);
        e -= 1000;
    }
    while e < -1000 {
        v *= 2f64.powi(-1000);
        e += 1000;
    }
    v * 2f64.powi(e as i32)
}

/// Index of the bucket in `target` schema that holds bucket `idx` of `origin`.
fn target_idx(idx: i32, origin: i32, target: i32) -> i32 {
    ((idx - 1) >> (origin - target)) + 1
}

fn merge_into(dst: &mut Vec<(i32, f64)>, src: &[(i32, f64)], sign: f64) {
    if src.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity(dst.len() + src.len());
    let (mut i, mut j) = (0, 0);
    while i < dst.len() || j < src.len() {
        match (dst.get(i), src.get(j)) {
            (Some(a), Some(b)) if a.0 == b.0 => {
                out.push((a.0, a.1 + sign * b.1));
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.0 < b.0 => {
                out.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                out.push((b.0, sign * b.1));
                j += 1;
            }
            (Some(a), None) => {
                out.push(*a);
                i += 1;
            }
            (None, None) => break,
        }
    }
    *dst = out;
}

fn reduce(buckets: &[(i32, f64)], origin: i32, target: i32) -> Vec<(i32, f64)> {
    if origin == target {
        return buckets.to_vec();
    }
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(i, c) in buckets {
        let t = target_idx(i, origin, target);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

fn bounds_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn intersect_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(a[i]);
            i += 1;
            j += 1;
        } else if a[i] < b[j] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Maps custom buckets onto the coarser `target` bounds (a subset of `bounds`).
fn map_custom(buckets: &[(i32, f64)], bounds: &[f64], target: &[f64]) -> Vec<(i32, f64)> {
    let mut out = vec![0.0; target.len() + 1];
    for &(i, c) in buckets {
        let upper = bounds.get(i.max(0) as usize).copied();
        let t = match upper {
            Some(u) => target.partition_point(|x| *x < u),
            None => target.len(),
        };
        out[t] += c;
    }
    out.into_iter()
        .enumerate()
        .filter(|(_, c)| *c != 0.0)
        .map(|(i, c)| (i as i32, c))
        .collect()
}

impl FloatHistogram {
    /// A histogram with exponential buckets of `schema` and nothing observed.
    pub fn empty(schema: i32) -> Self {
        Self {
            schema,
            ..Self::default()
        }
    }

    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    fn upper_of(&self, idx: i32, positive: bool) -> f64 {
        if self.uses_custom_buckets() {
            return self
                .custom_values
                .get(idx.max(0) as usize)
                .copied()
                .unwrap_or(f64::INFINITY);
        }
        let b = exp_bound(idx, self.schema);
        if positive {
            b
        } else {
            -exp_bound(idx - 1, self.schema)
        }
    }

    fn bucket(&self, idx: i32, count: f64, positive: bool) -> Bucket {
        if self.uses_custom_buckets() {
            let lower = if idx <= 0 {
                f64::NEG_INFINITY
            } else {
                self.custom_values
                    .get(idx as usize - 1)
                    .copied()
                    .unwrap_or(f64::INFINITY)
            };
            return Bucket {
                lower,
                upper: self.upper_of(idx, true),
                lower_inclusive: false,
                upper_inclusive: true,
                count,
                index: idx,
            };
        }
        if positive {
            Bucket {
                lower: exp_bound(idx - 1, self.schema),
                upper: exp_bound(idx, self.schema),
                lower_inclusive: false,
                upper_inclusive: true,
                count,
                index: idx,
            }
        } else {
            Bucket {
                lower: -exp_bound(idx, self.schema),
                upper: -exp_bound(idx - 1, self.schema),
                lower_inclusive: true,
                upper_inclusive: false,
                count,
                index: idx,
            }
        }
    }

    /// Positive buckets, ascending.
    pub fn positive_buckets(&self) -> Vec<Bucket> {
        self.positive
            .iter()
            .map(|&(i, c)| self.bucket(i, c, true))
            .collect()
    }

    /// Negative buckets, from the zero bucket downwards.
    pub fn negative_buckets(&self) -> Vec<Bucket> {
        self.negative
            .iter()
            .map(|&(i, c)| self.bucket(i, c, false))
            .collect()
    }

    /// The zero bucket `[-zero_threshold, zero_threshold]`.
    pub fn zero_bucket(&self) -> Bucket {
        Bucket {
            lower: -self.zero_threshold,
            upper: self.zero_threshold,
            lower_inclusive: true,
            upper_inclusive: true,
            count: self.zero_count,
            index: 0,
        }
    }

    /// Every bucket in ascending order of bounds: negative, zero (when populated),
    /// positive. Buckets overlapping the zero bucket are clipped to its threshold.
    pub fn all_buckets(&self) -> Vec<Bucket> {
        let zt = self.zero_threshold;
        let mut out = Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        for &(i, c) in self.negative.iter().rev() {
            let mut b = self.bucket(i, c, false);
            if b.upper < 0.0 && b.upper > -zt {
                b.upper = -zt;
            }
            out.push(b);
        }
        if !self.uses_custom_buckets() && self.zero_count > 0.0 {
            out.push(self.zero_bucket());
        }
        for &(i, c) in &self.positive {
            let mut b = self.bucket(i, c, true);
            if b.lower > 0.0 && b.lower < zt {
                b.lower = zt;
            }
            out.push(b);
        }
        out
    }

    /// Scales every count and the sum by `factor`.
    pub fn mul(&mut self, factor: f64) -> &mut Self {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        for b in self.positive.iter_mut().chain(self.negative.iter_mut()) {
            b.1 *= factor;
        }
        if factor < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// Divides every count and the sum by `d`; dividing by zero drops the buckets.
    pub fn div(&mut self, d: f64) -> &mut Self {
        self.zero_count /= d;
        self.count /= d;
        self.sum /= d;
        if d == 0.0 {
            self.positive.clear();
            self.negative.clear();
            return self;
        }
        for b in self.positive.iter_mut().chain(self.negative.iter_mut()) {
            b.1 /= d;
        }
        if d < 0.0 {
            self.counter_reset_hint = CounterResetHint::Gauge;
        }
        self
    }

    /// A copy at the lower resolution `target` (≤ the current exponential schema).
    pub fn copy_to_schema(&self, target: i32) -> Self {
        if target >= self.schema || self.uses_custom_buckets() {
            return self.clone();
        }
        let mut c = self.clone();
        c.positive = reduce(&self.positive, self.schema, target);
        c.negative = reduce(&self.negative, self.schema, target);
        c.schema = target;
        c.counter_reset_hint = CounterResetHint::Unknown;
        c
    }

    /// Drops buckets with a zero count (the layout Prometheus compares and renders).
    pub fn compact(&mut self) -> &mut Self {
        self.positive.retain(|b| b.1 != 0.0);
        self.negative.retain(|b| b.1 != 0.0);
        self
    }

    fn zero_count_for_larger_threshold(&self, larger: f64) -> (f64, f64) {
        let mut larger = larger;
        if larger == self.zero_threshold {
            return (self.zero_count, larger);
        }
        'outer: loop {
            let mut count = self.zero_count;
            for &(i, c) in &self.positive {
                let b = self.bucket(i, c, true);
                if b.lower >= larger {
                    break;
                }
                count += b.count;
                if b.upper > larger {
                    if b.count != 0.0 {
                        larger = b.upper;
                    }
                    break;
                }
            }
            for &(i, c) in &self.negative {
                let b = self.bucket(i, c, false);
                if b.upper <= -larger {
                    break;
                }
                count += b.count;
                if b.lower < -larger {
                    if b.count != 0.0 {
                        larger = -b.lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (count, larger);
        }
    }

    fn trim_buckets_in_zero_bucket(&mut self) {
        let zt = self.zero_threshold;
        let schema = self.schema;
        self.positive
            .retain(|&(i, _)| exp_bound(i - 1, schema) >= zt);
        self.negative
            .retain(|&(i, _)| -exp_bound(i - 1, schema) <= -zt);
    }

    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        let mut guard = 0;
        while other_threshold != self.zero_threshold && guard < 64 {
            guard += 1;
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                let (c, t) = self.zero_count_for_larger_threshold(other_threshold);
                self.zero_count = c;
                self.zero_threshold = t;
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_count
    }

    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        let (a, b) = (self.counter_reset_hint, other.counter_reset_hint);
        if a == b || a == Gauge {
            return false;
        }
        if b == Gauge {
            self.counter_reset_hint = Gauge;
            return false;
        }
        if a == Unknown {
            return false;
        }
        self.counter_reset_hint = Unknown;
        b != Unknown
    }

    /// Adds `other` into `self`, reconciling schemas and zero thresholds as Prometheus
    /// does; custom buckets with different bounds are reduced to the common bounds.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<Combined, IncompatibleSchemas> {
        self.combine(other, 1.0)
    }

    /// Subtracts `other` from `self` (see [`FloatHistogram::add`]).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<Combined, IncompatibleSchemas> {
        self.combine(other, -1.0)
    }

    fn combine(
        &mut self,
        other: &FloatHistogram,
        sign: f64,
    ) -> Result<Combined, IncompatibleSchemas> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(IncompatibleSchemas);
        }
        let mut res = Combined {
            counter_reset_collision: self.adjust_counter_reset(other),
            ..Combined::default()
        };
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        if self.uses_custom_buckets() {
            if bounds_match(&self.custom_values, &other.custom_values) {
                merge_into(&mut self.positive, &other.positive, sign);
            } else {
                res.custom_bounds_reconciled = true;
                let target = intersect_bounds(&self.custom_values, &other.custom_values);
                let mut mine = map_custom(&self.positive, &self.custom_values, &target);
                let theirs = map_custom(&other.positive, &other.custom_values, &target);
                merge_into(&mut mine, &theirs, sign);
                mine.retain(|b| b.1 != 0.0);
                self.positive = mine;
                self.custom_values = target;
            }
            return Ok(res);
        }
        let other_zero = self.reconcile_zero_buckets(other);
        self.zero_count += sign * other_zero;
        let (mut op, mut on) = (other.positive.clone(), other.negative.clone());
        if other.schema < self.schema {
            self.positive = reduce(&self.positive, self.schema, other.schema);
            self.negative = reduce(&self.negative, self.schema, other.schema);
            self.schema = other.schema;
        } else if other.schema > self.schema {
            op = reduce(&op, other.schema, self.schema);
            on = reduce(&on, other.schema, self.schema);
        }
        let (schema, zt) = (self.schema, self.zero_threshold);
        op.retain(|&(i, _)| exp_bound(i, schema) > zt);
        on.retain(|&(i, _)| exp_bound(i, schema) > zt);
        merge_into(&mut self.positive, &op, sign);
        merge_into(&mut self.negative, &on, sign);
        Ok(res)
    }

    /// Whether `self` cannot follow `previous` without a counter reset in between.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        self.detect_reset_ignoring_hint(previous)
    }

    /// [`FloatHistogram::detect_reset`] from the counts alone.
    pub fn detect_reset_ignoring_hint(&self, previous: &FloatHistogram) -> bool {
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() != previous.uses_custom_buckets() {
            return true;
        }
        if self.uses_custom_buckets() {
            let target = if bounds_match(&self.custom_values, &previous.custom_values) {
                self.custom_values.clone()
            } else {
                intersect_bounds(&self.custom_values, &previous.custom_values)
            };
            let cur = map_custom(&self.positive, &self.custom_values, &target);
            let prev = map_custom(&previous.positive, &previous.custom_values, &target);
            return buckets_decreased(&cur, &prev);
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, new_t) = previous.zero_count_for_larger_threshold(self.zero_threshold);
        if new_t != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zero {
            return true;
        }
        let (schema, zt) = (self.schema, self.zero_threshold);
        let above = |v: &[(i32, f64)], from: i32| -> Vec<(i32, f64)> {
            reduce(v, from, schema)
                .into_iter()
                .filter(|&(i, _)| exp_bound(i, schema) > zt)
                .collect()
        };
        buckets_decreased(
            &above(&self.positive, self.schema),
            &above(&previous.positive, previous.schema),
        ) || buckets_decreased(
            &above(&self.negative, self.schema),
            &above(&previous.negative, previous.schema),
        )
    }

    /// Exact equality of the compacted histograms (what `==` between histograms means).
    pub fn equals(&self, other: &FloatHistogram) -> bool {
        let mut a = self.clone();
        let mut b = other.clone();
        a.compact();
        b.compact();
        a.schema == b.schema
            && a.count.to_bits() == b.count.to_bits()
            && a.sum.to_bits() == b.sum.to_bits()
            && (!a.uses_custom_buckets() || bounds_match(&a.custom_values, &b.custom_values))
            && a.zero_threshold == b.zero_threshold
            && a.zero_count.to_bits() == b.zero_count.to_bits()
            && same_buckets(&a.positive, &b.positive)
            && same_buckets(&a.negative, &b.negative)
    }
}

fn same_buckets(a: &[(i32, f64)], b: &[(i32, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
}

/// Whether a populated bucket of `prev` is missing from or smaller in `cur`.
fn buckets_decreased(cur: &[(i32, f64)], prev: &[(i32, f64)]) -> bool {
    let mut j = 0;
    for &(i, pc) in prev {
        if pc == 0.0 {
            continue;
        }
        while j < cur.len() && cur[j].0 < i {
            j += 1;
        }
        match cur.get(j) {
            Some(&(ci, cc)) if ci == i => {
                if cc < pc {
                    return true;
                }
            }
            _ => return true,
        }
    }
    false
}

/// Go's `%g`: shortest digits, exponent form below 1e-4 and from 1e21.
pub(crate) fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e21).contains(&a) {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        let digits = if digits.len() < 2 {
            format!("0{digits}")
        } else {
            digits.to_owned()
        };
        return format!("{m}e{sign}{digits}");
    }
    format!("{v}")
}

/// Prometheus's `FloatHistogram.String()`: `{count:4, sum:10, [-2,-1):1, (0.5,1]:3}`,
/// the label value `count_values` writes for a histogram.
pub(crate) fn go_string(h: &FloatHistogram) -> String {
    let mut out = format!("{{count:{}, sum:{}", go_g(h.count), go_g(h.sum));
    let bucket = |b: &Bucket| {
        format!(
            "{}{},{}{}:{}",
            if b.lower_inclusive { '[' } else { '(' },
            go_g(b.lower),
            go_g(b.upper),
            if b.upper_inclusive { ']' } else { ')' },
            go_g(b.count)
        )
    };
    for b in h.negative_buckets().iter().rev() {
        if b.count != 0.0 {
            out.push_str(", ");
            out.push_str(&bucket(b));
        }
    }
    if h.zero_count != 0.0 {
        out.push_str(", ");
        out.push_str(&bucket(&h.zero_bucket()));
    }
    for b in h.positive_buckets() {
        if b.count != 0.0 {
            out.push_str(", ");
            out.push_str(&bucket(&b));
        }
    }
    out.push('}');
    out
}

/// Prometheus's test notation: `{{schema:1 count:4 sum:10 buckets:[1 2 1]}}`.
impl fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        let g = crate::json::format_float;
        if self.schema != 0 {
            parts.push(format!("schema:{}", self.schema));
        }
        if self.count != 0.0 {
            parts.push(format!("count:{}", g(self.count)));
        }
        if self.sum != 0.0 {
            parts.push(format!("sum:{}", g(self.sum)));
        }
        if self.zero_count != 0.0 {
            parts.push(format!("z_bucket:{}", g(self.zero_count)));
        }
        if self.zero_threshold != 0.0 {
            parts.push(format!("z_bucket_w:{}", g(self.zero_threshold)));
        }
        if self.uses_custom_buckets() {
            let v: Vec<String> = self.custom_values.iter().map(|x| g(*x)).collect();
            parts.push(format!("custom_values:[{}]", v.join(" ")));
        }
        match self.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => parts.push("counter_reset_hint:reset".into()),
            CounterResetHint::NotCounterReset => parts.push("counter_reset_hint:not_reset".into()),
            CounterResetHint::Gauge => parts.push("counter_reset_hint:gauge".into()),
        }
        for (key, off_key, side) in [
            ("buckets", "offset", &self.positive),
            ("n_buckets", "n_offset", &self.negative),
        ] {
            if let (Some(first), Some(last)) = (side.first(), side.last()) {
                if first.0 != 0 {
                    parts.push(format!("{off_key}:{}", first.0));
                }
                let mut v = Vec::new();
                let mut k = 0;
                for idx in first.0..=last.0 {
                    if side.get(k).is_some_and(|b| b.0 == idx) {
                        v.push(g(side[k].1));
                        k += 1;
                    } else {
                        v.push("0".into());
                    }
                }
                parts.push(format!("{key}:[{}]", v.join(" ")));
            }
        }
        write!(f, "{{{{{}}}}}", parts.join(" "))
    }
}

/// Parses Prometheus's histogram test notation, e.g.
/// `{{schema:0 sum:5 count:4 z_bucket:1 z_bucket_w:0.001 buckets:[1 2 1] offset:1
/// n_buckets:[1] n_offset:0 custom_values:[1 2] counter_reset_hint:gauge}}`.
pub fn parse_histogram_literal(s: &str) -> Result<FloatHistogram, String> {
    let inner = s
        .trim()
        .strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        .ok_or_else(|| format!("histogram literal {s:?} must be enclosed in {{{{ }}}}"))?;
    let mut h = FloatHistogram::default();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    let (mut off, mut noff) = (0i32, 0i32);
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once(':')
            .ok_or_else(|| format!("expected key:value in histogram literal {s:?}"))?;
        let key = key.trim();
        let after = after.trim_start();
        let (val, next) = if let Some(list) = after.strip_prefix('[') {
            let end = list
                .find(']')
                .ok_or_else(|| format!("unclosed list in histogram literal {s:?}"))?;
            (&list[..end], &list[end + 1..])
        } else {
            match after.find(char::is_whitespace) {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        rest = next.trim_start();
        let num = |v: &str| -> Result<f64, String> {
            parse_float(v).ok_or_else(|| format!("bad number {v:?} in histogram literal {s:?}"))
        };
        let list =
            |v: &str| -> Result<Vec<f64>, String> { v.split_whitespace().map(num).collect() };
        match key {
            "schema" => h.schema = num(val)? as i32,
            "sum" => h.sum = num(val)?,
            "count" => h.count = num(val)?,
            "z_bucket" => h.zero_count = num(val)?,
            "z_bucket_w" => h.zero_threshold = num(val)?,
            "buckets" => pos = list(val)?,
            "n_buckets" => neg = list(val)?,
            "offset" => off = num(val)? as i32,
            "n_offset" => noff = num(val)? as i32,
            "custom_values" => h.custom_values = list(val)?,
            "counter_reset_hint" => {
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("bad counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown key {other:?} in histogram literal {s:?}")),
        }
    }
    h.positive = pos
        .into_iter()
        .enumerate()
        .map(|(i, c)| (off + i as i32, c))
        .collect();
    h.negative = neg
        .into_iter()
        .enumerate()
        .map(|(i, c)| (noff + i as i32, c))
        .collect();
    Ok(h)
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> FloatHistogram {
        parse_histogram_literal(s).unwrap()
    }

    #[test]
    fn bounds_follow_the_schema() {
        assert_eq!(exp_bound(0, 0), 1.0);
        assert_eq!(exp_bound(1, 0), 2.0);
        assert_eq!(exp_bound(-1, 0), 0.5);
        assert!((exp_bound(1, 1) - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(exp_bound(1, -1), 4.0);
        assert_eq!(target_idx(1, 1, 0), 1);
        assert_eq!(target_idx(2, 1, 0), 1);
        assert_eq!(target_idx(3, 1, 0), 2);
    }

    #[test]
    fn literal_round_trips_through_display() {
        let x = h("{{schema:1 sum:15 count:10 z_bucket:1 z_bucket_w:0.001 buckets:[3 0 5] offset:2 n_buckets:[1] counter_reset_hint:gauge}}");
        assert_eq!(x.positive, vec![(2, 3.0), (3, 0.0), (4, 5.0)]);
        assert_eq!(h(&x.to_string()), x);
        assert!(parse_histogram_literal("{{schema:0 bogus:1}}").is_err());
        assert!(parse_histogram_literal("schema:0").is_err());
    }

    #[test]
    fn add_reduces_schema_and_merges() {
        let mut a = h("{{schema:1 count:4 sum:4 buckets:[1 1 1 1]}}");
        let b = h("{{schema:0 count:2 sum:2 buckets:[1 1]}}");
        a.add(&b).unwrap();
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive, vec![(0, 2.0), (1, 3.0), (2, 1.0)]);
        assert_eq!(a.count, 6.0);
        let mut c = h("{{schema:-53 custom_values:[1 2 3] buckets:[1 1 1 1] count:4}}");
        let d = h("{{schema:-53 custom_values:[2] buckets:[1 1] count:2}}");
        let r = c.add(&d).unwrap();
        assert!(r.custom_bounds_reconciled);
        assert_eq!(c.custom_values, vec![2.0]);
        assert_eq!(c.positive, vec![(0, 3.0), (1, 3.0)]);
        assert!(a.add(&d).is_err());
    }

    #[test]
    fn zero_buckets_reconcile() {
        let mut a = h("{{schema:0 count:3 z_bucket:1 z_bucket_w:0.5 buckets:[1 1]}}");
        let b = h("{{schema:0 count:1 z_bucket:1 z_bucket_w:1}}");
        a.add(&b).unwrap();
        assert_eq!(a.zero_threshold, 1.0);
        assert_eq!(a.zero_count, 3.0);
        assert_eq!(a.positive, vec![(1, 1.0)]);
    }

    #[test]
    fn resets_are_detected() {
        let a = h("{{schema:0 count:3 buckets:[1 2]}}");
        let b = h("{{schema:0 count:4 buckets:[2 2]}}");
        let c = h("{{schema:0 count:4 buckets:[3 0 1]}}");
        assert!(!b.detect_reset(&a));
        assert!(a.detect_reset(&b));
        assert!(c.detect_reset(&b));
        let mut forced = b.clone();
        forced.counter_reset_hint = CounterResetHint::CounterReset;
        assert!(forced.detect_reset(&a));
    }

    #[test]
    fn equality_ignores_empty_buckets() {
        let a = h("{{schema:0 count:3 buckets:[1 0 2]}}");
        let mut b = h("{{schema:0 count:3 buckets:[1]}}");
        b.positive.push((2, 2.0));
        assert!(a.equals(&b));
        b.sum = 1.0;
        assert!(!a.equals(&b));
    }

    proptest::proptest! {
        #[test]
        fn literal_parser_never_panics(s in "\\{\\{[a-z_:0-9 .\\[\\]-]{0,40}\\}\\}") {
            let _ = parse_histogram_literal(&s);
        }

        #[test]
        fn add_then_sub_restores_counts(a in proptest::collection::vec(0u8..5, 0..6), b in proptest::collection::vec(0u8..5, 0..6)) {
            let mk = |v: &[u8]| FloatHistogram {
                count: v.iter().fold(0.0, |acc, x| acc + *x as f64),
                positive: v.iter().enumerate().map(|(i, c)| (i as i32, *c as f64)).collect(),
                ..FloatHistogram::default()
            };
            let (x, y) = (mk(&a), mk(&b));
            let mut z = x.clone();
            z.add(&y).unwrap();
            z.sub(&y).unwrap();
            let mut x2 = x.clone();
            z.compact();
            x2.compact();
            proptest::prop_assert!(z.equals(&x2), "{} vs {}", z, x2);
        }
    }
}
