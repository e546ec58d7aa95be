//! The checked-in store of format version 1 (`tests/fixtures/v1/`) must stay readable.
//! `BONGSU_BLESS=1` rewrites it (only do that together with a format version bump).

use std::path::{Path, PathBuf};

use bongsu_logstore::{Config, Direction, LogStore, ResultData};
use bongsu_model::{Label, LogEntry};

use crate::labels;

const T0: i64 = 1_700_000_000_000_000_000;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

fn write_fixture(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let mut st = LogStore::open(dir, Config::default()).unwrap();
    let a = labels(r#"{app="api", env="prod"}"#);
    let b = labels(r#"{app="worker"}"#);
    st.append(
        0,
        0,
        &a,
        &[
            LogEntry::new(T0, "GET /users 200 12ms"),
            LogEntry::new(T0 + 5, "GET /orders 500 250ms"),
        ],
    )
    .unwrap();
    let mut e = LogEntry::new(T0 + 2, "job 17 done");
    e.structured_metadata = vec![Label::new("trace_id", "abc123")];
    st.append(1, 0, &b, &[e]).unwrap();
    st.flush().unwrap();
    st.append(0, 1, &a, &[LogEntry::new(T0 + 10, "POST /login 302 3ms")])
        .unwrap();
    st.flush().unwrap();
}

#[test]
fn format_v1_fixture_is_readable() {
    let dir = fixture_dir();
    if std::env::var_os("BONGSU_BLESS").is_some() {
        write_fixture(&dir);
    }
    // Open a copy: opening may delete stray files, and the fixture must stay as checked in.
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&dir).expect("fixture present") {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    let st = LogStore::open(tmp.path(), Config::default()).unwrap();
    assert_eq!(st.applied_offsets(), vec![(0, 2), (1, 1)]);
    assert_eq!(st.stats().segments, 2);
    let r = st
        .query_range(
            r#"{app=~"api|worker"} | trace_id="abc123" or status=~".*""#,
            0,
            i64::MAX,
            1,
            100,
            Direction::Forward,
        )
        .unwrap();
    let ResultData::Streams(s) = r.data else {
        panic!("streams expected")
    };
    let got: Vec<(String, i64, String)> = s
        .iter()
        .flat_map(|s| {
            s.entries
                .iter()
                .map(move |(t, l)| (s.labels.to_string(), *t - T0, l.clone()))
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                r#"{app="api", env="prod"}"#.to_owned(),
                0,
                "GET /users 200 12ms".to_owned()
            ),
            (
                r#"{app="api", env="prod"}"#.to_owned(),
                5,
                "GET /orders 500 250ms".to_owned()
            ),
            (
                r#"{app="api", env="prod"}"#.to_owned(),
                10,
                "POST /login 302 3ms".to_owned()
            ),
            (
                r#"{app="worker", trace_id="abc123"}"#.to_owned(),
                2,
                "job 17 done".to_owned()
            ),
        ]
    );
}
