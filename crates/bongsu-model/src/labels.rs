use std::fmt;

use crate::{Error, Result};

/// The label that holds a metric's name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    pub name: String,
    pub value: String,
}

impl Label {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A label set: pairs sorted by name, each name at most once. Labels with an empty
/// value are dropped on construction, as Prometheus treats them as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Self(Vec::new())
    }

    /// Builds a label set from pairs in any order, refusing duplicate or empty names.
    pub fn new(mut labels: Vec<Label>) -> Result<Self> {
        labels.retain(|l| !l.value.is_empty());
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for pair in labels.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(Error::DuplicateLabel(pair[0].name.clone()));
            }
        }
        if labels.iter().any(|l| l.name.is_empty()) {
            return Err(Error::EmptyLabelName);
        }
        Ok(Self(labels))
    }

    /// Builds a label set from `(name, value)` pairs; see [`Labels::new`].
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Self>
    where
        N: Into<String>,
        V: Into<String>,
    {
        Self::new(pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The value of `__name__`, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// Sets `name` to `value` (removes it when `value` is empty), keeping the order.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].value = value.to_owned(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0.remove(i).value)
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Prometheus's notation: `name{a="x", b="y"}`, with `\\`, `"` and newlines escaped.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(name) = name {
            f.write_str(name)?;
        }
        let mut rest = self.0.iter().filter(|l| l.name != METRIC_NAME).peekable();
        if name.is_some() && rest.peek().is_none() {
            return Ok(());
        }
        f.write_str("{")?;
        let mut first = true;
        for l in rest {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}=\"", l.name)?;
            for c in l.value.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sorts_and_rejects_duplicates() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("__name__", "up")]).unwrap();
        let names: Vec<_> = l.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "a", "b"]);
        assert_eq!(l.get("a"), Some("1"));
        assert_eq!(l.metric_name(), Some("up"));
        assert_eq!(
            Labels::from_pairs([("a", "1"), ("a", "2")]),
            Err(Error::DuplicateLabel("a".into()))
        );
        assert_eq!(Labels::from_pairs([("", "1")]), Err(Error::EmptyLabelName));
    }

    #[test]
    fn empty_values_are_absent() {
        let mut l = Labels::from_pairs([("a", ""), ("b", "x")]).unwrap();
        assert_eq!(l.len(), 1);
        l.set("b", "");
        assert!(l.is_empty());
        l.set("c", "3");
        l.set("a", "1");
        assert_eq!(l.to_string(), r#"{a="1", c="3"}"#);
        assert_eq!(l.remove("a").as_deref(), Some("1"));
    }

    #[test]
    fn display_escapes() {
        let l = Labels::from_pairs([("__name__", "m"), ("p", "a\"b\\c\nd")]).unwrap();
        assert_eq!(l.to_string(), r#"m{p="a\"b\\c\nd"}"#);
        let bare = Labels::from_pairs([("__name__", "up")]).unwrap();
        assert_eq!(bare.to_string(), "up");
        assert_eq!(Labels::empty().to_string(), "{}");
    }

    proptest! {
        #[test]
        fn construction_is_order_independent(mut pairs in proptest::collection::btree_map("[a-z]{1,4}", "[a-z]{0,3}", 0..8)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()), seed in any::<u64>()) {
            let a = Labels::from_pairs(pairs.clone()).unwrap();
            let k = (seed as usize) % (pairs.len().max(1));
            pairs.rotate_left(k);
            let b = Labels::from_pairs(pairs).unwrap();
            prop_assert_eq!(&a, &b);
            for w in a.as_slice().windows(2) {
                prop_assert!(w[0].name < w[1].name);
            }
        }
    }
}
