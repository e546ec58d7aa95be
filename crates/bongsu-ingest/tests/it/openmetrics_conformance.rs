//! Runs the OpenMetrics project's parser test cases: each case is a `metrics` file and a
//! `test.json` saying whether a parser must accept it.

use std::path::{Path, PathBuf};

use bongsu_ingest::{parse_exposition, ExpositionFormat, Limits};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/openmetrics/tests/testdata/parsers")
}

#[test]
fn openmetrics_parser_cases() {
    let dir = cases_dir();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("test.json").is_file())
        .collect();
    entries.sort();
    let mut correct = 0;
    let mut wrong = Vec::new();
    for case in &entries {
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        let file = spec["file"].as_str().unwrap_or("metrics");
        let should_parse = spec["shouldParse"].as_bool().unwrap_or(false);
        let input = std::fs::read(case.join(file)).unwrap();
        let got = parse_exposition(
            &input,
            ExpositionFormat::OpenMetrics,
            1_700_000_000_000,
            &Limits::default(),
        );
        if got.is_ok() == should_parse {
            correct += 1;
        } else {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            wrong.push(format!(
                "{name}: expected accept={should_parse}, got {:?}",
                got.err()
            ));
        }
    }
    println!(
        "openmetrics: {correct} of {} correctly accepted/rejected",
        entries.len()
    );
    for w in &wrong {
        println!("  wrong: {w}");
    }
    let floor: usize = include_str!("../openmetrics_floor.txt")
        .trim()
        .parse()
        .expect("tests/openmetrics_floor.txt holds a number");
    assert_eq!(entries.len(), 211, "the OpenMetrics test data changed");
    assert!(
        correct >= floor,
        "openmetrics conformance dropped to {correct}, floor is {floor}"
    );
}
