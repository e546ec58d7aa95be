//! A set of 64-bit hashes for building filters: open addressing, linear probing, no per-item
//! allocation. Deduplicating a chunk's token and gram hashes this way is linear, where sorting
//! them was `n log n` and the largest single cost of cutting a chunk.

/// Multiplier of the slot index (Fibonacci hashing): the slot comes from the product's high
/// bits, so hashes whose low bits are weak still spread.
const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug)]
pub(crate) struct HashSet64 {
    /// 0 marks an empty slot; the hash 0 itself is kept in `has_zero`.
    slots: Vec<u64>,
    /// Hashes in `slots` (not counting a zero).
    filled: usize,
    shift: u32,
    has_zero: bool,
}

impl HashSet64 {
    /// A set that holds about `n` hashes before it first grows.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let slots = (n.max(16) * 2).next_power_of_two();
        Self {
            slots: vec![0; slots],
            filled: 0,
            shift: 64 - slots.trailing_zeros(),
            has_zero: false,
        }
    }

    #[inline]
    pub(crate) fn insert(&mut self, h: u64) {
        if h == 0 {
            self.has_zero = true;
            return;
        }
        if (self.filled + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (h.wrapping_mul(K) >> self.shift) as usize;
        loop {
            let s = self.slots[i];
            if s == h {
                return;
            }
            if s == 0 {
                self.slots[i] = h;
                self.filled += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let n = old.len() * 2;
        self.slots = vec![0; n];
        self.shift = 64 - n.trailing_zeros();
        self.filled = 0;
        for h in old.into_iter().filter(|&h| h != 0) {
            self.insert(h);
        }
    }

    /// Distinct hashes inserted.
    pub(crate) fn len(&self) -> usize {
        self.filled + usize::from(self.has_zero)
    }

    /// The distinct hashes, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .copied()
            .filter(|&h| h != 0)
            .chain(self.has_zero.then_some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn holds_each_distinct_hash_once(
            hashes in proptest::collection::vec(
                prop_oneof![any::<u64>(), 0u64..40, Just(0u64), Just(u64::MAX)],
                0..3000,
            ),
            cap in 0usize..100,
        ) {
            let mut s = HashSet64::with_capacity(cap);
            for &h in &hashes {
                s.insert(h);
            }
            let want: BTreeSet<u64> = hashes.iter().copied().collect();
            let got: Vec<u64> = s.iter().collect();
            prop_assert_eq!(got.len(), want.len());
            prop_assert_eq!(s.len(), want.len());
            prop_assert_eq!(got.into_iter().collect::<BTreeSet<u64>>(), want);
        }
    }
}
