//! Required literals of line filters: byte strings every line passing the filter contains.
//!
//! `|= "lit"` requires `lit`. For `|~ "re"` the regex's syntax tree is walked as ripgrep's
//! inner-literal extraction does, keeping only what is certain: a concatenation requires each
//! maximal run of adjacent literals in it (and what its other parts require), a group or a
//! repetition of at least one requires what its body requires; alternations, classes (so
//! case-insensitive text) and optional parts require nothing.

use regex_syntax::hir::{Hir, HirKind};

use crate::logql::ast::{LineFilter, LineOp};

/// The literals a line passing `f` must contain (possibly none).
pub(crate) fn required_literals(f: &LineFilter) -> Vec<Vec<u8>> {
    match f.op {
        LineOp::Contains if !f.pattern.is_empty() => vec![f.pattern.as_bytes().to_vec()],
        LineOp::Match => regex_required_literals(&f.pattern),
        _ => Vec::new(),
    }
}

/// The literals every match of `pattern` contains (none when it does not parse).
pub(crate) fn regex_required_literals(pattern: &str) -> Vec<Vec<u8>> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern);
    let mut out = Vec::new();
    if let Ok(h) = hir {
        walk(&h, &mut out);
    }
    out.retain(|l| !l.is_empty());
    out.sort();
    out.dedup();
    out
}

fn walk(h: &Hir, out: &mut Vec<Vec<u8>>) {
    match h.kind() {
        HirKind::Literal(l) => out.push(l.0.to_vec()),
        HirKind::Capture(c) => walk(&c.sub, out),
        HirKind::Repetition(r) if r.min >= 1 => walk(&r.sub, out),
        HirKind::Concat(subs) => {
            let mut run: Vec<u8> = Vec::new();
            for s in subs {
                let mut s = s;
                while let HirKind::Capture(c) = s.kind() {
                    s = &c.sub;
                }
                match s.kind() {
                    HirKind::Literal(l) => run.extend_from_slice(&l.0),
                    // A look-around matches no bytes: the literals around it stay adjacent.
                    HirKind::Look(_) => {}
                    _ => {
                        out.push(std::mem::take(&mut run));
                        walk(s, out);
                    }
                }
            }
            out.push(run);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lits(p: &str) -> Vec<String> {
        regex_required_literals(p)
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn extraction() {
        assert_eq!(lits("needle"), ["needle"]);
        assert_eq!(lits(r"\bneedle\b"), ["needle"]);
        assert_eq!(lits(r"qx[0-9]+zv"), ["qx", "zv"]);
        assert_eq!(
            lits(r"user=(\w+) id=(abc)-([0-9]{3})x"),
            [" id=abc-", "user=", "x"]
        );
        assert_eq!(lits(r"(timeout)+ after"), [" after", "timeout"]);
        assert!(lits("foo|bar").is_empty());
        assert!(lits("(?i)needle").is_empty());
        assert_eq!(lits("a(bc)?d"), ["a", "d"]);
        assert!(lits("(").is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Every required literal of a regex occurs in every text it matches.
        #[test]
        fn required_literals_occur_in_every_match(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[a-c]{1,3}".prop_map(|s| s),
                    Just("[0-9]+".to_owned()),
                    Just("(ab|c)".to_owned()),
                    Just(r"\b".to_owned()),
                    Just("x?".to_owned()),
                    "[a-c]{1,2}".prop_map(|s| format!("({s})+")),
                ],
                1..6,
            ),
            text in "[a-c0-9 x]{0,30}",
        ) {
            let pat = parts.concat();
            let re = regex::bytes::Regex::new(&pat).unwrap();
            if let Some(m) = re.find(text.as_bytes()) {
                let hay = m.as_bytes();
                for l in regex_required_literals(&pat) {
                    prop_assert!(
                        memchr::memmem::find(hay, &l).is_some(),
                        "{:?} in match {:?} of {:?}", l, hay, pat
                    );
                }
            }
        }
    }
}
