//! A small deterministic PRNG (SplitMix64) and a Zipf sampler over a finite vocabulary.

/// SplitMix64: fast, tiny state, good enough statistical quality for synthetic data, and the
/// same sequence on every platform for a given seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x6a09_e667_f3bc_c908)
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Picks an index by weight from a cumulative table.
    pub(crate) fn weighted(&mut self, cumulative: &[u32]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let x = self.below(u64::from(total)) as u32;
        cumulative.partition_point(|&c| c <= x)
    }
}

/// Samples ranks `0..n` with probability close to `1 / (rank + 1)^s` (Zipf's law, which word,
/// path, client and user frequencies in real logs follow closely), in constant time by
/// inverting the continuous approximation of the distribution's CDF.
#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    n: f64,
    /// `1 - s`, or 0 for `s == 1`.
    a: f64,
    /// The CDF's normalizer: `((n + 1)^a - 1) / a`, or `ln(n + 1)`.
    h: f64,
}

impl Zipf {
    pub(crate) fn new(n: usize, s: f64) -> Self {
        let n = n.max(1) as f64;
        let a = 1.0 - s;
        let h = if a.abs() < 1e-9 {
            (n + 1.0).ln()
        } else {
            ((n + 1.0).powf(a) - 1.0) / a
        };
        Self { n, a, h }
    }

    #[inline]
    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let y = rng.unit() * self.h;
        let x = if self.a.abs() < 1e-9 {
            y.exp()
        } else {
            (y * self.a + 1.0).powf(1.0 / self.a)
        };
        ((x - 1.0).max(0.0) as usize).min(self.n as usize - 1)
    }
}

/// Builds a cumulative weight table for [`Rng::weighted`].
pub(crate) fn cumulative(weights: &[u32]) -> Vec<u32> {
    let mut acc = 0;
    weights
        .iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

/// A stable 64-bit hash of a number, for deriving vocabulary entries (IPs, ids) from ranks.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let va: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let z = Zipf::new(1000, 1.1);
        let mut r = Rng::new(1);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.sample(&mut r)] += 1;
        }
        // Rank 0 is far more frequent than rank 99, which is more frequent than rank 999.
        assert!(
            counts[0] > 10 * counts[99],
            "{} vs {}",
            counts[0],
            counts[99]
        );
        assert!(counts[99] > counts[999]);
        assert!(counts.iter().filter(|&&c| c > 0).count() > 500);
    }

    #[test]
    fn weighted_follows_weights() {
        let cum = cumulative(&[90, 0, 10]);
        let mut r = Rng::new(3);
        let mut counts = [0u32; 3];
        for _ in 0..10_000 {
            counts[r.weighted(&cum)] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!(counts[0] > 8_500 && counts[2] > 700, "{counts:?}");
    }
}
