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

#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Calls `f` with the hash of every token of `text` (words and terms).
pub(crate) fn for_each_token(text: &[u8], mut f: impl FnMut(u64)) {
    let n = text.len();
    let mut i = 0;
    while i < n {
        // Skip separators.
        while i < n && CLASS[text[i] as usize] & TERM == 0 {
            i += 1;
        }
        if i >= n {
            break;
        }
        // A term run [i, j), hashing the word runs inside it as they end.
        let start = i;
        let mut has_punct = false;
        let mut word_start = i;
        while i < n {
            let c = CLASS[text[i] as usize];
            if c & TERM == 0 {
                break;
            }
            if c & WORD == 0 {
                has_punct = true;
                if i - word_start >= MIN_TOKEN_LEN {
                    f(token_hash_at(text, word_start, i));
                }
                word_start = i + 1;
            }
            i += 1;
        }
        if i - word_start >= MIN_TOKEN_LEN {
            f(token_hash_at(text, word_start, i));
        }
        if has_punct && i - start >= MIN_TOKEN_LEN {
            f(token_hash_at(text, start, i));
        }
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
