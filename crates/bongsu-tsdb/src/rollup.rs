//! Rollups: per-window aggregates kept far longer than raw samples.

use bongsu_model::is_stale_nan;

/// Rollup window size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    FiveMinutes,
    OneHour,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::FiveMinutes, Resolution::OneHour];

    pub fn millis(self) -> i64 {
        match self {
            Resolution::FiveMinutes => 300_000,
            Resolution::OneHour => 3_600_000,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Resolution::FiveMinutes => 1,
            Resolution::OneHour => 2,
        }
    }
}

/// Aggregates of the samples of one series in `[t, t + resolution)`. Staleness markers are
/// not values and are skipped; a window with no other sample has no point.
#[derive(Debug, Clone, Copy)]
pub struct RollupPoint {
    /// Window start (aligned to the resolution from the Unix epoch).
    pub t: i64,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Value and timestamp of the window's first and last samples.
    pub first: f64,
    pub last: f64,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Counter increase between the window's first and last samples, treating any
    /// decrease as a reset (as Prometheus's `increase` does, without extrapolation).
    pub increase: f64,
}

impl PartialEq for RollupPoint {
    fn eq(&self, o: &Self) -> bool {
        let f = |a: f64, b: f64| a.to_bits() == b.to_bits();
        self.t == o.t
            && self.count == o.count
            && f(self.sum, o.sum)
            && f(self.min, o.min)
            && f(self.max, o.max)
            && f(self.first, o.first)
            && f(self.last, o.last)
            && self.first_ts == o.first_ts
            && self.last_ts == o.last_ts
            && f(self.increase, o.increase)
    }
}

fn counter_step(prev: f64, cur: f64) -> f64 {
    if cur >= prev {
        cur - prev
    } else {
        cur
    }
}

/// Rolls time-sorted samples up into windows of `res`.
pub fn rollup(samples: &[(i64, f64)], res: Resolution) -> Vec<RollupPoint> {
    let step = res.millis();
    let mut out: Vec<RollupPoint> = Vec::new();
    for &(t, v) in samples {
        if is_stale_nan(v) {
            continue;
        }
        let w = t.div_euclid(step) * step;
        match out.last_mut() {
            Some(p) if p.t == w => {
                p.count += 1;
                p.sum += v;
                p.min = p.min.min(v);
                p.max = p.max.max(v);
                p.increase += counter_step(p.last, v);
                p.last = v;
                p.last_ts = t;
            }
            _ => out.push(RollupPoint {
                t: w,
                count: 1,
                sum: v,
                min: v,
                max: v,
                first: v,
                last: v,
                first_ts: t,
                last_ts: t,
                increase: 0.0,
            }),
        }
    }
    out
}

/// Counter increase across consecutive rollup points: each window's own increase plus the
/// step from one window's last sample to the next window's first, reset-aware. Equals the
/// increase computed from the raw samples the points were built from.
pub fn increase(points: &[RollupPoint]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for p in points {
        if let Some(last) = prev {
            total += counter_step(last, p.first);
        }
        total += p.increase;
        prev = Some(p.last);
    }
    total
}

/// Counter increase over time-sorted raw samples (staleness markers skipped).
pub fn raw_increase(samples: &[(i64, f64)]) -> f64 {
    let mut total = 0.0;
    let mut prev: Option<f64> = None;
    for &(_, v) in samples {
        if is_stale_nan(v) {
            continue;
        }
        if let Some(p) = prev {
            total += counter_step(p, v);
        }
        prev = Some(v);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn windows_and_aggregates() {
        let s = [(0, 1.0), (100_000, 3.0), (299_999, 2.0), (300_000, 10.0)];
        let p = rollup(&s, Resolution::FiveMinutes);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].count, p[0].sum, p[0].min, p[0].max),
            (3, 6.0, 1.0, 3.0)
        );
        assert_eq!(
            (p[0].first, p[0].last, p[0].first_ts, p[0].last_ts),
            (1.0, 2.0, 0, 299_999)
        );
        // 1 -> 3 is +2, 3 -> 2 is a reset counting +2
        assert_eq!(p[0].increase, 4.0);
        assert_eq!(p[1].t, 300_000);
        assert_eq!(increase(&p), 4.0 + 8.0);
    }

    #[test]
    fn stale_markers_are_skipped() {
        let s = [
            (0, 1.0),
            (1, f64::from_bits(bongsu_model::STALE_NAN_BITS)),
            (2, 2.0),
        ];
        let p = rollup(&s, Resolution::OneHour);
        assert_eq!(p[0].count, 2);
        assert_eq!(p[0].sum, 3.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn rollup_increase_equals_raw_increase(steps in proptest::collection::vec((1i64..900_000, 0u32..1000, any::<bool>()), 1..400)) {
            // a counter with integer increments and occasional resets
            let mut t = 1_700_000_000_000i64;
            let mut v = 0.0;
            let mut s = Vec::new();
            for (dt, inc, reset) in steps {
                t += dt;
                v = if reset && inc % 7 == 0 { f64::from(inc % 3) } else { v + f64::from(inc) };
                s.push((t, v));
            }
            let raw = raw_increase(&s);
            for res in Resolution::ALL {
                let pts = rollup(&s, res);
                prop_assert_eq!(increase(&pts), raw);
                prop_assert_eq!(pts.iter().map(|p| p.count).sum::<u64>(), s.len() as u64);
            }
        }
    }
}
