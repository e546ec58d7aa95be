//! Golden query tests: every `tests/golden/*.case` holds a query with its time range and the
//! expected result over the shared input `tests/golden/input.log`. Run with `BONGSU_BLESS=1`
//! to rewrite the expected parts after an intended change.
//!
//! Case format: header lines `key: value` (`query`, `start`, `end`, `step` in seconds relative
//! to the input's base time, `limit`, `direction`, `instant`), a line `---`, then the result.
//! Input format: `<seconds> <labels> <line>`, seconds relative to the base time (decimals allowed).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use bongsu_logstore::{format_value, Config, Direction, LogStore, ResultData};
use bongsu_model::LogEntry;

const S: i64 = 1_000_000_000;
pub(crate) const BASE: i64 = 1_700_000_000 * S;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn secs(s: &str) -> i64 {
    let v: f64 = s
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad seconds {s:?}"));
    BASE + (v * 1e9).round() as i64
}

fn load_input(store: &mut LogStore) {
    let text = std::fs::read_to_string(golden_dir().join("input.log")).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    for (off, row) in rows.iter().enumerate() {
        let (ts, rest) = row.split_once(' ').unwrap();
        let close = rest.find('}').unwrap();
        let labels = crate::labels(&rest[..=close]);
        let line = rest[close + 1..].trim_start();
        store
            .append(0, off as u64, &labels, &[LogEntry::new(secs(ts), line)])
            .unwrap();
        // Half the input goes to a segment, the rest stays in memory: both paths are queried.
        if off == rows.len() / 2 {
            store.flush().unwrap();
        }
    }
}

fn rel(ns: i64) -> String {
    let d = ns - BASE;
    if d % S == 0 {
        format!("{}", d / S)
    } else {
        format!("{:.3}", d as f64 / 1e9)
    }
}

fn run_case(store: &LogStore, header: &str) -> String {
    let mut query = String::new();
    let (mut start, mut end, mut step, mut limit) =
        ("0".to_owned(), "3600".to_owned(), "60".to_owned(), 100usize);
    let mut dir = Direction::Forward;
    let mut instant: Option<String> = None;
    for line in header.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().to_owned();
        match k.trim() {
            "query" => query = v,
            "start" => start = v,
            "end" => end = v,
            "step" => step = v,
            "limit" => limit = v.parse().unwrap(),
            "direction" => {
                dir = if v == "backward" {
                    Direction::Backward
                } else {
                    Direction::Forward
                }
            }
            "instant" => instant = Some(v),
            other => panic!("unknown header {other:?}"),
        }
    }
    let res = match &instant {
        Some(t) => store.query_instant(&query, secs(t)),
        None => store.query_range(
            &query,
            secs(&start),
            secs(&end),
            secs(&step) - BASE,
            limit,
            dir,
        ),
    };
    let mut out = String::new();
    match res {
        Err(e) => writeln!(out, "error: {e}").unwrap(),
        Ok(r) => match r.data {
            ResultData::Streams(streams) => {
                writeln!(out, "streams").unwrap();
                for s in streams {
                    writeln!(out, "{}", s.labels).unwrap();
                    for (ts, line) in s.entries {
                        writeln!(out, "  {} {}", rel(ts), line).unwrap();
                    }
                }
            }
            ResultData::Vector(v) => {
                writeln!(out, "vector").unwrap();
                for s in v {
                    writeln!(
                        out,
                        "{} @{} {}",
                        s.labels,
                        rel(s.timestamp_ns),
                        format_value(s.value)
                    )
                    .unwrap();
                }
            }
            ResultData::Matrix(m) => {
                writeln!(out, "matrix").unwrap();
                for s in m {
                    writeln!(out, "{}", s.labels).unwrap();
                    let pts: Vec<String> = s
                        .values
                        .iter()
                        .map(|(t, v)| format!("{}={}", rel(*t), format_value(*v)))
                        .collect();
                    writeln!(out, "  {}", pts.join(" ")).unwrap();
                }
            }
        },
    }
    out
}

#[test]
fn golden_queries() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), Config::default()).unwrap();
    load_input(&mut store);
    let bless = std::env::var_os("BONGSU_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "golden cases missing");
    let mut failures = Vec::new();
    for path in &cases {
        let text = std::fs::read_to_string(path).unwrap();
        let (header, expected) = match text.split_once("\n---\n") {
            Some((h, e)) => (h.to_owned(), e.to_owned()),
            None => (text.trim_end().to_owned(), String::new()),
        };
        let got = run_case(&store, &header);
        if bless {
            std::fs::write(path, format!("{header}\n---\n{got}")).unwrap();
        } else if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ (BONGSU_BLESS=1 rewrites them):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
