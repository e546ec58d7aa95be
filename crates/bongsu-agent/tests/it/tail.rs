use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bongsu_agent::{LogSourceConfig, ManualClock, MultilineConfig, ReadFrom, Tailer, TailerConfig};

const START_NS: i64 = 1_700_000_000_000_000_000;

fn config(dir: &Path) -> TailerConfig {
    TailerConfig {
        checkpoint_path: dir.join("state/tail.checkpoint"),
        poll_interval_ms: 10,
        read_from: ReadFrom::Beginning,
        fingerprint_bytes: 32,
        max_read_bytes_per_poll: 1 << 20,
    }
}

fn source(glob: &Path) -> LogSourceConfig {
    LogSourceConfig {
        paths: vec![glob.display().to_string()],
        exclude: vec![],
        labels: BTreeMap::from([("app".to_string(), "test".to_string())]),
        multiline: None,
        max_line_bytes: 1024,
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn batch(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}-{i:04} some log text"))
        .collect()
}

fn texts(t: &mut Tailer) -> Vec<String> {
    t.poll().unwrap().into_iter().map(|(_, e)| e.line).collect()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START_NS))
}

/// Polls until a poll returns nothing.
fn drain(t: &mut Tailer) -> Vec<String> {
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let got = texts(t);
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
    panic!("tailer never went quiet");
}

fn rename_and_create(glob_suffix: &str) {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let c = clock();
    let mut t = Tailer::new(
        config(d.path()),
        &[source(&PathBuf::from(format!(
            "{}{glob_suffix}",
            log.display()
        )))],
        c.clone(),
    )
    .unwrap();
    let (a, b, c1, d1) = (batch("a", 10), batch("b", 5), batch("c", 5), batch("d", 2));
    append(&log, &a);
    assert_eq!(texts(&mut t), a);

    // The writer keeps its handle across the rename and writes a little more to it.
    let mut old = OpenOptions::new().append(true).open(&log).unwrap();
    append(&log, &b);
    std::fs::rename(&log, d.path().join("app.log.1")).unwrap();
    append(&log, &c1);
    for l in &d1 {
        writeln!(old, "{l}").unwrap();
    }
    let got = texts(&mut t);
    let expected: Vec<String> = b.iter().chain(&d1).chain(&c1).cloned().collect();
    assert_eq!(got, expected, "old file drained first, then the new one");
    assert!(texts(&mut t).is_empty());

    // Past the rotate wait the old file is closed; a second rotation works the same way.
    c.advance_ms(6_000);
    assert!(texts(&mut t).is_empty());
    let e = batch("e", 3);
    append(&log, &e);
    std::fs::rename(&log, d.path().join("app.log.2")).unwrap();
    let f = batch("f", 3);
    append(&log, &f);
    let got = texts(&mut t);
    assert_eq!(got, e.iter().chain(&f).cloned().collect::<Vec<_>>());
    if glob_suffix.is_empty() {
        assert!(t.stats().rotations >= 2);
    }
}

#[test]
fn rename_and_create_rotation_loses_and_duplicates_nothing() {
    rename_and_create("");
}

#[test]
fn rename_and_create_rotation_with_rotated_files_in_the_glob() {
    rename_and_create("*");
}

fn copy_truncate(glob_suffix: &str, long_after: bool) {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let mut t = Tailer::new(
        config(d.path()),
        &[source(&PathBuf::from(format!(
            "{}{glob_suffix}",
            log.display()
        )))],
        clock(),
    )
    .unwrap();
    let a = batch("a", 10);
    append(&log, &a);
    assert_eq!(texts(&mut t), a);

    let b = batch("b", 5);
    append(&log, &b);
    std::fs::copy(&log, d.path().join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    // After the truncation the file may already be longer than where we were.
    let c = batch("c", if long_after { 40 } else { 3 });
    append(&log, &c);
    let got = drain(&mut t);
    assert_eq!(got, b.iter().chain(&c).cloned().collect::<Vec<_>>());
}

#[test]
fn copy_truncate_rotation_reads_the_unread_rest_from_the_copy() {
    copy_truncate("", false);
}

#[test]
fn copy_truncate_rotation_when_the_file_regrew_past_the_old_offset() {
    copy_truncate("", true);
}

#[test]
fn copy_truncate_rotation_with_the_copy_in_the_glob() {
    copy_truncate("*", false);
}

#[test]
fn copy_seen_before_the_truncation_is_not_read_twice() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let mut t = Tailer::new(
        config(d.path()),
        &[source(&PathBuf::from(format!("{}*", log.display())))],
        clock(),
    )
    .unwrap();
    let a = batch("a", 10);
    append(&log, &a);
    assert_eq!(texts(&mut t), a);
    let b = batch("b", 5);
    append(&log, &b);
    std::fs::copy(&log, d.path().join("app.log.1")).unwrap();
    assert_eq!(texts(&mut t), b);
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    let c = batch("c", 3);
    append(&log, &c);
    assert_eq!(drain(&mut t), c);
}

#[test]
fn restart_mid_file_resumes_exactly_from_the_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let all = batch("x", 1000);
    append(&log, &all);
    // An unfinished last line must neither be emitted early nor lost.
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    write!(f, "partial-line").unwrap();
    let mut cfg = config(d.path());
    cfg.max_read_bytes_per_poll = 1000;

    let mut first = Tailer::new(cfg.clone(), &[source(&log)], clock()).unwrap();
    let mut acked = Vec::new();
    for _ in 0..3 {
        acked.extend(texts(&mut first));
    }
    assert!(
        !acked.is_empty() && acked.len() < all.len(),
        "stopped mid-file"
    );
    first.checkpoint().unwrap();
    // Read further but never acknowledged (the process dies before the next checkpoint).
    assert!(!texts(&mut first).is_empty());
    drop(first);

    let mut second = Tailer::new(cfg.clone(), &[source(&log)], clock()).unwrap();
    acked.extend(drain(&mut second));
    assert_eq!(acked, all);
    writeln!(f, " now complete").unwrap();
    assert_eq!(texts(&mut second), ["partial-line now complete"]);
    second.checkpoint().unwrap();
    drop(second);

    let mut third = Tailer::new(cfg, &[source(&log)], clock()).unwrap();
    assert!(
        texts(&mut third).is_empty(),
        "nothing is read twice after a restart"
    );
    append(&log, &["after".to_string()]);
    assert_eq!(texts(&mut third), ["after"]);
}

#[test]
fn checkpoint_of_a_replaced_file_is_not_applied_to_its_successor() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    append(&log, &batch("old", 20));
    let mut t = Tailer::new(config(d.path()), &[source(&log)], clock()).unwrap();
    assert_eq!(texts(&mut t).len(), 20);
    t.checkpoint().unwrap();
    drop(t);
    std::fs::remove_file(&log).unwrap();
    let new = batch("new", 3);
    append(&log, &new);
    let mut t = Tailer::new(config(d.path()), &[source(&log)], clock()).unwrap();
    assert_eq!(texts(&mut t), new);
}

fn multiline_source(log: &Path) -> LogSourceConfig {
    let mut s = source(log);
    s.multiline = Some(MultilineConfig {
        start_pattern: r"^\d{4}-\d{2}-\d{2} ".into(),
        flush_timeout_ms: 1000,
        max_lines: 50,
    });
    s
}

#[test]
fn multiline_events_join_and_flush_on_timeout() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let c = clock();
    let mut t = Tailer::new(config(d.path()), &[multiline_source(&log)], c.clone()).unwrap();
    let lines: Vec<String> = [
        "2024-01-01 first",
        "  at one",
        "  at two",
        "2024-01-01 second",
        "2024-01-01 third",
        "  more",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    append(&log, &lines);
    assert_eq!(
        texts(&mut t),
        ["2024-01-01 first\n  at one\n  at two", "2024-01-01 second"]
    );
    c.advance_ms(500);
    assert!(
        texts(&mut t).is_empty(),
        "the last event waits for more lines"
    );
    append(&log, &["  and more".to_string()]);
    assert!(texts(&mut t).is_empty());
    c.advance_ms(999);
    assert!(
        texts(&mut t).is_empty(),
        "the timeout counts from the last line"
    );
    c.advance_ms(1);
    assert_eq!(texts(&mut t), ["2024-01-01 third\n  more\n  and more"]);
}

#[test]
fn multiline_event_in_progress_survives_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let c = clock();
    let mut t = Tailer::new(config(d.path()), &[multiline_source(&log)], c.clone()).unwrap();
    append(
        &log,
        &[
            "2024-01-01 a".into(),
            "  a2".into(),
            "2024-01-01 b".into(),
            "  b2".into(),
        ],
    );
    assert_eq!(texts(&mut t), ["2024-01-01 a\n  a2"]);
    t.checkpoint().unwrap();
    drop(t);
    let mut t = Tailer::new(config(d.path()), &[multiline_source(&log)], c.clone()).unwrap();
    append(&log, &["  b3".into()]);
    assert!(texts(&mut t).is_empty());
    c.advance_ms(1000);
    assert_eq!(texts(&mut t), ["2024-01-01 b\n  b2\n  b3"]);
}

#[test]
fn long_lines_are_cut_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    let mut s = source(&log);
    s.max_line_bytes = 16;
    let mut t = Tailer::new(config(d.path()), &[s], clock()).unwrap();
    append(&log, &["x".repeat(100), "short".into()]);
    assert_eq!(texts(&mut t), ["x".repeat(16), "short".to_string()]);
    assert_eq!(t.stats().truncated_lines, 1);

    // A long line arriving in pieces: its head goes out once, its tail is skipped.
    let mut f = OpenOptions::new().append(true).open(&log).unwrap();
    write!(f, "{}", "y".repeat(40)).unwrap();
    assert_eq!(texts(&mut t), ["y".repeat(16)]);
    writeln!(f, "{}", "z".repeat(40)).unwrap();
    writeln!(f, "next").unwrap();
    assert_eq!(texts(&mut t), ["next"]);
    assert_eq!(t.stats().truncated_lines, 2);
}

#[test]
fn labels_and_read_from_end() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("app.log");
    append(&log, &batch("before", 5));
    let mut cfg = config(d.path());
    cfg.read_from = ReadFrom::End;
    let mut t = Tailer::new(cfg, &[source(&log)], clock()).unwrap();
    assert!(t.poll().unwrap().is_empty());
    append(&log, &["after".to_string()]);
    let got = t.poll().unwrap();
    assert_eq!(got.len(), 1);
    let (labels, entry) = &got[0];
    assert_eq!(entry.line, "after");
    assert_eq!(entry.timestamp_ns, START_NS);
    assert_eq!(labels.get("app"), Some("test"));
    assert_eq!(labels.get("filename"), Some(log.to_str().unwrap()));
}

#[test]
fn corrupt_checkpoint_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path());
    std::fs::create_dir_all(cfg.checkpoint_path.parent().unwrap()).unwrap();
    File::create(&cfg.checkpoint_path)
        .unwrap()
        .write_all(b"BSTC garbage garbage")
        .unwrap();
    let err = Tailer::new(cfg, &[source(&d.path().join("x.log"))], clock()).unwrap_err();
    assert!(err.to_string().contains("delete it"), "{err}");
}
