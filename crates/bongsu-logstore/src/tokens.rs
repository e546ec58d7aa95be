//! Tokenization for the per-chunk token filter.
//!
//! A line yields two kinds of tokens, both lowercased (ASCII only), both only when at least
//! [`MIN_TOKEN_LEN`] bytes long:
//!
//! - **words**: maximal runs of ASCII letters and digits (`[A-Za-z0-9]+`);
//! - **terms**: maximal runs of `[A-Za-z0-9._:-]+` that contain at least one of `. _ : -`, so
//!   IP addresses, host names, ids such as `req-7f3a` or `10.0.0.1:8080` are indexed whole.
//!
//! Every other byte (spaces, punctuation, any non-ASCII byte) separates tokens.

use crate::bloom::Bloom;
use crate::hashset::HashSet64;

/// Tokens shorter than this are not indexed (and never required by a query).
pub(crate) const MIN_TOKEN_LEN: usize = 2;

const WORD: u8 = 1;
const TERM: u8 = 2;

/// Byte classes: `WORD | TERM` for `[A-Za-z0-9]`, `TERM` for `. _ : -`, 0 otherwise.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = WORD | TERM;
        } else if matches!(c, b'.' | b'_' | b':' | b'-') {
            t[b] = TERM;
        }
        b += 1;
    }
    t
};

#[inline]
pub(crate) fn is_word_byte(b: u8) -> bool {
    CLASS[b as usize] & WORD != 0
}

#[inline]
pub(crate) fn is_term_byte(b: u8) -> bool {
    CLASS[b as usize] & TERM != 0
}

const K: u64 = 0x9e37_79b9_7f4a_7c15;
const LOWER: u64 = 0x2020_2020_2020_2020;

/// Hash of a token as stored in the filter (see `docs/formats/logstore.md`): 8 bytes at a time,
/// each byte OR 0x20 (which lowercases ASCII letters and leaves digits, `.`, `:`, `-` alone;
/// `_` becomes 0x7f, which no other token byte becomes), mixed by multiply-rotate, finished
/// with the MurmurHash3 64-bit finalizer.
#[inline]
pub(crate) fn token_hash(tok: &[u8]) -> u64 {
    token_hash_at(tok, 0, tok.len())
}

/// [`token_hash`] of `text[start..end]`. The last partial word is read with one 8-byte load
/// when `text` has 8 bytes from its start (then masked): copying it into a zeroed array
/// first made the next load wait on the copy's stores, the largest cost of tokenizing.
#[inline]
pub(crate) fn token_hash_at(text: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    let mut h = (len as u64).wrapping_mul(K);
    let mut at = start;
    while at + 8 <= end {
        h = (h ^ (load8(text, at) | LOWER))
            .wrapping_mul(K)
            .rotate_left(29);
        at += 8;
    }
    let rem = end - at;
    if rem > 0 {
        let keep = u64::MAX >> (8 * (8 - rem));
        let w = if at + 8 <= text.len() {
            load8(text, at) & keep
        } else {
            text[at..end]
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b))
        };
        h = (h ^ (w | (LOWER & keep))).wrapping_mul(K).rotate_left(29);
    }
    fmix64(h)
}

/// The 8 bytes of `text` from `at` as a little-endian word (`at + 8 <= text.len()`).
#[inline]
pub(crate) fn load8(text: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&text[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The MurmurHash3 64-bit finalizer (a bijection).
#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Calls `f` with the hash of every token of `text` (words and terms), in no particular order.
#[cfg(test)]
pub(crate) fn for_each_token(text: &[u8], mut f: impl FnMut(u64)) {
    for_each_token_unmixed(text, |h| f(fmix64(h)));
}

/// The token filter of `text`: a [`Bloom`] sized for its distinct tokens, holding every one.
/// `expected` is a guess of the distinct tokens (the dedup set starts at that size).
///
/// The set deduplicates the hashes before their finalizer ([`fmix64`] is a bijection, so
/// distinct tokens are distinct either way): the finalizer runs once per distinct token
/// instead of once per token.
pub(crate) fn filter(text: &[u8], expected: usize) -> Bloom {
    let mut set = HashSet64::with_capacity(expected);
    for_each_token_unmixed(text, |h| set.insert(h));
    Bloom::build_from(set.len(), set.iter().map(fmix64))
}

/// [`token_hash_at`] without the finalizer: `fmix64(unmixed_hash_at(..)) == token_hash_at(..)`.
#[inline(always)]
fn unmixed_hash_at(text: &[u8], start: usize, end: usize) -> u64 {
    let len = end - start;
    let h = (len as u64).wrapping_mul(K);
    // Most tokens are at most 8 bytes long: one load, no loop.
    if len <= 8 && start + 8 <= text.len() {
        let keep = u64::MAX >> (8 * (8 - len));
        return (h ^ ((load8(text, start) | LOWER) & keep))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    unmixed_hash_long(text, start, end, h)
}

#[inline(never)]
fn unmixed_hash_long(text: &[u8], start: usize, end: usize, mut h: u64) -> u64 {
    let mut at = start;
    while at + 8 <= end {
        h = (h ^ (load8(text, at) | LOWER))
            .wrapping_mul(K)
            .rotate_left(29);
        at += 8;
    }
    let rem = end - at;
    if rem > 0 {
        let keep = u64::MAX >> (8 * (8 - rem));
        let w = if at + 8 <= text.len() {
            load8(text, at) & keep
        } else {
            text[at..end]
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b))
        };
        h = (h ^ (w | (LOWER & keep))).wrapping_mul(K).rotate_left(29);
    }
    h
}

/// `b` in every byte.
const fn rep(b: u8) -> u64 {
    b as u64 * 0x0101_0101_0101_0101
}

const HIGH: u64 = rep(0x80);

/// The word bytes (`[A-Za-z0-9]`) and the punctuation bytes (`. _ : -`) of the 8 bytes of `x`:
/// 0x80 in each such byte, 0 elsewhere. Each byte's low 7 bits `t` are tested against a range
/// `[lo, hi]` by adding constants: `t + (0x80 - lo)` reaches bit 7 exactly when `t >= lo`,
/// `t + (0x7f - hi)` exactly when `t > hi`, and no sum carries into the next byte; bytes with
/// bit 7 set (non-ASCII) are then cleared.
#[inline(always)]
fn classify8(x: u64) -> (u64, u64) {
    let t = x & rep(0x7f);
    let ascii = !x & HIGH;
    let lower = t | rep(0x20);
    let letter = (lower + rep(0x80 - b'a')) ^ (lower + rep(0x7f - b'z'));
    let ge_0 = t + rep(0x80 - b'0');
    let gt_9 = t + rep(0x7f - b'9');
    let digit = ge_0 ^ gt_9;
    let colon = gt_9 ^ (t + rep(0x7f - b':'));
    // '-' and '.' are adjacent.
    let dash_dot = (t + rep(0x80 - b'-')) ^ (t + rep(0x7f - b'.'));
    let underscore = (t + rep(0x80 - b'_')) ^ (t + rep(0x7f - b'_'));
    (
        (letter | digit) & ascii,
        (colon | dash_dot | underscore) & ascii,
    )
}

/// One bit per byte from a mask with 0x80 or 0 in each byte (bit `i` = byte `i`): every
/// byte's bit lands in a distinct position of the top byte, so nothing carries.
#[inline(always)]
fn pack8(m: u64) -> u64 {
    (m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Word and punctuation bit masks of up to 64 bytes (bit `i` = byte `i`; bytes past the end
/// of `block` are separators).
#[inline(always)]
fn classify_block(block: &[u8]) -> (u64, u64) {
    let mut word = 0;
    let mut punct = 0;
    if block.len() == 64 {
        for (i, c) in block.chunks_exact(8).enumerate() {
            let (w, p) = classify8(load8(c, 0));
            word |= pack8(w) << (8 * i);
            punct |= pack8(p) << (8 * i);
        }
    } else {
        let mut a = [0u8; 64];
        a[..block.len()].copy_from_slice(block);
        for (i, c) in a.chunks_exact(8).enumerate() {
            let (w, p) = classify8(load8(c, 0));
            word |= pack8(w) << (8 * i);
            punct |= pack8(p) << (8 * i);
        }
    }
    (word, punct)
}

/// Calls `f` with [`unmixed_hash_at`] of every token of `text` (words, then terms, per block
/// of 64 bytes).
///
/// Each block is classified into bit masks (`word`, `punct`, `term = word | punct`); a run's
/// start and end are the bits where a mask changes from the byte before, visited with
/// `trailing_zeros`. A run may go on over several blocks: its start is kept, and for a term
/// whether it has shown punctuation so far.
#[inline(always)]
fn for_each_token_unmixed(text: &[u8], mut f: impl FnMut(u64)) {
    let n = text.len();
    // The last byte of the previous block was a word / term byte (0 or 1).
    let mut word_open = 0u64;
    let mut term_open = 0u64;
    let mut word_start = 0usize;
    let mut term_start = 0usize;
    let mut term_punct = false;
    let mut base = 0;
    loop {
        // The last block is shorter than 64 bytes (possibly empty): its top bit is a
        // separator, so every run ends before the loop does.
        let last = base + 64 > n;
        let (word, punct) = classify_block(&text[base..n.min(base + 64)]);
        let term = word | punct;

        // Words: changes alternate start, end, start, ...
        let mut edges = word ^ ((word << 1) | word_open);
        if word_open != 0 && edges != 0 {
            let end = base + edges.trailing_zeros() as usize;
            edges &= edges - 1;
            if end - word_start >= MIN_TOKEN_LEN {
                f(unmixed_hash_at(text, word_start, end));
            }
        }
        while edges != 0 {
            let s = edges.trailing_zeros() as usize;
            edges &= edges - 1;
            if edges == 0 {
                word_start = base + s;
                break;
            }
            let e = edges.trailing_zeros() as usize;
            edges &= edges - 1;
            if e - s >= MIN_TOKEN_LEN {
                f(unmixed_hash_at(text, base + s, base + e));
            }
        }

        // Terms: only those holding punctuation (the others are words, hashed above).
        let mut edges = term ^ ((term << 1) | term_open);
        if term_open != 0 {
            if edges == 0 {
                term_punct |= punct != 0;
            } else {
                let e = edges.trailing_zeros();
                edges &= edges - 1;
                let end = base + e as usize;
                if (term_punct || punct & ((1u64 << e) - 1) != 0)
                    && end - term_start >= MIN_TOKEN_LEN
                {
                    f(unmixed_hash_at(text, term_start, end));
                }
            }
        }
        while edges != 0 {
            let s = edges.trailing_zeros();
            edges &= edges - 1;
            if edges == 0 {
                term_start = base + s as usize;
                term_punct = punct >> s != 0;
                break;
            }
            let e = edges.trailing_zeros();
            edges &= edges - 1;
            if (punct & ((1u64 << e) - 1)) >> s != 0 && e - s >= MIN_TOKEN_LEN as u32 {
                f(unmixed_hash_at(text, base + s as usize, base + e as usize));
            }
        }

        if last {
            break;
        }
        word_open = word >> 63;
        term_open = term >> 63;
        base += 64;
    }
}

/// The tokens that every line containing `lit` must hold whole.
///
/// `open_start`/`open_end` say whether the text may continue before/after the literal (true for
/// a plain substring match); a run touching an open edge may be part of a longer token in the
/// line, so it is not required. A regex literal anchored by `\b` or `^`/`$` has closed edges for
/// words (and `^`/`$` also for terms).
pub(crate) fn required_tokens(
    lit: &[u8],
    word_open_start: bool,
    word_open_end: bool,
    term_open_start: bool,
    term_open_end: bool,
) -> Vec<u64> {
    let mut out = Vec::new();
    let n = lit.len();
    // words
    let mut i = 0;
    while i < n {
        if !is_word_byte(lit[i]) {
            i += 1;
            continue;
        }
        let s = i;
        while i < n && is_word_byte(lit[i]) {
            i += 1;
        }
        let touches_start = s == 0 && word_open_start;
        let touches_end = i == n && word_open_end;
        if !touches_start && !touches_end && i - s >= MIN_TOKEN_LEN {
            out.push(token_hash(&lit[s..i]));
        }
    }
    // terms (only those with punctuation are indexed as terms)
    let mut i = 0;
    while i < n {
        if !is_term_byte(lit[i]) {
            i += 1;
            continue;
        }
        let s = i;
        let mut has_punct = false;
        while i < n && is_term_byte(lit[i]) {
            has_punct |= !is_word_byte(lit[i]);
            i += 1;
        }
        let touches_start = s == 0 && term_open_start;
        let touches_end = i == n && term_open_end;
        if has_punct && !touches_start && !touches_end && i - s >= MIN_TOKEN_LEN {
            out.push(token_hash(&lit[s..i]));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hash as the format defines it, written plainly (the tail zero-padded).
    fn reference_hash(tok: &[u8]) -> u64 {
        let mut h = (tok.len() as u64).wrapping_mul(K);
        for c in tok.chunks(8) {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            let mask = LOWER >> (8 * (8 - c.len()));
            h = (h ^ (u64::from_le_bytes(a) | mask))
                .wrapping_mul(K)
                .rotate_left(29);
        }
        fmix64(h)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Filters on disk hold these hashes: the fast load must give the format's value for
        /// any token anywhere in any buffer (near its end included).
        #[test]
        fn hash_at_any_position_is_the_formats_hash(
            text in proptest::collection::vec(any::<u8>(), 1..40),
            a in 0usize..40,
            b in 0usize..40,
        ) {
            let (s, e) = (a.min(b).min(text.len()), a.max(b).min(text.len()));
            prop_assert_eq!(token_hash_at(&text, s, e), reference_hash(&text[s..e]));
            prop_assert_eq!(token_hash(&text[s..e]), reference_hash(&text[s..e]));
        }
    }

    #[test]
    fn hash_of_a_known_token_is_stable() {
        // Pinned: changing it would make every filter written before unreadable.
        assert_eq!(token_hash(b"needle"), reference_hash(b"needle"));
        assert_eq!(
            token_hash(b"needle"),
            0x66e2_b563_0d9e_e2e2,
            "{:#x}",
            token_hash(b"needle")
        );
    }

    fn toks(s: &str) -> Vec<u64> {
        let mut v = Vec::new();
        for_each_token(s.as_bytes(), |h| v.push(h));
        v
    }

    /// The tokenizer as the format defines it, one byte at a time: every word and every term
    /// holding punctuation, each at least [`MIN_TOKEN_LEN`] bytes long.
    fn reference_tokens(text: &[u8]) -> Vec<u64> {
        let mut out = Vec::new();
        let runs = |is: fn(u8) -> bool| {
            let mut v = Vec::new();
            let mut i = 0;
            while i < text.len() {
                if !is(text[i]) {
                    i += 1;
                    continue;
                }
                let s = i;
                while i < text.len() && is(text[i]) {
                    i += 1;
                }
                v.push(&text[s..i]);
            }
            v
        };
        for w in runs(is_word_byte) {
            if w.len() >= MIN_TOKEN_LEN {
                out.push(reference_hash(w));
            }
        }
        for t in runs(is_term_byte) {
            if t.len() >= MIN_TOKEN_LEN && t.iter().any(|&b| !is_word_byte(b)) {
                out.push(reference_hash(t));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Bytes drawn mostly from token classes, so runs are long and cross 64-byte blocks.
    fn texty() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            6 => prop::sample::select(b"aZq09x".to_vec()),
            2 => prop::sample::select(b"._:-".to_vec()),
            2 => prop::sample::select(b" \n=/\"".to_vec()),
            1 => any::<u8>(),
        ];
        prop_oneof![
            proptest::collection::vec(byte, 0..400),
            // Long runs: a word or term spanning several blocks.
            (1usize..200, 0usize..3).prop_map(|(n, k)| {
                let mut v = vec![b'a'; n];
                if k > 0 {
                    v[n / 2] = b'.';
                }
                v
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The block tokenizer finds exactly the format's tokens (same hashes), wherever the
        /// runs start and end relative to its 64-byte blocks.
        #[test]
        fn block_tokenizer_matches_the_reference(text in texty(), pad in 0usize..70) {
            // Offsetting the text moves every run across block boundaries.
            let mut shifted = vec![b' '; pad];
            shifted.extend_from_slice(&text);
            for t in [&text[..], &shifted[..]] {
                let mut got = Vec::new();
                for_each_token(t, |h| got.push(h));
                got.sort_unstable();
                got.dedup();
                prop_assert_eq!(&got, &reference_tokens(t));
                let f = filter(t, 4);
                for h in reference_tokens(t) {
                    prop_assert!(f.may_contain(h));
                }
            }
        }
    }

    #[test]
    fn words_and_terms() {
        let t = toks("GET /api from 10.0.0.1:80 id=req-7F3a x");
        for w in [
            "get",
            "api",
            "from",
            "10",
            "80",
            "id",
            "req",
            "7f3a",
            "10.0.0.1:80",
            "req-7f3a",
        ] {
            assert!(t.contains(&token_hash(w.as_bytes())), "{w}");
        }
        assert!(!t.contains(&token_hash(b"x")));
    }

    #[test]
    fn literal_edges_are_open() {
        assert!(required_tokens(b"needle", true, true, true, true).is_empty());
        assert_eq!(
            required_tokens(b"a needle b", true, true, true, true),
            vec![token_hash(b"needle")]
        );
        assert_eq!(
            required_tokens(b"needle", false, false, true, true),
            vec![token_hash(b"needle")]
        );
        let r = required_tokens(b" ip=10.1.2.3 ", true, true, true, true);
        assert!(r.contains(&token_hash(b"10.1.2.3")));
        assert!(r.contains(&token_hash(b"ip")));
    }
}
