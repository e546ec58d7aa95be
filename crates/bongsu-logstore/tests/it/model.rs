//! Model-based test: random appends (some out of order within the window, some replays of
//! old offsets), flushes, crashes with replay, and retention, compared with a `Vec` model.

use std::sync::Arc;

use bongsu_logstore::{Config, Direction, LogStore, ManualClock, ResultData};
use bongsu_model::{Labels, LogEntry};
use proptest::prelude::*;

const S: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * S;
const STREAMS: [&str; 3] = [r#"{app="a"}"#, r#"{app="b", env="prod"}"#, r#"{app="c"}"#];
const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "needle", "x9"];

#[derive(Debug, Clone)]
enum Op {
    /// stream, how far behind the newest (seconds, within the window), word
    Append(usize, i64, usize),
    /// Re-deliver an already applied record.
    Replay(usize),
    Flush,
    /// Crash (drop without flush), reopen, replay from applied offsets.
    Crash,
    /// Advance the clock and apply time retention.
    Retain(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 0..30i64, 0..6usize).prop_map(|(s, b, w)| Op::Append(s, b, w)),
        1 => any::<usize>().prop_map(Op::Replay),
        2 => Just(Op::Flush),
        1 => Just(Op::Crash),
        1 => (0..200i64).prop_map(Op::Retain),
    ]
}

struct Record {
    offset: u64,
    stream: usize,
    entry: LogEntry,
}

#[derive(Default)]
struct Model {
    /// Every record appended to the log, in offset order.
    log: Vec<Record>,
    /// Per log record: `None` while not flushed, else the segment number.
    seg_of: Vec<Option<usize>>,
    /// Per segment: newest timestamp, deleted or not.
    segs: Vec<(i64, bool)>,
}

impl Model {
    fn visible(&self, stream: usize) -> Vec<(i64, String)> {
        let mut v: Vec<(i64, String)> = self
            .log
            .iter()
            .zip(&self.seg_of)
            .filter(|(r, s)| r.stream == stream && s.is_none_or(|s| !self.segs[s].1))
            .map(|(r, _)| (r.entry.timestamp_ns, r.entry.line.clone()))
            .collect();
        v.sort();
        v
    }
}

fn query(st: &LogStore, q: &str) -> Vec<(i64, String)> {
    let r = st
        .query_range(q, 0, i64::MAX, 1, 1_000_000, Direction::Forward)
        .unwrap();
    let mut out = Vec::new();
    if let ResultData::Streams(s) = r.data {
        for st in s {
            out.extend(st.entries);
        }
    }
    out.sort();
    out
}

fn cfg() -> Config {
    Config {
        chunk_target_bytes: 200,
        out_of_order_window_ns: 60 * S,
        retention_ns: Some(120 * S),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let labels: Vec<Labels> = STREAMS.iter().map(|s| crate::labels(s)).collect();
        let mut st = LogStore::open_with_clock(dir.path(), cfg(), clock.clone()).unwrap();
        let mut m = Model::default();
        let mut now = T0;
        let mut seq = 0i64;
        for op in ops {
            match op {
                Op::Append(s, behind, w) => {
                    now += S;
                    seq += 1;
                    // Unique timestamps: the sequence number lives in the nanoseconds.
                    let ts = now - behind * S + seq;
                    let line = format!("{} line {seq} {}", WORDS[w], WORDS[(w + seq as usize) % 6]);
                    let offset = m.log.len() as u64;
                    let e = LogEntry::new(ts, line);
                    prop_assert!(st.append(0, offset, &labels[s], std::slice::from_ref(&e)).unwrap());
                    m.log.push(Record { offset, stream: s, entry: e });
                    m.seg_of.push(None);
                }
                Op::Replay(i) => {
                    if !m.log.is_empty() {
                        let r = &m.log[i % m.log.len()];
                        prop_assert!(!st.append(0, r.offset, &labels[r.stream], std::slice::from_ref(&r.entry)).unwrap());
                    }
                }
                Op::Flush => {
                    st.flush().unwrap();
                    let pending: Vec<usize> = (0..m.log.len()).filter(|&i| m.seg_of[i].is_none()).collect();
                    if !pending.is_empty() {
                        let newest = pending.iter().map(|&i| m.log[i].entry.timestamp_ns).max().unwrap_or(0);
                        m.segs.push((newest, false));
                        for i in pending {
                            m.seg_of[i] = Some(m.segs.len() - 1);
                        }
                    }
                }
                Op::Crash => {
                    drop(st);
                    st = LogStore::open_with_clock(dir.path(), cfg(), clock.clone()).unwrap();
                    let from = st.applied_offsets().first().map_or(0, |p| p.1);
                    let flushed = m.seg_of.iter().filter(|s| s.is_some()).count() as u64;
                    prop_assert_eq!(from, flushed);
                    for r in &m.log[from as usize..] {
                        prop_assert!(st.append(0, r.offset, &labels[r.stream], std::slice::from_ref(&r.entry)).unwrap());
                    }
                }
                Op::Retain(secs) => {
                    now += secs * S;
                    clock.set(now);
                    st.apply_retention().unwrap();
                    let cutoff = now - 120 * S;
                    for s in &mut m.segs {
                        if s.0 < cutoff {
                            s.1 = true;
                        }
                    }
                }
            }
            for (i, s) in STREAMS.iter().enumerate() {
                prop_assert_eq!(query(&st, s), m.visible(i), "stream {}", s);
            }
            let want: Vec<(i64, String)> = {
                let mut v: Vec<_> = (0..3).flat_map(|i| m.visible(i)).filter(|(_, l)| l.contains("needle")).collect();
                v.sort();
                v
            };
            prop_assert_eq!(query(&st, r#"{app=~".+"} |= "needle""#), want.clone());
            prop_assert_eq!(query(&st, r#"{app=~".+"} |~ "\\bneedle\\b""#), want.clone());
            let count = st.query_instant(r#"sum(count_over_time({app=~".+"} |= "needle" [100y]))"#, i64::MAX / 2).unwrap();
            let got = match count.data {
                ResultData::Vector(v) => v.first().map_or(0.0, |s| s.value),
                _ => -1.0,
            };
            prop_assert_eq!(got, want.len() as f64);
        }
    }
}
