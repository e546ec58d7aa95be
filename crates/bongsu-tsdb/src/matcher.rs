use regex::Regex;

use crate::{Error, Result};

/// How a [`Matcher`] compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

/// A label matcher with Prometheus's semantics: a series without the label is treated as
/// having the empty value, so `{a=""}` selects series without `a`, and regexes are fully
/// anchored (`=~"fo"` does not match `"foo"`).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling the regex of `=~`/`!~` with `^(?:...)$` anchoring.
    pub fn new(op: MatchOp, name: impl Into<String>, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?s:{value})$")).map_err(|e| Error::InvalidRegex {
                    pattern: value.clone(),
                    reason: e.to_string(),
                })?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            re,
        })
    }

    /// `name="value"`
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            re: None,
        }
    }

    /// `name!="value"`
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            op: MatchOp::NotEqual,
            value: value.into(),
            re: None,
        }
    }

    /// Whether a label value (`""` when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == value,
            MatchOp::NotEqual => self.value != value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a series with these labels is selected.
    pub fn matches_labels(&self, labels: &bongsu_model::Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// When the regex is a plain alternation of literals (`a|b|c`), those literals.
    pub(crate) fn literal_set(&self) -> Option<Vec<&str>> {
        if !matches!(self.op, MatchOp::Regex) {
            return None;
        }
        let special = |c: char| "\\.+*?()|[]{}^$".contains(c);
        let parts: Vec<&str> = self.value.split('|').collect();
        if parts.iter().any(|p| p.is_empty() || p.chars().any(special)) {
            return None;
        }
        Some(parts)
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{}{:?}", self.name, op, self.value)
    }
}
