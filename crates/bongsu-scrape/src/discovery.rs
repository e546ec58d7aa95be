//! File-based target discovery (`file_sd_configs`): JSON or YAML files holding lists of
//! `{targets: [...], labels: {...}}`, found by pattern, re-read when they change and at least
//! every `refresh_interval`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::config::{FileSdConfig, TargetGroup};

/// The label holding the file a target came from.
pub(crate) const META_FILEPATH: &str = "__meta_filepath";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Parses one discovery file by its extension.
pub(crate) fn parse_file(path: &Path, text: &str) -> Result<Vec<TargetGroup>, String> {
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let raw: Vec<RawGroup> = if is_json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?
    };
    let source = path.display().to_string();
    let mut groups = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        if let Some(bad) = g.labels.keys().find(|k| !crate::relabel::is_label_name(k)) {
            return Err(format!("group {i}: invalid label name {bad:?}"));
        }
        groups.push(TargetGroup {
            targets: g.targets,
            labels: g.labels,
            source: format!("{source} group {i}"),
        });
    }
    Ok(groups)
}

/// The files a pattern names now: the file itself, or the directory's entries matching the
/// one `*` of the last path element.
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    let Some((prefix, suffix)) = name.split_once('*') else {
        return vec![pattern.to_owned()];
    };
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            (n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix))
                .then(|| dir.join(n))
        })
        .collect();
    out.sort();
    out
}

type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// The state of one `file_sd_configs` entry: the groups of each file as last read.
#[derive(Debug)]
pub(crate) struct FileDiscovery {
    config: FileSdConfig,
    fingerprint: Option<Fingerprint>,
    last_read: Option<Instant>,
    groups: BTreeMap<PathBuf, Vec<TargetGroup>>,
}

impl FileDiscovery {
    pub(crate) fn new(config: FileSdConfig) -> FileDiscovery {
        FileDiscovery {
            config,
            fingerprint: None,
            last_read: None,
            groups: BTreeMap::new(),
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut fp: Fingerprint = self
            .config
            .files
            .iter()
            .flat_map(|p| expand(p))
            .map(|p| {
                let meta = std::fs::metadata(&p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (p, meta)
            })
            .collect();
        fp.sort();
        fp.dedup();
        fp
    }

    /// Re-reads the files when they changed (added, removed, modified) or `refresh_interval`
    /// passed. Returns whether the groups may have changed, and the read errors (a file that
    /// cannot be read or parsed keeps its previous groups). Blocking: call off the runtime.
    pub(crate) fn poll(&mut self) -> (bool, Vec<String>) {
        let fp = self.fingerprint();
        let due = self
            .last_read
            .is_none_or(|t| t.elapsed() >= self.config.refresh_interval);
        if !due && self.fingerprint.as_ref() == Some(&fp) {
            return (false, Vec::new());
        }
        let mut errors = Vec::new();
        let mut groups = BTreeMap::new();
        for (path, _) in &fp {
            let read = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| parse_file(path, &t));
            match read {
                Ok(g) => {
                    groups.insert(path.clone(), g);
                }
                Err(e) => {
                    errors.push(format!("file_sd: cannot use {}: {e}", path.display()));
                    if let Some(old) = self.groups.get(path) {
                        groups.insert(path.clone(), old.clone());
                    }
                }
            }
        }
        let changed = groups != self.groups;
        self.groups = groups;
        self.fingerprint = Some(fp);
        self.last_read = Some(Instant::now());
        (changed, errors)
    }

    /// The groups with their `__meta_filepath` label.
    pub(crate) fn groups(&self) -> impl Iterator<Item = (&TargetGroup, [(String, String); 1])> {
        self.groups.iter().flat_map(|(path, gs)| {
            gs.iter()
                .map(move |g| (g, [(META_FILEPATH.to_owned(), path.display().to_string())]))
        })
    }
}

/// How often discovery files are checked for changes (cheap: metadata only).
pub(crate) const FILE_SD_CHECK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_files() {
        let g = parse_file(
            Path::new("a.json"),
            r#"[{"targets": ["h:1", "h:2"], "labels": {"env": "dev"}}, {"targets": []}]"#,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].targets, ["h:1", "h:2"]);
        assert_eq!(g[0].labels["env"], "dev");
        let g = parse_file(Path::new("a.yml"), "- targets: [x:1]\n  labels: {a: b}\n").unwrap();
        assert_eq!(g[0].targets, ["x:1"]);
        assert!(parse_file(Path::new("a.yaml"), "").unwrap().is_empty());
        assert!(parse_file(Path::new("a.json"), "[{\"target\": []}]")
            .unwrap_err()
            .contains("unknown field `target`"));
        assert!(
            parse_file(Path::new("a.json"), "[{\"labels\": {\"1x\": \"v\"}}]")
                .unwrap_err()
                .contains("invalid label name")
        );
    }

    #[test]
    fn globs_changes_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("tg_a.json"), r#"[{"targets": ["a:1"]}]"#).unwrap();
        std::fs::write(p("tg_b.yml"), "- targets: [b:1]\n").unwrap();
        std::fs::write(p("other.json"), r#"[{"targets": ["o:1"]}]"#).unwrap();
        let mut d = FileDiscovery::new(FileSdConfig {
            files: vec![p("tg_*.json"), p("tg_b.yml")],
            refresh_interval: Duration::from_secs(3600),
        });
        let (changed, errs) = d.poll();
        assert!(changed && errs.is_empty());
        let targets = |d: &FileDiscovery| {
            d.groups()
                .flat_map(|(g, m)| g.targets.iter().map(move |t| format!("{t}@{}", m[0].1)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            targets(&d),
            [
                format!("a:1@{}", p("tg_a.json").display()),
                format!("b:1@{}", p("tg_b.yml").display())
            ]
        );
        // Nothing changed: no re-read.
        assert_eq!(d.poll(), (false, vec![]));
        // A new matching file is picked up.
        std::fs::write(p("tg_c.json"), r#"[{"targets": ["c:1", "c:2"]}]"#).unwrap();
        assert!(d.poll().0);
        assert_eq!(targets(&d).len(), 4);
        // A broken file keeps its previous groups and reports why.
        std::fs::write(p("tg_c.json"), "[{").unwrap();
        let (changed, errs) = d.poll();
        assert!(!changed);
        assert!(errs[0].contains("tg_c.json"), "{errs:?}");
        assert_eq!(targets(&d).len(), 4);
        // A removed file removes its targets.
        std::fs::remove_file(p("tg_c.json")).unwrap();
        assert!(d.poll().0);
        assert_eq!(targets(&d).len(), 2);
    }
}
