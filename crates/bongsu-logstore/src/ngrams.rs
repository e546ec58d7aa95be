//! The per-chunk substring filter: a sparse bloom filter over winnowed n-grams.
//!
//! A *gram* is [`GRAM_LEN`] consecutive bytes inside one run of term bytes (`[A-Za-z0-9._:-]`,
//! see [`crate::tokens`]), each byte OR 0x20 (ASCII lowercase). Grams are *winnowed*: of every
//! [`WINDOW`] consecutive grams of a run, the one with the smallest hash is indexed (runs with
//! fewer grams index none). The choice depends on the window's bytes alone, so every window
//! lying inside a query literal selects the same gram as it does in a line holding the literal:
//! a chunk holding the literal holds all of those grams (no false negatives), and a literal with
//! a run of at least `GRAM_LEN + WINDOW - 1` = 11 term bytes requires at least one. About 2 in
//! `WINDOW + 1` grams are indexed.
//!
//! The filter is sparse (about [`BITS_PER_GRAM`] bits per distinct indexed gram, one probe):
//! each gram alone lets through about a quarter of the chunks, a 36-byte UUID's seven or so
//! grams together about one in ten thousand, and the token filter's requirements multiply on
//! top.
//!
//! Layout (little-endian): `gram_len: u8`, `window: u8`, `k: u8`, `reserved: u8 = 0`,
//! `n_bits: u32`, then `ceil(n_bits / 64)` u64 words; bit `i` is bit `i % 64` of word `i / 64`.
//! Probe `j` (0..k) of gram hash `h` is bit `((lo32(h) + j × hi32(h)) mod 2^32) × n_bits >> 32`.

use crate::hashset::HashSet64;
use crate::tokens::{is_term_byte, load8};

/// Bytes per gram.
pub(crate) const GRAM_LEN: usize = 6;
/// Grams per winnowing window.
pub(crate) const WINDOW: usize = 6;
/// Bits per distinct indexed gram.
const BITS_PER_GRAM: usize = 3;
const PROBES: u8 = 1;
/// Largest filter accepted on decode (bits); guards allocations on corrupt input.
const MAX_BITS: u32 = 1 << 30;

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xff51_afd7_ed55_8ccd;
const LOWER: u64 = 0x2020_2020_2020_2020;

/// The hash of the gram starting at `text[at]` (`text` holds at least [`GRAM_LEN`] bytes
/// from there). Read with one 8-byte load where the buffer allows (see
/// [`crate::tokens::token_hash_at`]).
#[inline]
fn gram_hash(text: &[u8], at: usize) -> u64 {
    let mask = u64::MAX >> (8 * (8 - GRAM_LEN));
    let raw = if at + 8 <= text.len() {
        load8(text, at)
    } else {
        text[at..at + GRAM_LEN]
            .iter()
            .rev()
            .fold(0u64, |w, &b| (w << 8) | u64::from(b))
    };
    let w = (raw | LOWER) & mask;
    let mut h = w.wrapping_mul(K1);
    h ^= h >> 32;
    h = h.wrapping_mul(K2);
    h ^ (h >> 29)
}

/// Calls `f` with the hash of every winnowed gram of every term run of `text` (repeats
/// included).
pub(crate) fn for_each_winnowed_gram(text: &[u8], mut f: impl FnMut(u64)) {
    let n = text.len();
    let mut hashes: Vec<u64> = Vec::new();
    let mut i = 0;
    while i < n {
        while i < n && !is_term_byte(text[i]) {
            i += 1;
        }
        let s = i;
        while i < n && is_term_byte(text[i]) {
            i += 1;
        }
        if i - s < GRAM_LEN + WINDOW - 1 {
            continue;
        }
        hashes.clear();
        hashes.extend((s..=i - GRAM_LEN).map(|p| gram_hash(text, p)));
        let mut last = None;
        for w in hashes.windows(WINDOW) {
            let m = w.iter().copied().min().unwrap_or_default();
            if last != Some(m) {
                f(m);
                last = Some(m);
            }
        }
    }
}

/// The winnowed grams every line containing `lit` holds (sorted, deduplicated). Any literal
/// works: grams never cross a run boundary of the literal, and a run of the literal lies inside
/// a run of the line.
pub(crate) fn required_grams(lit: &[u8]) -> Vec<u64> {
    let mut v = Vec::new();
    for_each_winnowed_gram(lit, |h| v.push(h));
    v.sort_unstable();
    v.dedup();
    v
}

/// A sparse bloom filter over winnowed gram hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GramFilter {
    k: u8,
    n_bits: u32,
    bits: Vec<u64>,
}

impl GramFilter {
    /// A filter over the winnowed grams of `text`.
    pub(crate) fn build(text: &[u8]) -> Self {
        let mut set = HashSet64::with_capacity(text.len() / 32);
        for_each_winnowed_gram(text, |h| set.insert(h));
        Self::from_hashes(set.len(), set.iter())
    }

    /// A filter sized for `distinct` grams, holding every hash of `hashes`.
    pub(crate) fn from_hashes(distinct: usize, hashes: impl Iterator<Item = u64>) -> Self {
        let n_bits = (distinct * BITS_PER_GRAM).clamp(64, MAX_BITS as usize) as u32;
        let mut f = Self {
            k: PROBES,
            n_bits,
            bits: vec![0; (n_bits as usize).div_ceil(64)],
        };
        for h in hashes {
            for j in 0..u64::from(f.k) {
                let p = f.pos(h, j);
                f.bits[p / 64] |= 1 << (p % 64);
            }
        }
        f
    }

    #[inline]
    fn pos(&self, h: u64, j: u64) -> usize {
        let x = (h & 0xffff_ffff).wrapping_add(j.wrapping_mul(h >> 32)) & 0xffff_ffff;
        ((x * u64::from(self.n_bits)) >> 32) as usize
    }

    /// False means no line of the chunk holds a gram with hash `h`.
    #[inline]
    pub(crate) fn may_contain(&self, h: u64) -> bool {
        (0..u64::from(self.k)).all(|j| {
            let p = self.pos(h, j);
            self.bits[p / 64] & (1 << (p % 64)) != 0
        })
    }

    pub(crate) fn encoded_len(&self) -> usize {
        8 + self.bits.len() * 8
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(GRAM_LEN as u8);
        out.push(WINDOW as u8);
        out.push(self.k);
        out.push(0);
        out.extend_from_slice(&self.n_bits.to_le_bytes());
        for w in &self.bits {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Decodes a filter written by [`GramFilter::encode`]; `None` if the bytes are not one this
    /// version can use (other gram parameters count as not one).
    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let h = b.get(..8)?;
        if usize::from(h[0]) != GRAM_LEN || usize::from(h[1]) != WINDOW || h[2] == 0 || h[2] > 16 {
            return None;
        }
        let n_bits = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        if !(64..=MAX_BITS).contains(&n_bits) {
            return None;
        }
        let words = (n_bits as usize).div_ceil(64);
        let rest = &b[8..];
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
        Some(Self {
            k: h[2],
            n_bits,
            bits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// A chunk holding a line that contains a literal never rejects that literal.
        #[test]
        fn no_false_negatives(
            lines in proptest::collection::vec("[a-fA-F0-9 ._:=/-]{0,60}", 1..20),
            pick in any::<usize>(), a in any::<usize>(), b in any::<usize>(),
        ) {
            let mut text = Vec::new();
            for l in &lines {
                text.extend_from_slice(l.as_bytes());
                text.push(b'\n');
            }
            let f = GramFilter::build(&text);
            let line = &lines[pick % lines.len()];
            let (a, b) = (a % (line.len() + 1), b % (line.len() + 1));
            let lit = &line.as_bytes()[a.min(b)..a.max(b)];
            for h in required_grams(lit) {
                prop_assert!(f.may_contain(h), "literal {:?} of {:?}", lit, line);
            }
            let mut enc = Vec::new();
            f.encode(&mut enc);
            prop_assert_eq!(enc.len(), f.encoded_len());
            prop_assert_eq!(GramFilter::decode(&enc), Some(f));
        }

        #[test]
        fn decode_arbitrary_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = GramFilter::decode(&bytes);
        }
    }

    #[test]
    fn case_is_folded_and_runs_are_not_crossed() {
        let f = GramFilter::build(b"ID=5D41402A-BC4B-4A76-B971-9D911017C592 ok\n");
        for h in required_grams(b"5d41402a-bc4b-4a76-b971-9d911017c592") {
            assert!(f.may_contain(h));
        }
        // A literal spanning a separator needs only grams inside each of its runs.
        let lit = b"\"abcdefghij\" klmnopqrst";
        let mut want = required_grams(b"abcdefghij");
        want.extend(required_grams(b"klmnopqrst"));
        want.sort_unstable();
        want.dedup();
        assert_eq!(required_grams(lit), want);
        assert!(required_grams(b"short").is_empty());
    }

    #[test]
    fn random_ids_are_rejected_by_most_chunks() {
        // 200 chunks of 2,000 random UUIDs each; a UUID of none of them is let through by few.
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let uuid = |next: &mut dyn FnMut() -> u64| {
            let (a, b) = (next(), next());
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            )
        };
        let chunks: Vec<GramFilter> = (0..200)
            .map(|_| {
                let mut text = String::new();
                for _ in 0..2_000 {
                    text.push_str("{\"level\":\"info\",\"req\":\"");
                    text.push_str(&uuid(&mut next));
                    text.push_str("\"}\n");
                }
                GramFilter::build(text.as_bytes())
            })
            .collect();
        let mut passed = 0;
        let mut queries = 0;
        for _ in 0..50 {
            let req = required_grams(uuid(&mut next).as_bytes());
            if req.is_empty() {
                continue;
            }
            queries += 1;
            passed += chunks
                .iter()
                .filter(|c| req.iter().all(|&h| c.may_contain(h)))
                .count();
        }
        assert!(queries > 40);
        // Under 5 % of the chunks per query on average (typically well under 1 %).
        assert!(
            passed * 20 < queries * chunks.len(),
            "{passed} passes over {queries} queries"
        );
    }
}
