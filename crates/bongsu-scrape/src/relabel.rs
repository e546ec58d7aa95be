//! Prometheus relabeling: `relabel_configs` (targets) and `metric_relabel_configs` (samples).
//!
//! Semantics follow Prometheus's documentation: the source labels' values are joined with
//! `separator`, the `regex` is anchored at both ends, `replacement` may use `$1`, `${1}` and
//! named groups, and each rule sees the result of the rules before it.

use bongsu_model::Labels;
use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelabelAction {
    /// Sets `target_label` to the expanded `replacement` when `regex` matches.
    Replace,
    /// Drops the series or target when `regex` does not match.
    Keep,
    /// Drops the series or target when `regex` matches.
    Drop,
    /// Sets `target_label` to the hash of the joined source values modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source values in lower case.
    Lowercase,
    /// Sets `target_label` to the joined source values in upper case.
    Uppercase,
    /// Drops unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drops when the joined source values equal `target_label`'s value.
    DropEqual,
}

impl RelabelAction {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Self::Replace,
            "keep" => Self::Keep,
            "drop" => Self::Drop,
            "hashmod" => Self::HashMod,
            "labelmap" => Self::LabelMap,
            "labeldrop" => Self::LabelDrop,
            "labelkeep" => Self::LabelKeep,
            "lowercase" => Self::Lowercase,
            "uppercase" => Self::Uppercase,
            "keepequal" => Self::KeepEqual,
            "dropequal" => Self::DropEqual,
            _ => {
                return Err(Error::config(format!(
                    "unknown relabel action {s:?}: use replace, keep, drop, hashmod, labelmap, \
                     labeldrop, labelkeep, lowercase, uppercase, keepequal or dropequal"
                )))
            }
        })
    }
}

/// One rule as written in the YAML file (every field optional, Prometheus's defaults apply).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelabel {
    #[serde(default)]
    source_labels: Vec<String>,
    separator: Option<String>,
    regex: Option<String>,
    target_label: Option<String>,
    replacement: Option<String>,
    modulus: Option<u64>,
    action: Option<String>,
}

/// A validated, compiled relabel rule.
#[derive(Debug, Clone)]
pub struct RelabelRule {
    action: RelabelAction,
    source_labels: Vec<String>,
    separator: String,
    regex_src: String,
    regex: Regex,
    target_label: String,
    replacement: String,
    modulus: u64,
}

impl PartialEq for RelabelRule {
    fn eq(&self, o: &Self) -> bool {
        self.action == o.action
            && self.source_labels == o.source_labels
            && self.separator == o.separator
            && self.regex_src == o.regex_src
            && self.target_label == o.target_label
            && self.replacement == o.replacement
            && self.modulus == o.modulus
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A target label of a `replace` rule: a label name that may contain `$1`, `${1}` or `$name`.
fn is_templated_label_name(s: &str) -> bool {
    let re = Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$");
    re.map(|re| re.is_match(s)).unwrap_or(false)
}

/// Compiles `regex` anchored at both ends, as Prometheus does (`.` also matches newlines).
pub(crate) fn anchored(regex: &str) -> Result<Regex> {
    Regex::new(&format!("^(?s:{regex})$"))
        .map_err(|e| Error::config(format!("invalid regex {regex:?}: {e}")))
}

impl RelabelRule {
    /// Validates and compiles a rule as written in YAML.
    pub(crate) fn from_raw(raw: RawRelabel) -> Result<RelabelRule> {
        let action = RelabelAction::parse(raw.action.as_deref().unwrap_or("replace"))?;
        let regex_src = raw.regex.clone().unwrap_or_else(|| "(.*)".to_owned());
        let regex = anchored(&regex_src)?;
        let name = |a: RelabelAction| format!("{a:?}").to_ascii_lowercase();
        for l in &raw.source_labels {
            if !is_label_name(l) {
                return Err(Error::config(format!(
                    "invalid source label {l:?}: label names match [a-zA-Z_][a-zA-Z0-9_]*"
                )));
            }
        }
        let target = raw.target_label.clone().unwrap_or_default();
        match action {
            RelabelAction::Replace | RelabelAction::HashMod if target.is_empty() => {
                return Err(Error::config(format!(
                    "relabel action {} needs a target_label",
                    name(action)
                )))
            }
            RelabelAction::Replace if !is_templated_label_name(&target) => {
                return Err(Error::config(format!(
                    "invalid target_label {target:?} for replace: use a label name, optionally with $1 or ${{name}}"
                )))
            }
            RelabelAction::Lowercase
            | RelabelAction::Uppercase
            | RelabelAction::KeepEqual
            | RelabelAction::DropEqual
            | RelabelAction::HashMod
                if !is_label_name(&target) =>
            {
                return Err(Error::config(format!(
                    "relabel action {} needs a target_label that is a label name, got {target:?}",
                    name(action)
                )))
            }
            _ => {}
        }
        if action == RelabelAction::HashMod && raw.modulus.unwrap_or(0) == 0 {
            return Err(Error::config(
                "relabel action hashmod needs a modulus of at least 1",
            ));
        }
        if matches!(action, RelabelAction::KeepEqual | RelabelAction::DropEqual)
            && (raw.regex.is_some() || raw.replacement.is_some() || raw.modulus.is_some())
        {
            return Err(Error::config(format!(
                "relabel action {} uses only source_labels, separator and target_label",
                name(action)
            )));
        }
        if matches!(action, RelabelAction::LabelDrop | RelabelAction::LabelKeep)
            && (!raw.source_labels.is_empty()
                || raw.target_label.is_some()
                || raw.modulus.is_some()
                || raw.separator.is_some()
                || raw.replacement.is_some())
        {
            return Err(Error::config(format!(
                "relabel action {} uses only regex: remove the other fields",
                name(action)
            )));
        }
        Ok(RelabelRule {
            action,
            source_labels: raw.source_labels,
            separator: raw.separator.unwrap_or_else(|| ";".to_owned()),
            regex_src,
            regex,
            target_label: target,
            replacement: raw.replacement.unwrap_or_else(|| "$1".to_owned()),
            modulus: raw.modulus.unwrap_or(0),
        })
    }

    /// The rule's action.
    pub fn action(&self) -> RelabelAction {
        self.action
    }

    /// Applies this rule; returns false when the series or target is dropped.
    fn apply(&self, labels: &mut Labels) -> bool {
        let val = self
            .source_labels
            .iter()
            .map(|n| labels.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            RelabelAction::Keep => return self.regex.is_match(&val),
            RelabelAction::Drop => return !self.regex.is_match(&val),
            RelabelAction::KeepEqual => return labels.get(&self.target_label).unwrap_or("") == val,
            RelabelAction::DropEqual => return labels.get(&self.target_label).unwrap_or("") != val,
            RelabelAction::Replace => {
                let Some(caps) = self.regex.captures(&val) else {
                    return true;
                };
                let mut target = String::new();
                caps.expand(&self.target_label, &mut target);
                if !is_label_name(&target) {
                    return true;
                }
                let mut value = String::new();
                caps.expand(&self.replacement, &mut value);
                // An empty value removes the label.
                labels.set(&target, &value);
            }
            RelabelAction::Lowercase => labels.set(&self.target_label, &val.to_lowercase()),
            RelabelAction::Uppercase => labels.set(&self.target_label, &val.to_uppercase()),
            RelabelAction::HashMod => {
                let m = hash_mod(&val, self.modulus);
                labels.set(&self.target_label, &m.to_string());
            }
            RelabelAction::LabelMap => {
                let copies: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|l| {
                        let caps = self.regex.captures(&l.name)?;
                        let mut name = String::new();
                        caps.expand(&self.replacement, &mut name);
                        Some((name, l.value.clone()))
                    })
                    .collect();
                for (name, value) in copies {
                    if is_label_name(&name) {
                        labels.set(&name, &value);
                    }
                }
            }
            RelabelAction::LabelDrop | RelabelAction::LabelKeep => {
                let keep_matching = self.action == RelabelAction::LabelKeep;
                let doomed: Vec<String> = labels
                    .iter()
                    .filter(|l| self.regex.is_match(&l.name) != keep_matching)
                    .map(|l| l.name.clone())
                    .collect();
                for name in doomed {
                    labels.remove(&name);
                }
            }
        }
        true
    }
}

/// Prometheus's hashmod: the last 8 bytes of the MD5 of `val`, big-endian, modulo `modulus`.
pub(crate) fn hash_mod(val: &str, modulus: u64) -> u64 {
    let digest = Md5::digest(val.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(tail) % modulus.max(1)
}

/// Applies `rules` in order to `labels`; false when a rule dropped them. A label set left
/// empty also counts as dropped.
pub fn relabel(labels: &mut Labels, rules: &[RelabelRule]) -> bool {
    for rule in rules {
        if !rule.apply(labels) {
            return false;
        }
    }
    !labels.is_empty()
}

/// Compiles rules from their YAML form, naming the position of a bad one.
pub(crate) fn compile(raw: Vec<RawRelabel>, what: &str) -> Result<Vec<RelabelRule>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            RelabelRule::from_raw(r).map_err(|e| match e {
                Error::Config { message, .. } => Error::config(format!("{what}[{i}]: {message}")),
                other => other,
            })
        })
        .collect()
}

/// Parses rules from YAML text (a list of relabel configs), for tests and tools.
pub fn parse_relabel_rules(yaml: &str) -> Result<Vec<RelabelRule>> {
    let raw: Vec<RawRelabel> = serde_yaml_ng::from_str(yaml)
        .map_err(|e| Error::config(format!("relabel_configs: {e}")))?;
    compile(raw, "relabel_configs")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<Labels> {
        let rules = parse_relabel_rules(yaml).unwrap();
        let mut l = labels(input);
        relabel(&mut l, &rules).then_some(l)
    }

    // The cases below are Prometheus's documented examples (configuration reference and the
    // relabel package's tests), re-expressed in YAML.

    #[test]
    fn replace_with_groups_and_defaults() {
        let out = run(
            r#"
- source_labels: [a]
  regex: "f(.*)"
  target_label: d
  separator: ";"
  replacement: "ch${1}-ch${1}"
"#,
            &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        );
        assert_eq!(
            out,
            Some(labels(&[
                ("a", "foo"),
                ("b", "bar"),
                ("c", "baz"),
                ("d", "choo-choo")
            ]))
        );
        // Two source labels joined by the separator; the regex is anchored.
        let out = run(
            r#"
- source_labels: [a, b]
  regex: "f(.*);(.*)r"
  target_label: a
  replacement: "b${1}${2}m"
"#,
            &[("a", "foo"), ("b", "bar")],
        );
        assert_eq!(out, Some(labels(&[("a", "boobam"), ("b", "bar")])));
        // No match: nothing changes.
        let out = run(
            r#"
- source_labels: [a]
  regex: "o"
  target_label: a
  replacement: x
"#,
            &[("a", "foo")],
        );
        assert_eq!(out, Some(labels(&[("a", "foo")])));
        // Defaults: regex (.*), replacement $1 copies a label.
        let out = run("- source_labels: [a]\n  target_label: z\n", &[("a", "foo")]);
        assert_eq!(out, Some(labels(&[("a", "foo"), ("z", "foo")])));
    }

    #[test]
    fn replace_to_empty_removes_and_invalid_target_is_skipped() {
        let out = run(
            "- source_labels: [a]\n  regex: '(f).*'\n  target_label: b\n  replacement: ''\n",
            &[("a", "foo"), ("b", "bar")],
        );
        assert_eq!(out, Some(labels(&[("a", "foo")])));
        // Target name from a group; "1a" is not a valid label name: no change.
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: '${1}'\n  replacement: v\n",
            &[("a", "1a")],
        );
        assert_eq!(out, Some(labels(&[("a", "1a")])));
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: 'x_${1}'\n  replacement: v\n",
            &[("a", "some")],
        );
        assert_eq!(out, Some(labels(&[("a", "some"), ("x_some", "v")])));
        // $1x names a group "1x" (Go's and Prometheus's rule): expands to empty.
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: b\n  replacement: '$1x'\n",
            &[("a", "foo"), ("b", "keep")],
        );
        assert_eq!(out, Some(labels(&[("a", "foo")])));
    }

    #[test]
    fn keep_and_drop_are_anchored() {
        let keep = "- source_labels: [a]\n  regex: 'f.*'\n  action: keep\n";
        assert!(run(keep, &[("a", "foo")]).is_some());
        assert!(run(keep, &[("a", "xfoo")]).is_none());
        let drop = "- source_labels: [a]\n  regex: 'o+'\n  action: drop\n";
        // "o+" does not match "foo" as a whole.
        assert!(run(drop, &[("a", "foo")]).is_some());
        assert!(run(drop, &[("a", "oo")]).is_none());
        // A missing label is the empty string.
        let drop_empty = "- source_labels: [missing]\n  regex: ''\n  action: drop\n";
        assert!(run(drop_empty, &[("a", "foo")]).is_none());
        // Prometheus's example: keep only jobs matching a pattern, drop one instance.
        let yaml = r#"
- source_labels: [__name__]
  regex: "node_(cpu|memory)_.*"
  action: keep
- source_labels: [__name__, mode]
  regex: "node_cpu_seconds_total;idle"
  action: drop
"#;
        assert!(run(
            yaml,
            &[("__name__", "node_cpu_seconds_total"), ("mode", "user")]
        )
        .is_some());
        assert!(run(
            yaml,
            &[("__name__", "node_cpu_seconds_total"), ("mode", "idle")]
        )
        .is_none());
        assert!(run(yaml, &[("__name__", "node_load1")]).is_none());
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // From Prometheus's relabel tests: md5("foo") tail % 1000 = 976... computed below
        // independently from the digest bytes.
        let d = Md5::digest(b"foo");
        let expect = u64::from_be_bytes(d[8..16].try_into().unwrap()) % 1000;
        let out = run(
            "- source_labels: [c]\n  target_label: d\n  modulus: 1000\n  action: hashmod\n",
            &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        )
        .unwrap();
        let d = Md5::digest(b"baz");
        let baz = u64::from_be_bytes(d[8..16].try_into().unwrap()) % 1000;
        assert_eq!(out.get("d"), Some(baz.to_string().as_str()));
        assert_eq!(hash_mod("foo", 1000), expect);
        // Prometheus's test expects 976 for "baz" modulo 1000.
        assert_eq!(baz, 976);
        // Sharding: keep only shard 1 of 2.
        let yaml = "- source_labels: [__address__]\n  target_label: __tmp_hash\n  modulus: 2\n  action: hashmod\n- source_labels: [__tmp_hash]\n  regex: '1'\n  action: keep\n";
        let kept = (0..100)
            .filter(|i| run(yaml, &[("__address__", &format!("h{i}:9100"))]).is_some())
            .count();
        assert!(kept > 20 && kept < 80, "{kept} of 100 kept");
    }

    #[test]
    fn labelmap_copies_matching_names() {
        let out = run(
            "- regex: '__meta_kubernetes_node_label_(.+)'\n  action: labelmap\n",
            &[
                ("__meta_kubernetes_node_label_zone", "a"),
                ("__meta_kubernetes_node_label_arch", "amd64"),
                ("other", "x"),
            ],
        )
        .unwrap();
        assert_eq!(out.get("zone"), Some("a"));
        assert_eq!(out.get("arch"), Some("amd64"));
        assert_eq!(out.get("__meta_kubernetes_node_label_zone"), Some("a"));
        assert_eq!(out.len(), 5);
        // Prometheus's test: replacement with a prefix.
        let out = run(
            "- regex: '(b.*)'\n  replacement: 'bar_${1}'\n  action: labelmap\n",
            &[("a", "foo"), ("b", "bar"), ("c", "baz")],
        )
        .unwrap();
        assert_eq!(
            out,
            labels(&[("a", "foo"), ("b", "bar"), ("bar_b", "bar"), ("c", "baz")])
        );
    }

    #[test]
    fn labeldrop_and_labelkeep() {
        let input = [("a", "foo"), ("b", "bar"), ("c", "baz")];
        assert_eq!(
            run("- regex: 'a|b'\n  action: labeldrop\n", &input),
            Some(labels(&[("c", "baz")]))
        );
        assert_eq!(
            run("- regex: 'a|b'\n  action: labelkeep\n", &input),
            Some(labels(&[("a", "foo"), ("b", "bar")]))
        );
        // Anchored: "a" does not drop "ab".
        assert_eq!(
            run("- regex: 'a'\n  action: labeldrop\n", &[("ab", "1")]),
            Some(labels(&[("ab", "1")]))
        );
        // Dropping every label drops the series.
        assert_eq!(run("- regex: '.*'\n  action: labeldrop\n", &input), None);
    }

    #[test]
    fn case_and_equality_actions() {
        let out = run(
            "- source_labels: [a]\n  target_label: b\n  action: uppercase\n- source_labels: [a]\n  target_label: c\n  action: lowercase\n",
            &[("a", "FoO")],
        )
        .unwrap();
        assert_eq!(out.get("b"), Some("FOO"));
        assert_eq!(out.get("c"), Some("foo"));
        let keq = "- source_labels: [a]\n  target_label: b\n  action: keepequal\n";
        assert!(run(keq, &[("a", "x"), ("b", "x")]).is_some());
        assert!(run(keq, &[("a", "x"), ("b", "y")]).is_none());
        let deq = "- source_labels: [a]\n  target_label: b\n  action: dropequal\n";
        assert!(run(deq, &[("a", "x"), ("b", "x")]).is_none());
    }

    #[test]
    fn invalid_rules_are_refused_with_a_reason() {
        let err = |y: &str| parse_relabel_rules(y).unwrap_err().to_string();
        assert!(err("- action: replace\n  source_labels: [a]\n").contains("needs a target_label"));
        assert!(err("- action: hashmod\n  target_label: x\n").contains("modulus"));
        assert!(err("- action: explode\n").contains("unknown relabel action"));
        assert!(err("- regex: '('\n  target_label: x\n").contains("invalid regex"));
        assert!(err("- regex: a\n  action: labeldrop\n  target_label: x\n").contains("only regex"));
        assert!(err("- regexp: a\n").contains("unknown field `regexp`"));
        assert!(err("- {action: keep}\n- action: nope\n").contains("relabel_configs[1]"));
        assert!(
            err("- source_labels: ['1bad']\n  target_label: x\n").contains("invalid source label")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// Any rule that compiles can be applied to any label set without panicking, and the
        /// result is a valid label set (sorted, unique names, no empty values).
        #[test]
        fn any_rule_on_any_labels(
            action in proptest::sample::select(vec!["replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase"]),
            regex in "[a-c().*$|]{0,6}",
            replacement in "[a-c$0-9{}_]{0,6}",
            pairs in proptest::collection::btree_map("[a-c_]{1,3}", "[a-c]{0,3}", 0..5),
        ) {
            let yaml = format!(
                "- action: {action}\n  regex: '{regex}'\n  source_labels: [a, b]\n  target_label: t\n  replacement: '{replacement}'\n  modulus: 3\n"
            );
            let yaml_label_only = format!("- action: {action}\n  regex: '{regex}'\n");
            let rules = parse_relabel_rules(&yaml).or_else(|_| parse_relabel_rules(&yaml_label_only));
            if let Ok(rules) = rules {
                let mut l = Labels::from_pairs(pairs).unwrap();
                if relabel(&mut l, &rules) {
                    let v = l.as_slice();
                    proptest::prop_assert!(v.windows(2).all(|w| w[0].name < w[1].name));
                    proptest::prop_assert!(v.iter().all(|x| !x.value.is_empty() && is_label_name(&x.name)));
                }
            }
        }
    }
}
