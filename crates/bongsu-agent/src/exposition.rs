//! A minimal parser for Prometheus's text exposition format, used to compare the
//! agent's output with node_exporter's.

use std::collections::{BTreeMap, BTreeSet};

use crate::{Error, Result};

/// One parsed sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpositionSample {
    pub name: String,
    /// Label pairs in name order, `__name__` excluded.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses exposition text (format 0.0.4). `# HELP`/`# TYPE` and other comments are skipped;
/// timestamps after the value are ignored.
pub fn parse_exposition(text: &str) -> Result<Vec<ExpositionSample>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |detail: &str| Error::Exposition {
            line: i + 1,
            detail: detail.to_owned(),
        };
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .ok_or_else(|| err("a sample needs a value after its name"))?;
        let name = &line[..name_end];
        if name.is_empty() {
            return Err(err("empty metric name"));
        }
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let (parsed, tail) = parse_labels(after).map_err(|d| err(&d))?;
            labels = parsed;
            rest = tail;
        }
        let value_text = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| err("missing value"))?;
        let value = match value_text {
            "+Inf" | "Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().map_err(|_| err("value is not a number"))?,
        };
        out.push(ExpositionSample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

type Parsed<'a> = (BTreeMap<String, String>, &'a str);

fn parse_labels(mut s: &str) -> std::result::Result<Parsed<'_>, String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let name = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start();
        s = s.strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(name, value);
        s = s[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        }
    }
}

/// The label-name sets one metric name has on each side: (name, ours, theirs).
pub type LabelMismatch = (
    String,
    BTreeSet<BTreeSet<String>>,
    BTreeSet<BTreeSet<String>>,
);

/// How two exposition outputs overlap, by metric name and by (name, label names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlap {
    pub names_both: BTreeSet<String>,
    pub names_only_ours: BTreeSet<String>,
    pub names_only_theirs: BTreeSet<String>,
    /// Names present in both whose label-name sets differ: (name, ours, theirs).
    pub label_mismatches: Vec<LabelMismatch>,
    /// Full series (name + label pairs) present in both.
    pub series_both: usize,
    pub series_only_ours: usize,
    pub series_only_theirs: usize,
}

/// Compares our samples with a peer's (names, label names, and exact series identities).
pub fn compare_exposition(ours: &[ExpositionSample], theirs: &[ExpositionSample]) -> Overlap {
    fn shapes(s: &[ExpositionSample]) -> BTreeMap<String, BTreeSet<BTreeSet<String>>> {
        let mut m: BTreeMap<String, BTreeSet<BTreeSet<String>>> = BTreeMap::new();
        for x in s {
            m.entry(x.name.clone())
                .or_default()
                .insert(x.labels.keys().cloned().collect());
        }
        m
    }
    fn series(s: &[ExpositionSample]) -> BTreeSet<(String, Vec<(String, String)>)> {
        s.iter()
            .map(|x| {
                (
                    x.name.clone(),
                    x.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }
    let a = shapes(ours);
    let b = shapes(theirs);
    let mut o = Overlap::default();
    for (name, la) in &a {
        match b.get(name) {
            Some(lb) => {
                o.names_both.insert(name.clone());
                if la != lb {
                    o.label_mismatches
                        .push((name.clone(), la.clone(), lb.clone()));
                }
            }
            None => {
                o.names_only_ours.insert(name.clone());
            }
        }
    }
    for name in b.keys() {
        if !a.contains_key(name) {
            o.names_only_theirs.insert(name.clone());
        }
    }
    let sa = series(ours);
    let sb = series(theirs);
    o.series_both = sa.intersection(&sb).count();
    o.series_only_ours = sa.difference(&sb).count();
    o.series_only_theirs = sb.difference(&sa).count();
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_names_labels_values() {
        let text =
            "# HELP a x\n# TYPE a gauge\na 1\nb{x=\"1\",y=\"q\\\"\\n\"} 2.5 1700000000\nc{} +Inf\n";
        let s = parse_exposition(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "a");
        assert_eq!(s[1].labels.get("y").map(String::as_str), Some("q\"\n"));
        assert_eq!(s[1].value, 2.5);
        assert!(s[2].value.is_infinite());
        assert!(parse_exposition("x{a=1} 2").is_err());
        assert!(parse_exposition("x").is_err());
    }

    #[test]
    fn overlap_counts() {
        let ours = parse_exposition("a{d=\"1\"} 1\nb 2\n").unwrap();
        let theirs = parse_exposition("a{d=\"1\"} 1\na{d=\"2\"} 1\nc 3\n").unwrap();
        let o = compare_exposition(&ours, &theirs);
        assert_eq!(o.names_both.len(), 1);
        assert!(o.names_only_ours.contains("b"));
        assert!(o.names_only_theirs.contains("c"));
        assert!(o.label_mismatches.is_empty());
        assert_eq!(
            (o.series_both, o.series_only_ours, o.series_only_theirs),
            (1, 1, 2)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = parse_exposition(&s);
        }
    }
}
