//! Model-based test: random appends (with log offsets), cuts, flushes, compactions, crashes
//! with log replay and reopenings, compared with a `BTreeMap` model after every step.

use std::collections::BTreeMap;

use bongsu_model::{Labels, Sample, STALE_NAN_BITS};
use bongsu_tsdb::{rollup, MatchOp, Matcher, Options, Resolution, Tsdb};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HOUR: i64 = 3_600_000;

type Model = BTreeMap<Labels, BTreeMap<i64, u64>>;

fn universe() -> Vec<Labels> {
    let mut v = Vec::new();
    for name in ["cpu", "mem"] {
        for job in ["", "node", "api"] {
            for inst in ["1", "2"] {
                v.push(
                    Labels::from_pairs([("__name__", name), ("job", job), ("instance", inst)])
                        .unwrap(),
                );
            }
        }
    }
    v
}

fn random_matchers(rng: &mut StdRng) -> Vec<Matcher> {
    let pool = [
        Matcher::equal("__name__", "cpu"),
        Matcher::equal("job", ""),
        Matcher::not_equal("job", ""),
        Matcher::not_equal("instance", "1"),
        Matcher::new(MatchOp::Regex, "job", "no.*|").unwrap(),
        Matcher::new(MatchOp::Regex, "__name__", "cpu|mem").unwrap(),
        Matcher::new(MatchOp::NotRegex, "job", "api").unwrap(),
        Matcher::new(MatchOp::NotRegex, "instance", ".+").unwrap(),
        Matcher::equal("nope", ""),
    ];
    (0..rng.gen_range(0..3))
        .map(|_| pool[rng.gen_range(0..pool.len())].clone())
        .collect()
}

fn random_value(rng: &mut StdRng) -> u64 {
    match rng.gen_range(0..20) {
        0 => STALE_NAN_BITS,
        1 => f64::INFINITY.to_bits(),
        2 => f64::NAN.to_bits(),
        _ => f64::from(rng.gen_range(0u32..500)).to_bits(),
    }
}

fn opts() -> Options {
    Options {
        block_duration_ms: HOUR,
        compaction_ranges_ms: vec![6 * HOUR, 24 * HOUR],
        ooo_window_ms: 1_000 * 24 * HOUR,
        retention_raw_ms: 10_000 * 24 * HOUR,
        retention_5m_ms: 10_000 * 24 * HOUR,
        retention_1h_ms: 10_000 * 24 * HOUR,
        ..Options::default()
    }
}

fn check(db: &Tsdb, model: &Model, rng: &mut StdRng, step: usize) {
    let ms = random_matchers(rng);
    let a = rng.gen_range(-HOUR..60 * HOUR);
    let b = a + rng.gen_range(0..40 * HOUR);
    let got = db.select(&ms, a, b).unwrap();
    let want: Vec<(Labels, Vec<(i64, u64)>)> = model
        .iter()
        .filter(|(l, _)| ms.iter().all(|m| m.matches_labels(l)))
        .map(|(l, s)| {
            (
                l.clone(),
                s.range(a..=b).map(|(&t, &v)| (t, v)).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| !s.is_empty())
        .collect();
    let got_bits: Vec<(Labels, Vec<(i64, u64)>)> = got
        .iter()
        .map(|s| {
            (
                s.labels.clone(),
                s.samples
                    .iter()
                    .map(|x| (x.timestamp_ms, x.value.to_bits()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(got_bits, want, "step {step}: select {ms:?} [{a}, {b}]");
    let names: std::collections::BTreeSet<String> = want
        .iter()
        .flat_map(|(l, _)| l.iter().map(|p| p.name.clone()))
        .collect();
    assert_eq!(
        db.label_names(&ms, a, b).unwrap(),
        names.into_iter().collect::<Vec<_>>()
    );
    for res in Resolution::ALL {
        let got = db.select_rollup(&ms, a, b, res).unwrap();
        let first_w = a.div_euclid(res.millis()) * res.millis();
        let hi = (b.div_euclid(res.millis()) + 1) * res.millis();
        let want: Vec<_> = model
            .iter()
            .filter(|(l, _)| ms.iter().all(|m| m.matches_labels(l)))
            .map(|(l, s)| {
                let raw: Vec<(i64, f64)> = s
                    .range(first_w..hi)
                    .map(|(&t, &v)| (t, f64::from_bits(v)))
                    .collect();
                (l.clone(), rollup(&raw, res))
            })
            .filter(|(_, p)| !p.is_empty())
            .collect();
        let got: Vec<_> = got.into_iter().map(|s| (s.labels, s.points)).collect();
        assert_eq!(got, want, "step {step}: rollup {res:?} {ms:?} [{a}, {b}]");
    }
}

/// Runs one random history; returns the most rollup blocks seen at once.
fn run(seed: u64, steps: usize) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let series = universe();
    let mut model: Model = BTreeMap::new();
    // The log: every batch of appends, replayed after a crash from the applied offset.
    let mut log: Vec<Vec<(usize, i64, u64)>> = Vec::new();
    let mut db = Tsdb::open(dir.path(), opts()).unwrap();
    let mut now = 0i64;
    let mut rollup_blocks = 0;
    for step in 0..steps {
        match rng.gen_range(0..100) {
            0..=59 => {
                let mut batch = Vec::new();
                for _ in 0..rng.gen_range(1..30) {
                    let s = rng.gen_range(0..series.len());
                    // mostly forward in time, sometimes back (out of order)
                    let t = if rng.gen_bool(0.8) {
                        now += rng.gen_range(0..5) * 60_000;
                        now
                    } else {
                        (now - rng.gen_range(0..10 * HOUR)).max(0) / 1000 * 1000
                    };
                    batch.push((s, t, random_value(&mut rng)));
                }
                for &(s, t, v) in &batch {
                    let o = db
                        .append(&series[s], &[Sample::new(t, f64::from_bits(v))])
                        .unwrap();
                    assert_eq!(o.out_of_window, 0);
                    model
                        .entry(series[s].clone())
                        .or_default()
                        .entry(t)
                        .or_insert(v);
                }
                log.push(batch);
                db.mark_applied(&[(0, log.len() as u64)]);
            }
            60..=69 => {
                let boundary = rng.gen_range(0..=now.max(1)) / HOUR * HOUR;
                db.cut_before(boundary).unwrap();
            }
            70..=74 => {
                db.flush().unwrap();
                assert_eq!(db.applied_offsets(), vec![(0, log.len() as u64)]);
            }
            75..=84 => {
                db.compact_now().unwrap();
            }
            85..=92 => {
                // crash: drop without flushing, reopen, replay the log from the applied offset
                drop(db);
                db = Tsdb::open(dir.path(), opts()).unwrap();
                let from = db.applied_offsets().first().map_or(0, |p| p.1) as usize;
                assert!(from <= log.len());
                for (i, batch) in log.iter().enumerate().skip(from) {
                    for &(s, t, v) in batch {
                        db.append(&series[s], &[Sample::new(t, f64::from_bits(v))])
                            .unwrap();
                    }
                    db.mark_applied(&[(0, i as u64 + 1)]);
                }
            }
            _ => {
                db.flush().unwrap();
                drop(db);
                db = Tsdb::open(dir.path(), opts()).unwrap();
                assert_eq!(
                    db.applied_offsets(),
                    if log.is_empty() {
                        vec![]
                    } else {
                        vec![(0, log.len() as u64)]
                    }
                );
            }
        }
        check(&db, &model, &mut rng, step);
        rollup_blocks = rollup_blocks.max(db.disk_usage().rollup_blocks);
    }
    rollup_blocks
}

#[test]
fn store_matches_model() {
    let mut rollups = 0;
    for seed in 0..4 {
        rollups = rollups.max(run(seed, 110));
    }
    assert!(
        rollups > 0,
        "the random histories never compacted into rollups"
    );
}
