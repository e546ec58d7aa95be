//! Model-based test of the tailer: random appends, polls (acknowledged or not), rotations
//! by rename and by copy-truncate, and restarts; every line written must be acknowledged
//! exactly once in the end.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use bongsu_agent::{LogSourceConfig, ManualClock, ReadFrom, Tailer, TailerConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    Poll { ack: bool },
    Rename,
    CopyTruncate,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..6).prop_map(Op::Append),
        3 => any::<bool>().prop_map(|ack| Op::Poll { ack }),
        1 => Just(Op::Rename),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Restart),
    ]
}

fn tailer(dir: &Path, glob: &str, clock: &Arc<ManualClock>) -> Tailer {
    let cfg = TailerConfig {
        checkpoint_path: dir.join("state/cp"),
        poll_interval_ms: 10,
        read_from: ReadFrom::Beginning,
        fingerprint_bytes: 32,
        max_read_bytes_per_poll: 256,
    };
    let src = LogSourceConfig {
        paths: vec![glob.to_owned()],
        exclude: vec![],
        labels: Default::default(),
        multiline: None,
        max_line_bytes: 1024,
    };
    Tailer::new(cfg, &[src], clock.clone()).unwrap()
}

fn run(ops: &[Op], glob_rotated_too: bool) {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("logs/app.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let glob = format!(
        "{}{}",
        log.display(),
        if glob_rotated_too { "*" } else { "" }
    );
    let clock = Arc::new(ManualClock::new(1_700_000_000_000_000_000));
    let mut t = tailer(d.path(), &glob, &clock);
    let (mut written, mut acked, mut unacked) = (Vec::new(), Vec::new(), Vec::new());
    let mut rotations = 0;
    // Without the rotated names in the glob, a file must be checkpointed at least once
    // before it is rotated away: a file never seen cannot be found again (any tailer).
    let mut safe_to_rotate = false;
    // Copy-truncate is recognised by the fingerprint of the file's first bytes: a file that
    // was empty when last seen has none, so its copy cannot be told from any other file.
    let mut nonempty_at_ack = false;
    for op in ops {
        clock.advance_ms(1000);
        match op {
            Op::Append(n) => {
                if !log.exists() {
                    safe_to_rotate = false;
                }
                let mut f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
                for _ in 0..*n {
                    let line = format!("line-{:05} payload", written.len());
                    writeln!(f, "{line}").unwrap();
                    written.push(line);
                }
            }
            Op::Poll { ack } => {
                unacked.extend(t.poll().unwrap().into_iter().map(|(_, e)| e.line));
                if *ack {
                    t.checkpoint().unwrap();
                    acked.append(&mut unacked);
                    safe_to_rotate = true;
                    nonempty_at_ack = std::fs::metadata(&log).is_ok_and(|m| m.len() > 0);
                }
            }
            Op::Rename | Op::CopyTruncate if !glob_rotated_too && !safe_to_rotate => {}
            Op::CopyTruncate if !glob_rotated_too && !nonempty_at_ack => {}
            Op::Rename => {
                if log.exists() {
                    rotations += 1;
                    std::fs::rename(&log, log.with_extension(format!("log.{rotations}"))).unwrap();
                    safe_to_rotate = false;
                }
            }
            Op::CopyTruncate => {
                if log.exists() {
                    rotations += 1;
                    std::fs::copy(&log, log.with_extension(format!("log.c{rotations}"))).unwrap();
                    OpenOptions::new()
                        .write(true)
                        .open(&log)
                        .unwrap()
                        .set_len(0)
                        .unwrap();
                    safe_to_rotate = false;
                }
            }
            Op::Restart => {
                drop(t);
                unacked.clear();
                t = tailer(d.path(), &glob, &clock);
            }
        }
    }
    for _ in 0..10_000 {
        clock.advance_ms(1000);
        let got: Vec<String> = t.poll().unwrap().into_iter().map(|(_, e)| e.line).collect();
        t.checkpoint().unwrap();
        let quiet = got.is_empty();
        unacked.extend(got);
        acked.append(&mut unacked);
        if quiet && t.files().len() <= 1 + usize::from(glob_rotated_too) * rotations {
            break;
        }
    }
    let mut got = acked.clone();
    got.sort();
    let mut want = written.clone();
    want.sort();
    let dups: Vec<_> = got
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0].clone())
        .collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}\nops: {ops:?}");
    let lost: Vec<_> = want
        .iter()
        .filter(|l| got.binary_search(l).is_err())
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}\nops: {ops:?}");
    assert_eq!(got, want);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn rotations_and_restarts_lose_and_duplicate_nothing(
        ops in proptest::collection::vec(op(), 1..40),
        glob_rotated_too in any::<bool>(),
    ) {
        run(&ops, glob_rotated_too);
    }
}
