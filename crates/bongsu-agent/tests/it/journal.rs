//! The journal reader against a stand-in `journalctl` (a script that records its argv and
//! prints journal JSON), since no journal runs in the test environment.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use bongsu_agent::{JournalConfig, JournalReader};

fn fake_journalctl(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("journalctl");
    let args = dir.join("args");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {args}\n\
printf '%s\\n' '{{\"__CURSOR\":\"c1\",\"__REALTIME_TIMESTAMP\":\"1000\",\"MESSAGE\":\"one\",\"PRIORITY\":\"6\",\"_SYSTEMD_UNIT\":\"a.service\"}}'\n\
printf '%s\\n' '{{\"__CURSOR\":\"c2\",\"__REALTIME_TIMESTAMP\":\"2000\",\"MESSAGE\":\"two\",\"PRIORITY\":\"4\"}}'\n\
exec sleep 60\n",
            args = args.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn poll_until(r: &mut JournalReader, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {got:?} before the deadline"
        );
        let batch = r.poll(100);
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        got.extend(
            batch
                .into_iter()
                .map(|(l, e)| format!("{} {}", e.line, l.get("level").unwrap_or(""))),
        );
    }
    got
}

#[test]
fn follows_and_resumes_after_the_saved_cursor() {
    let d = tempfile::tempdir().unwrap();
    let program = fake_journalctl(d.path());
    let cfg = JournalConfig {
        enabled: true,
        units: vec!["a.service".into()],
        cursor_path: d.path().join("state/journal.cursor"),
        ..JournalConfig::default()
    };
    let mut r = JournalReader::start_with_program(&program, &cfg).unwrap();
    assert_eq!(poll_until(&mut r, 2), ["one info", "two warning"]);
    assert_eq!(r.cursor(), Some("c2"));
    r.checkpoint().unwrap();
    drop(r);
    let args = std::fs::read_to_string(d.path().join("args")).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "--output=json",
            "--follow",
            "--no-pager",
            "--lines=0",
            "--unit=a.service"
        ]
    );

    let r = JournalReader::start_with_program(&program, &cfg).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let args = loop {
        let a = std::fs::read_to_string(d.path().join("args")).unwrap_or_default();
        if a.contains("cursor") {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "journalctl not restarted with the cursor"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(args.lines().any(|l| l == "--after-cursor=c2"), "{args}");
    drop(r);
}
