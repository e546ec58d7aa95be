//! A classic bloom filter over token hashes.
//!
//! Layout (little-endian): `k: u8`, `log2_bits: u8`, then `2^log2_bits / 8` bytes of bits.
//! Probe `i` (0..k) of hash `h` sets bit `(h1 + i * h2) mod 2^log2_bits`, where `h1` is the low
//! 32 bits of `h` and `h2` the high 32 bits with the lowest bit forced to 1.

/// At least this many bits per distinct token; rounding up to a power of two gives 8 to 16
/// bits, about 2 % to 0.05 % false positives with 7 probes (a query needing two tokens, as a
/// whole id and its parts do, multiplies them).
const BITS_PER_TOKEN: usize = 8;
const PROBES: u8 = 7;
const MAX_LOG2_BITS: u8 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bloom {
    k: u8,
    log2_bits: u8,
    bits: Vec<u64>,
}

impl Bloom {
    /// A filter sized for `hashes.len()` tokens (distinct), holding all of them.
    #[cfg(test)]
    pub(crate) fn build(hashes: &[u64]) -> Self {
        Self::build_from(hashes.len(), hashes.iter().copied())
    }

    /// A filter sized for `distinct` tokens, holding every hash of `hashes`.
    pub(crate) fn build_from(distinct: usize, hashes: impl Iterator<Item = u64>) -> Self {
        let want = (distinct.max(1) * BITS_PER_TOKEN).max(64);
        let mut log2_bits = 6u8;
        while (1usize << log2_bits) < want && log2_bits < MAX_LOG2_BITS {
            log2_bits += 1;
        }
        let mut b = Self {
            k: PROBES,
            log2_bits,
            bits: vec![0; (1usize << log2_bits) / 64],
        };
        for h in hashes {
            b.insert(h);
        }
        b
    }

    #[inline]
    fn probes(&self, h: u64) -> impl Iterator<Item = usize> {
        let mask = (1u64 << self.log2_bits) - 1;
        let h1 = h & 0xffff_ffff;
        let h2 = (h >> 32) | 1;
        (0..u64::from(self.k)).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize)
    }

    fn insert(&mut self, h: u64) {
        let mask = (1u64 << self.log2_bits) - 1;
        let h1 = h & 0xffff_ffff;
        let h2 = (h >> 32) | 1;
        for i in 0..u64::from(self.k) {
            let p = (h1.wrapping_add(i.wrapping_mul(h2)) & mask) as usize;
            self.bits[p / 64] |= 1 << (p % 64);
        }
    }

    /// False means the token is certainly absent.
    #[inline]
    pub(crate) fn may_contain(&self, h: u64) -> bool {
        self.probes(h)
            .all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        2 + self.bits.len() * 8
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.k);
        out.push(self.log2_bits);
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Decodes a filter written by [`Bloom::encode`]; `None` if the bytes are not one.
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let (&k, rest) = b.split_first()?;
        let (&log2_bits, rest) = rest.split_first()?;
        if k == 0 || k > 32 || !(6..=MAX_LOG2_BITS).contains(&log2_bits) {
            return None;
        }
        let words = (1usize << log2_bits) / 64;
        if rest.len() != words * 8 {
            return None;
        }
        let bits = rest
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect();
        Some(Self { k, log2_bits, bits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn no_false_negatives(hashes in proptest::collection::vec(any::<u64>(), 0..2000)) {
            let b = Bloom::build(&hashes);
            for h in &hashes {
                prop_assert!(b.may_contain(*h));
            }
            let mut enc = Vec::new();
            b.encode(&mut enc);
            prop_assert_eq!(enc.len(), b.encoded_len());
            prop_assert_eq!(Bloom::decode(&enc), Some(b));
        }

        #[test]
        fn decode_arbitrary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Bloom::decode(&bytes);
        }
    }

    #[test]
    fn false_positive_rate_is_low() {
        let hashes: Vec<u64> = (0..10_000u64)
            .map(|i| crate::tokens::token_hash(format!("tok{i}").as_bytes()))
            .collect();
        let b = Bloom::build(&hashes);
        let fp = (10_000..110_000u64)
            .filter(|i| b.may_contain(crate::tokens::token_hash(format!("tok{i}").as_bytes())))
            .count();
        assert!(fp < 1_000, "{fp} false positives in 100000");
    }
}
