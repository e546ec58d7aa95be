//! The hwmon collector: temperatures from `/sys/class/hwmon/hwmon*/temp*_{input,max,crit}`,
//! with node_exporter's chip naming (from the `device` link, else the `name` file).

use std::path::Path;

use crate::metrics::Metrics;
use crate::paths::HostPaths;
use crate::Result;

/// Lower-cases and replaces every character outside `[a-z0-9:_]` by `_`, trimming `_`.
fn clean_name(s: &str) -> String {
    let lower = s.trim().to_lowercase();
    let replaced: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    replaced.trim_matches('_').to_owned()
}

/// The chip label for one hwmon directory.
pub(crate) fn chip_name(dir: &Path) -> Option<String> {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let name = dev.file_name().map(|n| clean_name(&n.to_string_lossy()));
        let kind = dev
            .parent()
            .and_then(Path::file_name)
            .map(|n| clean_name(&n.to_string_lossy()));
        match (kind, name) {
            (Some(k), Some(n)) if !k.is_empty() && !n.is_empty() => {
                return Some(format!("{k}_{n}"))
            }
            (_, Some(n)) if !n.is_empty() => return Some(n),
            _ => {}
        }
    }
    if let Ok(raw) = std::fs::read_to_string(dir.join("name")) {
        let n = clean_name(&raw);
        if !n.is_empty() {
            return Some(n);
        }
    }
    let real = std::fs::canonicalize(dir).ok()?;
    let n = clean_name(&real.file_name()?.to_string_lossy());
    (!n.is_empty()).then_some(n)
}

pub(crate) fn collect(paths: &HostPaths, out: &mut Metrics) -> Result<()> {
    let class = paths.sys("class/hwmon");
    // No hwmon class (containers, many VMs) is not an error: there is simply nothing to report.
    let Ok(entries) = std::fs::read_dir(&class) else {
        return Ok(());
    };
    let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let Some(chip) = chip_name(&dir) else {
            continue;
        };
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = files
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for file in names {
            let Some(rest) = file.strip_prefix("temp") else {
                continue;
            };
            let Some((num, element)) = rest.split_once('_') else {
                continue;
            };
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let metric = match element {
                "input" => "node_hwmon_temp_celsius",
                "max" => "node_hwmon_temp_max_celsius",
                "crit" => "node_hwmon_temp_crit_celsius",
                _ => continue,
            };
            let Ok(raw) = std::fs::read_to_string(dir.join(&file)) else {
                continue;
            };
            let Ok(milli) = raw.trim().parse::<f64>() else {
                continue;
            };
            let sensor = format!("temp{num}");
            out.gauge(
                metric,
                &format!("Hardware monitor for temperature ({element})"),
                &[("chip", &chip), ("sensor", &sensor)],
                milli / 1000.0,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fixture_tree() {
        let root = tempfile::tempdir().unwrap();
        let dev = root.path().join("sys/devices/platform/coretemp.0");
        std::fs::create_dir_all(&dev).unwrap();
        let hw = root.path().join("sys/class/hwmon/hwmon0");
        std::fs::create_dir_all(&hw).unwrap();
        std::os::unix::fs::symlink(&dev, hw.join("device")).unwrap();
        std::fs::write(hw.join("temp1_input"), "45000\n").unwrap();
        std::fs::write(hw.join("temp1_crit"), "100000\n").unwrap();
        std::fs::write(hw.join("temp1_label"), "Core 0\n").unwrap();
        let hw1 = root.path().join("sys/class/hwmon/hwmon1");
        std::fs::create_dir_all(&hw1).unwrap();
        std::fs::write(hw1.join("name"), "acpitz\n").unwrap();
        std::fs::write(hw1.join("temp2_input"), "27800\n").unwrap();

        let mut m = Metrics::new(0);
        collect(&HostPaths::under(root.path()), &mut m).unwrap();
        assert_eq!(
            m.find(
                "node_hwmon_temp_celsius",
                &[("chip", "platform_coretemp_0"), ("sensor", "temp1")]
            ),
            Some(45.0)
        );
        assert_eq!(
            m.find(
                "node_hwmon_temp_crit_celsius",
                &[("chip", "platform_coretemp_0")]
            ),
            Some(100.0)
        );
        assert_eq!(
            m.find(
                "node_hwmon_temp_celsius",
                &[("chip", "acpitz"), ("sensor", "temp2")]
            ),
            Some(27.8)
        );
        assert_eq!(m.len(), 3);
    }
}
