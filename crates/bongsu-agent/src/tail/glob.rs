//! Path globs: `*`, `?` and `[...]` inside path components (no `**`).

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::{Error, Result};

/// A compiled glob: literal leading directories, then one regex per remaining component.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    pattern: String,
    base: PathBuf,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Pattern(Regex),
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn component_regex(c: &str) -> String {
    let mut re = String::from("^");
    let mut chars = c.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Result<Self> {
        if !pattern.starts_with('/') {
            return Err(Error::Config(format!(
                "log path glob {pattern:?} must be absolute (start with /)"
            )));
        }
        let mut base = PathBuf::from("/");
        let mut parts = Vec::new();
        for c in pattern.split('/').filter(|c| !c.is_empty()) {
            if has_meta(c) {
                let re = component_regex(c);
                let re = Regex::new(&re).map_err(|source| Error::Regex {
                    field: "logs.paths",
                    pattern: pattern.to_owned(),
                    source,
                })?;
                parts.push(Part::Pattern(re));
            } else if parts.is_empty() {
                base.push(c);
            } else {
                parts.push(Part::Literal(c.to_owned()));
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            base,
            parts,
        })
    }

    /// Whether the file name of `path` matches this glob's last component (for excludes
    /// written as `*.gz`) or the whole path matches.
    pub(crate) fn matches(&self, path: &Path) -> bool {
        let mut comps: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let base: Vec<String> = self
            .base
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        if comps.len() != base.len() + self.parts.len() || comps[..base.len()] != base[..] {
            return false;
        }
        let rest = comps.split_off(base.len());
        rest.iter().zip(&self.parts).all(|(c, p)| match p {
            Part::Literal(l) => l == c,
            Part::Pattern(re) => re.is_match(c),
        })
    }

    /// Regular files that match now, sorted.
    pub(crate) fn expand(&self) -> Vec<PathBuf> {
        let mut current = vec![self.base.clone()];
        for part in &self.parts {
            let mut next = Vec::new();
            for dir in &current {
                match part {
                    Part::Literal(l) => next.push(dir.join(l)),
                    Part::Pattern(re) => {
                        let Ok(entries) = std::fs::read_dir(dir) else {
                            continue;
                        };
                        for e in entries.flatten() {
                            if re.is_match(&e.file_name().to_string_lossy()) {
                                next.push(e.path());
                            }
                        }
                    }
                }
            }
            current = next;
        }
        let mut files: Vec<PathBuf> = current
            .into_iter()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        files.sort();
        files
    }

    pub(crate) fn pattern(&self) -> &str {
        &self.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_and_matches() {
        let d = tempfile::tempdir().unwrap();
        for p in ["a/x.log", "a/y.log", "a/z.txt", "b/x.log", "a/x.log.1"] {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let g = Glob::new(&format!("{}/*/*.log", d.path().display())).unwrap();
        let got: Vec<_> = g
            .expand()
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(got, ["a/x.log", "a/y.log", "b/x.log"]);
        let g = Glob::new(&format!("{}/a/[xy].lo?", d.path().display())).unwrap();
        assert_eq!(g.expand().len(), 2);
        assert!(g.matches(&d.path().join("a/x.log")));
        assert!(!g.matches(&d.path().join("a/z.log")));
        assert!(Glob::new("relative/*.log").is_err());
    }
}
