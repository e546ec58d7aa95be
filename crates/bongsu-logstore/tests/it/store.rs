use std::sync::Arc;

use bongsu_logstore::{Config, Direction, Error, LogStore, ManualClock, ResultData};
use bongsu_model::{Label, LogEntry};

use crate::labels;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;

fn lines(r: &bongsu_logstore::QueryResult) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    if let ResultData::Streams(s) = &r.data {
        for st in s {
            out.extend(st.entries.iter().cloned());
        }
    }
    out.sort();
    out
}

fn all(store: &LogStore, q: &str) -> Vec<(i64, String)> {
    lines(
        &store
            .query_range(q, 0, i64::MAX, 1, 1_000_000, Direction::Forward)
            .unwrap(),
    )
}

#[test]
fn recovery_replays_from_applied_offsets_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let l = labels(r#"{app="a"}"#);
    let log: Vec<(u32, u64, LogEntry)> = (0..20u64)
        .map(|i| {
            (
                (i % 2) as u32,
                i / 2,
                LogEntry::new(T0 + i as i64 * S, format!("line {i}")),
            )
        })
        .collect();
    {
        let mut st = LogStore::open(dir.path(), Config::default()).unwrap();
        for (p, o, e) in &log[..12] {
            assert!(st.append(*p, *o, &l, std::slice::from_ref(e)).unwrap());
        }
        st.flush().unwrap();
        for (p, o, e) in &log[12..] {
            st.append(*p, *o, &l, std::slice::from_ref(e)).unwrap();
        }
        assert_eq!(all(&st, r#"{app="a"}"#).len(), 20);
        assert_eq!(st.applied_offsets(), vec![(0, 6), (1, 6)]);
        // dropped without flush: a crash
    }
    let mut st = LogStore::open(dir.path(), Config::default()).unwrap();
    assert_eq!(st.applied_offsets(), vec![(0, 6), (1, 6)]);
    assert_eq!(all(&st, r#"{app="a"}"#).len(), 12);
    // Replay everything (at-least-once delivery): old records are skipped.
    let mut applied = 0;
    for (p, o, e) in &log {
        if st.append(*p, *o, &l, std::slice::from_ref(e)).unwrap() {
            applied += 1;
        }
    }
    assert_eq!(applied, 8);
    let got = all(&st, r#"{app="a"}"#);
    let want: Vec<(i64, String)> = log
        .iter()
        .map(|(_, _, e)| (e.timestamp_ns, e.line.clone()))
        .collect();
    assert_eq!(got, want);
    st.flush().unwrap();
    drop(st);
    let st = LogStore::open(dir.path(), Config::default()).unwrap();
    assert_eq!(all(&st, r#"{app="a"}"#), want);
    assert_eq!(st.applied_offsets(), vec![(0, 10), (1, 10)]);
}

#[test]
fn orphan_segment_from_a_crashed_flush_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let l = labels(r#"{app="a"}"#);
    {
        let mut st = LogStore::open(dir.path(), Config::default()).unwrap();
        st.append(0, 0, &l, &[LogEntry::new(T0, "kept")]).unwrap();
        st.flush().unwrap();
    }
    // A segment written but never listed in the checkpoint.
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap();
    let orphan = dir.path().join("00000000000000000099.seg");
    std::fs::copy(&seg, &orphan).unwrap();
    std::fs::write(dir.path().join("CHECKPOINT.tmp"), b"junk").unwrap();
    let st = LogStore::open(dir.path(), Config::default()).unwrap();
    assert!(!orphan.exists());
    assert!(!dir.path().join("CHECKPOINT.tmp").exists());
    assert_eq!(all(&st, r#"{app="a"}"#), vec![(T0, "kept".to_owned())]);
}

fn flushed_store(dir: &std::path::Path) -> std::path::PathBuf {
    let mut st = LogStore::open(dir, Config::default()).unwrap();
    let l = labels(r#"{app="a"}"#);
    let entries: Vec<LogEntry> = (0..100)
        .map(|i| LogEntry::new(T0 + i, format!("some line number {i}")))
        .collect();
    st.append(0, 0, &l, &entries).unwrap();
    st.flush().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .unwrap()
}

#[test]
fn corrupt_chunk_is_an_error_naming_the_file_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let seg = flushed_store(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a byte inside the first chunk's compressed payload (after the 16-byte segment
    // header and the 40-byte chunk header).
    bytes[16 + 40 + 5] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    let st = LogStore::open(dir.path(), Config::default()).unwrap();
    let err = st
        .query_range(r#"{app="a"}"#, 0, i64::MAX, 1, 10, Direction::Forward)
        .unwrap_err();
    match &err {
        Error::Corrupt { path, .. } => assert_eq!(path, &seg),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string().contains(&seg.display().to_string()),
        "{err}"
    );
}

#[test]
fn corrupt_index_or_checkpoint_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let seg = flushed_store(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 1; // inside the index footer
    std::fs::write(&seg, &bytes).unwrap();
    let err = LogStore::open(dir.path(), Config::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path == &seg),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    flushed_store(dir.path());
    let cp = dir.path().join("CHECKPOINT");
    let mut bytes = std::fs::read(&cp).unwrap();
    bytes[9] ^= 1;
    std::fs::write(&cp, &bytes).unwrap();
    let err = LogStore::open(dir.path(), Config::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path == &cp),
        "{err}"
    );

    // A truncated (torn) segment too.
    let dir = tempfile::tempdir().unwrap();
    let seg = flushed_store(dir.path());
    let bytes = std::fs::read(&seg).unwrap();
    std::fs::write(&seg, &bytes[..bytes.len() - 7]).unwrap();
    let err = LogStore::open(dir.path(), Config::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path == &seg),
        "{err}"
    );
}

#[test]
fn limits_reject_whole_records_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        max_streams: 2,
        max_labels_per_stream: 2,
        max_label_bytes: 8,
        max_line_bytes: 10,
        out_of_order_window_ns: 10 * S,
        ..Config::default()
    };
    let mut st = LogStore::open(dir.path(), cfg).unwrap();
    st.append(0, 0, &labels(r#"{a="1"}"#), &[LogEntry::new(T0, "x")])
        .unwrap();
    st.append(0, 1, &labels(r#"{a="2"}"#), &[LogEntry::new(T0, "x")])
        .unwrap();
    let e = st
        .append(0, 2, &labels(r#"{a="3"}"#), &[LogEntry::new(T0, "x")])
        .unwrap_err();
    assert!(matches!(e, Error::TooManyStreams { limit: 2 }));
    assert!(e.to_string().contains("logstore.max_streams"));
    let e = st
        .append(0, 3, &labels(r#"{a="1", b="2", c="3"}"#), &[])
        .unwrap_err();
    assert!(matches!(e, Error::TooManyLabels { count: 3, limit: 2 }));
    let e = st
        .append(0, 4, &labels(r#"{a="123456789"}"#), &[])
        .unwrap_err();
    assert!(matches!(e, Error::LabelTooLong { .. }));
    let e = st
        .append(
            0,
            5,
            &labels(r#"{a="1"}"#),
            &[
                LogEntry::new(T0, "ok"),
                LogEntry::new(T0, "far too long line"),
            ],
        )
        .unwrap_err();
    assert!(matches!(e, Error::LineTooLong { len: 17, limit: 10 }));
    // Out of order: within the window accepted and returned in order; beyond it rejected whole.
    st.append(
        0,
        6,
        &labels(r#"{a="1"}"#),
        &[
            LogEntry::new(T0 + 20 * S, "c"),
            LogEntry::new(T0 + 15 * S, "b"),
        ],
    )
    .unwrap();
    let e = st
        .append(
            0,
            7,
            &labels(r#"{a="1"}"#),
            &[
                LogEntry::new(T0 + 21 * S, "d"),
                LogEntry::new(T0 + 5 * S, "z"),
            ],
        )
        .unwrap_err();
    assert!(matches!(e, Error::OutOfOrder { .. }), "{e}");
    let got: Vec<String> = all(&st, r#"{a="1"}"#).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, vec!["x", "b", "c"]);
}

#[test]
fn rare_token_search_skips_almost_every_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        chunk_target_bytes: 4096,
        ..Config::default()
    };
    let mut st = LogStore::open(dir.path(), cfg).unwrap();
    let l = labels(r#"{app="svc"}"#);
    for i in 0..20_000i64 {
        let line = format!(
            "2024-05-01T00:00:{:02}Z level=info req=req-{:08x} user=u{} path=/api/v1/items/{} took={}ms",
            i % 60,
            (i as u64).wrapping_mul(0x9e37_79b9) & 0xffff_ffff,
            i % 97,
            i % 1013,
            i % 250
        );
        st.append(0, i as u64, &l, &[LogEntry::new(T0 + i * 1_000_000, line)])
            .unwrap();
    }
    st.flush().unwrap();
    let target = format!(
        "req-{:08x}",
        (12_345u64).wrapping_mul(0x9e37_79b9) & 0xffff_ffff
    );
    for q in [
        format!(r#"{{app="svc"}} |= " req={target} ""#),
        format!(r#"{{app="svc"}} |~ "\\b{target}\\b""#),
    ] {
        let r = st
            .query_range(&q, 0, i64::MAX, 1, 100, Direction::Forward)
            .unwrap();
        let got = lines(&r);
        assert_eq!(got.len(), 1, "{q}");
        assert!(got[0].1.contains(&target));
        let s = &r.stats;
        assert!(s.chunks_total > 100, "{s:?}");
        assert!(s.chunks_scanned * 20 <= s.chunks_total, "{q}: {s:?}");
    }
    // A bare literal may sit inside a longer token: the token filter cannot use it. Chunks cut
    // at ingest carry no substring filter (compaction builds it), so the literal is found by
    // reading them.
    let bare = format!(r#"{{app="svc"}} |= "{target}""#);
    let r = st
        .query_range(&bare, 0, i64::MAX, 1, 100, Direction::Forward)
        .unwrap();
    assert_eq!(lines(&r).len(), 1);
    let grams = |st: &LogStore| -> u64 {
        st.storage_by_stream()
            .iter()
            .map(|s| s.gram_filter_bytes)
            .sum()
    };
    assert_eq!(grams(&st), 0);
    // Compaction merges the chunks and gives each a substring filter; the answer is the same.
    assert!(st.compact().unwrap());
    assert!(grams(&st) > 0);
    let r = st
        .query_range(&bare, 0, i64::MAX, 1, 100, Direction::Forward)
        .unwrap();
    assert_eq!(lines(&r).len(), 1);
    assert!(lines(&r)[0].1.contains(&target));
}

#[test]
fn retention_by_time_and_size_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = Config {
        retention_ns: Some(3600 * S),
        // Whole segments as flushed (compaction would merge neighbours in time).
        compaction: false,
        ..Config::default()
    };
    let mut st = LogStore::open_with_clock(dir.path(), cfg, clock.clone()).unwrap();
    let l = labels(r#"{app="a"}"#);
    for h in 0..5i64 {
        st.append(
            0,
            h as u64,
            &l,
            &[LogEntry::new(T0 + h * 1800 * S, format!("h{h}"))],
        )
        .unwrap();
        st.flush().unwrap();
    }
    assert_eq!(st.stats().segments, 5);
    clock.set(T0 + 2 * 3600 * S + 1);
    st.maintain().unwrap();
    // Cutoff is T0 + 1h + 1ns: h0 (T0), h1 (T0+30m), h2 (T0+60m) go.
    let got: Vec<String> = all(&st, r#"{app="a"}"#)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(got, vec!["h3", "h4"]);
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg"))
            .count(),
        2
    );
    drop(st);
    let mut st = LogStore::open_with_clock(
        dir.path(),
        Config {
            retention_bytes: Some(1),
            ..Config::default()
        },
        clock,
    )
    .unwrap();
    assert_eq!(all(&st, r#"{app="a"}"#).len(), 2);
    st.apply_retention().unwrap();
    assert!(all(&st, r#"{app="a"}"#).is_empty());
    assert_eq!(st.stats().segments, 0);
    assert_eq!(st.applied_offsets(), vec![(0, 5)]);
}

#[test]
fn structured_metadata_is_stored_and_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = LogStore::open(dir.path(), Config::default()).unwrap();
    let mut e = LogEntry::new(T0, "hello");
    e.structured_metadata = vec![Label::new("trace_id", "abc")];
    st.append(
        0,
        0,
        &labels(r#"{app="a"}"#),
        &[e, LogEntry::new(T0 + 1, "bye")],
    )
    .unwrap();
    st.flush().unwrap();
    let r = st
        .query_range(
            r#"{app="a"} | trace_id="abc""#,
            0,
            i64::MAX,
            1,
            10,
            Direction::Forward,
        )
        .unwrap();
    match r.data {
        ResultData::Streams(s) => {
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].labels, labels(r#"{app="a", trace_id="abc"}"#));
            assert_eq!(s[0].entries, vec![(T0, "hello".to_owned())]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn label_apis() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = LogStore::open(dir.path(), Config::default()).unwrap();
    st.append(
        0,
        0,
        &labels(r#"{app="a", env="prod"}"#),
        &[LogEntry::new(T0, "x")],
    )
    .unwrap();
    st.append(
        0,
        1,
        &labels(r#"{app="b", host="h1"}"#),
        &[LogEntry::new(T0 + 100 * S, "y")],
    )
    .unwrap();
    st.flush().unwrap();
    assert_eq!(
        st.label_names(0, i64::MAX).unwrap(),
        vec!["app", "env", "host"]
    );
    assert_eq!(
        st.label_names(T0 + 50 * S, i64::MAX).unwrap(),
        vec!["app", "host"]
    );
    assert_eq!(
        st.label_values("app", 0, i64::MAX, None).unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(
        st.label_values("app", 0, i64::MAX, Some(r#"{env="prod"}"#))
            .unwrap(),
        vec!["a"]
    );
    assert_eq!(
        st.series(&[r#"{app=~"a|b"}"#], 0, i64::MAX).unwrap(),
        vec![
            labels(r#"{app="a", env="prod"}"#),
            labels(r#"{app="b", host="h1"}"#)
        ]
    );
    let j =
        bongsu_logstore::series_to_loki_json(&st.series(&[r#"{app="b"}"#], 0, i64::MAX).unwrap());
    assert_eq!(j["data"][0]["host"], "h1");
}

#[test]
fn limit_and_direction_pick_the_right_end() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        chunk_target_bytes: 64,
        ..Config::default()
    };
    let mut st = LogStore::open(dir.path(), cfg).unwrap();
    let l = labels(r#"{app="a"}"#);
    for i in 0..200i64 {
        st.append(
            0,
            i as u64,
            &l,
            &[LogEntry::new(T0 + i, format!("line {i}"))],
        )
        .unwrap();
        if i % 50 == 49 {
            st.flush().unwrap();
        }
    }
    let q = |dir| {
        let r = st
            .query_range(r#"{app="a"} |= "line""#, T0 + 10, T0 + 190, 1, 5, dir)
            .unwrap();
        match r.data {
            ResultData::Streams(s) => s[0].entries.iter().map(|e| e.0 - T0).collect::<Vec<_>>(),
            _ => unreachable!(),
        }
    };
    assert_eq!(q(Direction::Forward), vec![10, 11, 12, 13, 14]);
    assert_eq!(q(Direction::Backward), vec![189, 188, 187, 186, 185]);
}

#[test]
fn maintain_writes_cut_chunks_and_replay_skips_what_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = || Config {
        chunk_target_bytes: 100,
        flush_interval_ns: 10 * S,
        max_chunk_age_ns: 1000 * S,
        ..Config::default()
    };
    let busy = labels(r#"{app="busy"}"#);
    let quiet = labels(r#"{app="quiet"}"#);
    // One partition; the quiet stream's records stay in its head across segment writes.
    let mut log: Vec<(u64, bool, LogEntry)> = Vec::new();
    for i in 0..60u64 {
        let is_quiet = i % 10 == 3;
        let line = if is_quiet {
            format!("q{i}")
        } else {
            format!("busy record number {i:04}")
        };
        log.push((i, is_quiet, LogEntry::new(T0 + i as i64 * S, line)));
    }
    let want = |q: bool| -> Vec<(i64, String)> {
        log.iter()
            .filter(|r| r.1 == q)
            .map(|r| (r.2.timestamp_ns, r.2.line.clone()))
            .collect()
    };
    {
        let mut st = LogStore::open_with_clock(dir.path(), cfg(), clock.clone()).unwrap();
        for (o, q, e) in &log {
            let l = if *q { &quiet } else { &busy };
            assert!(st.append(0, *o, l, std::slice::from_ref(e)).unwrap());
            clock.advance(S);
            st.maintain().unwrap();
        }
        assert!(st.stats().segments >= 3, "{:?}", st.stats());
        // The quiet stream's head (from offset 3) holds the replay point back.
        assert_eq!(st.applied_offsets(), vec![(0, 3)]);
        // crash: dropped without flush
    }
    let mut st = LogStore::open_with_clock(dir.path(), cfg(), clock.clone()).unwrap();
    assert_eq!(st.applied_offsets(), vec![(0, 3)]);
    assert!(all(&st, r#"{app="quiet"}"#).is_empty());
    let before = all(&st, r#"{app="busy"}"#).len();
    assert!(before > 0);
    let mut applied = 0;
    for (o, q, e) in &log[3..] {
        let l = if *q { &quiet } else { &busy };
        if st.append(0, *o, l, std::slice::from_ref(e)).unwrap() {
            applied += 1;
        }
    }
    assert_eq!(applied, 6 + (54 - before));
    assert_eq!(all(&st, r#"{app="quiet"}"#), want(true));
    assert_eq!(all(&st, r#"{app="busy"}"#), want(false));
    st.flush().unwrap();
    assert_eq!(st.applied_offsets(), vec![(0, 60)]);
}

#[test]
fn store_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LogStore>();
}
