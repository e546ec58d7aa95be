//! The workload as OpenMetrics text, for tools that backfill from it
//! (`promtool tsdb create-blocks-from openmetrics`).

use std::io::{self, Write};

use crate::workload::Workload;

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Writes every sample of `start_ms..end_ms` as OpenMetrics text, each metric family's
/// series together (families as `unknown` type), ending with `# EOF`. Returns the number
/// of samples written.
pub fn write_openmetrics(
    w: &Workload,
    start_ms: i64,
    end_ms: i64,
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut series = w.series();
    series.sort_by(|a, b| a.name().cmp(b.name()));
    let mut n = 0u64;
    for s in &series {
        let labels: Vec<String> = s
            .labels()
            .iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let head = format!("{}{{{}}}", s.name(), labels.join(","));
        for t in s.timestamps(start_ms, end_ms, w.interval_ms) {
            let v = s.value_at(t, w.interval_ms);
            writeln!(
                out,
                "{head} {} {}.{:03}",
                fmt_value(v),
                t.div_euclid(1000),
                t.rem_euclid(1000)
            )?;
            n += 1;
        }
    }
    writeln!(out, "# EOF")?;
    Ok(n)
}
