//! Model-based test: random appends, fetches (from inside batches too), seeks by offset and
//! time, retention passes and reopenings against a Vec model, compared after every step.

use std::sync::Arc;

use bongsu_stream::{
    Compression, EmbeddedStream, Error, FetchOptions, ManualClock, Record, Stream, TopicConfig,
};
use bytes::Bytes;
use rand::{Rng, SeedableRng};

use crate::common::opts;

#[derive(Clone, Debug, PartialEq)]
struct M {
    offset: u64,
    ts: i64,
    key: Option<Bytes>,
    value: Bytes,
}

#[derive(Default)]
struct Part {
    start: u64,
    recs: Vec<M>, // offsets start.. (dense)
}

impl Part {
    fn end(&self) -> u64 {
        self.start + self.recs.len() as u64
    }
}

async fn check_partition(s: &dyn Stream, t: &str, p: u32, m: &Part, rng: &mut impl Rng) {
    let d = s.describe_topic(t).await.unwrap().partitions[p as usize].clone();
    assert_eq!(d.high_watermark, m.end());
    assert_eq!(d.log_start_offset, m.start);
    if m.end() > m.start {
        let from = rng.gen_range(m.start..=m.end());
        let max = rng.gen_range(1..4000);
        let f = s
            .fetch(
                t,
                p,
                from,
                FetchOptions {
                    max_partition_fetch_bytes: max,
                    ..FetchOptions::no_wait()
                },
            )
            .await
            .unwrap();
        if from < m.end() {
            assert!(!f.records.is_empty());
        }
        for (r, e) in f.records.iter().zip(&m.recs[(from - m.start) as usize..]) {
            assert_eq!(
                (r.offset, r.timestamp_ms, &r.key, &r.value),
                (e.offset, e.ts, &e.key, &e.value)
            );
        }
        assert!(f.records.len() as u64 <= m.end() - from);
    }
    // out of range on both sides
    assert!(matches!(
        s.fetch(t, p, m.end() + 1, FetchOptions::no_wait()).await,
        Err(Error::OffsetOutOfRange { .. })
    ));
    if m.start > 0 {
        assert!(matches!(
            s.fetch(t, p, m.start - 1, FetchOptions::no_wait()).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
    }
    // seek by time
    let ts = rng.gen_range(-50..1050);
    let want = m.recs.iter().find(|r| r.ts >= ts).map(|r| r.offset);
    assert_eq!(
        s.offsets_for_time(t, p, ts).await.unwrap(),
        want,
        "offsets_for_time({ts})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_operations_match_the_model() {
    let d = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let open = || EmbeddedStream::open(d.path(), opts(clock.clone())).unwrap();
    let mut s: Arc<EmbeddedStream> = open();
    let topics = [
        (
            "size",
            TopicConfig {
                partitions: 2,
                segment_bytes: 1500,
                retention_bytes: 5000,
                retention_ms: -1,
                index_interval_bytes: 200,
                compression_type: Compression::Lz4,
                ..TopicConfig::default()
            },
        ),
        (
            "time",
            TopicConfig {
                partitions: 1,
                segment_bytes: 2500,
                retention_ms: 400,
                index_interval_bytes: 100,
                compression_type: Compression::Zstd,
                ..TopicConfig::default()
            },
        ),
    ];
    let mut model: Vec<Vec<Part>> = Vec::new();
    for (t, c) in &topics {
        s.create_topic(t, c.clone()).await.unwrap();
        model.push((0..c.partitions).map(|_| Part::default()).collect());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut reopens = 0;
    for step in 0..400 {
        let ti = rng.gen_range(0..topics.len());
        let (t, cfg) = &topics[ti];
        let p = rng.gen_range(0..cfg.partitions);
        match rng.gen_range(0..100) {
            0..=59 => {
                let n = rng.gen_range(1..8);
                let now = bongsu_stream::Clock::now_ms(&*clock);
                let recs: Vec<Record> = (0..n)
                    .map(|_| Record {
                        key: rng
                            .gen_bool(0.3)
                            .then(|| Bytes::from(vec![rng.gen::<u8>(); rng.gen_range(0..5)])),
                        value: Bytes::from(
                            (0..rng.gen_range(0..120))
                                .map(|_| rng.gen::<u8>())
                                .collect::<Vec<u8>>(),
                        ),
                        timestamp_ms: now + rng.gen_range(-20..20),
                    })
                    .collect();
                let a = s.append(t, Some(p), recs.clone()).await.unwrap();
                let mp = &mut model[ti][p as usize];
                assert_eq!(a.base_offset, mp.end());
                for (i, r) in recs.into_iter().enumerate() {
                    mp.recs.push(M {
                        offset: a.base_offset + i as u64,
                        ts: r.timestamp_ms,
                        key: r.key,
                        value: r.value,
                    });
                }
            }
            60..=74 => clock.advance(rng.gen_range(0..40)),
            75..=89 => {
                s.run_retention().await.unwrap();
            }
            _ => {
                s.shutdown().await;
                drop(s);
                s = open();
                reopens += 1;
            }
        }
        let now = bongsu_stream::Clock::now_ms(&*clock);
        for (pi, mp) in model[ti].iter_mut().enumerate() {
            // retention runs after every roll and on demand: follow the log start
            let d = s.describe_topic(t).await.unwrap().partitions[pi].clone();
            assert!(d.log_start_offset >= mp.start && d.log_start_offset <= mp.end());
            let dropped = (d.log_start_offset - mp.start) as usize;
            if cfg.retention_ms >= 0 {
                // only records older than retention.ms may go
                assert!(mp.recs[..dropped]
                    .iter()
                    .all(|r| r.ts < now - cfg.retention_ms));
            }
            mp.recs.drain(..dropped);
            mp.start = d.log_start_offset;
            if cfg.retention_bytes >= 0 {
                assert!(d.size_bytes <= cfg.retention_bytes as u64 + cfg.segment_bytes);
            }
        }
        for pi in 0..cfg.partitions {
            check_partition(&*s, t, pi, &model[ti][pi as usize], &mut rng).await;
        }
        let _ = step;
    }
    assert!(reopens > 5);
    assert!(
        model[0].iter().any(|p| p.start > 0),
        "size retention happened"
    );
}
