//! The `bongsu stream` CLI end to end, through the real binary.

use std::path::Path;

/// Runs `bongsu stream --data-dir DIR args…` with `stdin`; returns success, stdout, stderr.
fn bongsu(dir: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut cmd = super::bongsu();
    cmd.arg("stream").arg("--data-dir").arg(dir).args(args);
    let out = super::output_with_stdin(cmd, stdin);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Like [`bongsu`], asserting success; returns stdout.
pub(crate) fn ok(dir: &Path, args: &[&str], stdin: &str) -> String {
    let (success, out, err) = bongsu(dir, args, stdin);
    assert!(success, "bongsu stream {args:?} failed: {err}");
    out
}

#[test]
fn produce_then_consume_returns_the_lines() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["topics", "create", "logs", "-p", "1"], "");
    assert_eq!(ok(d.path(), &["topics", "list"], ""), "logs\n");
    ok(
        d.path(),
        &["produce", "-t", "logs"],
        "first line\nsecond line\nthird line\n",
    );
    let out = ok(d.path(), &["consume", "-t", "logs", "-e"], "");
    assert_eq!(out, "first line\nsecond line\nthird line\n");
    let out = ok(d.path(), &["consume", "-t", "logs", "-e", "-o", "1"], "");
    assert_eq!(out, "second line\nthird line\n");
    let desc = ok(d.path(), &["topics", "describe", "logs"], "");
    assert!(desc.contains("partitions=1"), "{desc}");
}

#[test]
fn same_key_goes_to_one_partition() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["topics", "create", "m", "-p", "4"], "");
    ok(
        d.path(),
        &["produce", "-t", "m", "-k", "host-1"],
        "a\nb\nc\n",
    );
    ok(d.path(), &["produce", "-t", "m", "-k", "host-1"], "d\n");
    let mut with_data = 0;
    for p in 0..4 {
        let out = ok(
            d.path(),
            &["consume", "-t", "m", "-p", &p.to_string(), "-e"],
            "",
        );
        if !out.is_empty() {
            with_data += 1;
            assert_eq!(out, "a\nb\nc\nd\n");
        }
    }
    assert_eq!(with_data, 1);
}

#[test]
fn group_consume_commits_so_a_second_run_gets_nothing_new() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["topics", "create", "t", "-p", "2"], "");
    ok(d.path(), &["produce", "-t", "t"], "x1\nx2\nx3\n");
    let first = ok(d.path(), &["consume", "-t", "t", "-g", "g1", "-e"], "");
    let mut lines: Vec<&str> = first.lines().collect();
    lines.sort();
    assert_eq!(lines, ["x1", "x2", "x3"]);
    assert_eq!(
        ok(d.path(), &["consume", "-t", "t", "-g", "g1", "-e"], ""),
        ""
    );
    ok(d.path(), &["produce", "-t", "t"], "x4\n");
    assert_eq!(
        ok(d.path(), &["consume", "-t", "t", "-g", "g1", "-e"], ""),
        "x4\n"
    );
    assert_eq!(ok(d.path(), &["groups", "list"], ""), "g1\n");
    let desc = ok(d.path(), &["groups", "describe", "g1"], "");
    assert!(desc.contains("LAG"), "{desc}");
}

#[test]
fn unknown_topic_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let (success, _, err) = bongsu(d.path(), &["produce", "-t", "nope"], "x\n");
    assert!(!success);
    assert!(err.contains("unknown topic"), "{err}");
}
