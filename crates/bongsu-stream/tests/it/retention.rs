//! Retention by size and time, segment rolling by size and age.

use bongsu_stream::{
    Compression, EmbeddedStream, Error, FetchOptions, ManualClock, MemoryStream, Record, Stream,
    TopicConfig,
};
use bytes::Bytes;

use crate::common::{log_bytes, opts, segments};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_use_stays_within_retention_bytes_plus_one_segment() {
    let d = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000);
    let s = EmbeddedStream::open(d.path(), opts(clock.clone())).unwrap();
    let cfg = TopicConfig {
        partitions: 2,
        segment_bytes: 4096,
        retention_bytes: 16_384,
        retention_ms: -1,
        compression_type: Compression::None,
        ..TopicConfig::default()
    };
    s.create_topic("t", cfg.clone()).await.unwrap();
    for i in 0..600u32 {
        let recs = (0..3)
            .map(|j| {
                Record::new(
                    Bytes::from(vec![b'a' + (j as u8); 50 + (i % 40) as usize]),
                    1,
                )
            })
            .collect();
        s.append("t", Some(i % 2), recs).await.unwrap();
        for p in 0..2 {
            let used = log_bytes(&d.path().join(format!("topics/t/{p}")));
            assert!(
                used <= cfg.retention_bytes as u64 + cfg.segment_bytes,
                "partition {p} uses {used} bytes after append {i}"
            );
        }
    }
    let desc = s.describe_topic("t").await.unwrap();
    for p in &desc.partitions {
        assert!(p.log_start_offset > 0, "old segments were deleted");
        assert_eq!(p.high_watermark, 900);
        // what is retained is readable from the log start on
        let f = s
            .fetch(
                "t",
                p.partition,
                p.log_start_offset,
                FetchOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(f.records[0].offset, p.log_start_offset);
        match s.fetch("t", p.partition, 0, FetchOptions::no_wait()).await {
            Err(Error::OffsetOutOfRange { log_start, .. }) => {
                assert_eq!(log_start, p.log_start_offset)
            }
            other => panic!("expected OffsetOutOfRange, got {other:?}"),
        }
    }
    assert!(s.metrics().segments_deleted > 0);
}

async fn time_retention(s: &dyn Stream, clock: &ManualClock, run: &dyn Fn()) {
    let cfg = TopicConfig {
        partitions: 1,
        segment_ms: 60_000,
        retention_ms: 3_600_000,
        ..TopicConfig::default()
    };
    s.create_topic("t", cfg).await.unwrap();
    // one segment per simulated minute, 10 minutes
    for _minute in 0..10 {
        for _ in 0..5 {
            s.append("t", Some(0), vec![Record::new("x", clock.now())])
                .await
                .unwrap();
        }
        clock.advance(60_000);
    }
    s.append("t", Some(0), vec![Record::new("new", clock.now())])
        .await
        .unwrap();
    let before = s.describe_topic("t").await.unwrap().partitions[0].clone();
    assert!(before.segments >= 10, "rolled by segment.ms: {before:?}");
    run();
    assert_eq!(
        s.describe_topic("t").await.unwrap().partitions[0].log_start_offset,
        0,
        "nothing old yet"
    );
    // 1 h later the first segments (newest record older than 1 h) go
    clock.advance(3_600_000 - 10 * 60_000 + 3 * 60_000);
    run();
    let after = s.describe_topic("t").await.unwrap().partitions[0].clone();
    assert_eq!(
        after.log_start_offset, 15,
        "three minutes of segments deleted: {after:?}"
    );
    let f = s.fetch("t", 0, 15, FetchOptions::no_wait()).await.unwrap();
    assert_eq!(f.records.len(), 36);
}

trait ClockExt {
    fn now(&self) -> i64;
}
impl ClockExt for ManualClock {
    fn now(&self) -> i64 {
        bongsu_stream::Clock::now_ms(self)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_retention_embedded() {
    let d = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let s = EmbeddedStream::open(d.path(), opts(clock.clone())).unwrap();
    let s2 = s.clone();
    let rt = tokio::runtime::Handle::current();
    let run = move || {
        let s2 = s2.clone();
        tokio::task::block_in_place(|| rt.block_on(s2.run_retention())).unwrap();
    };
    time_retention(&*s, &clock, &run).await;
    assert!(segments(&d.path().join("topics/t/0"))[0]
        .to_string_lossy()
        .ends_with("00000000000000000015.log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_retention_memory() {
    let clock = ManualClock::new(1_700_000_000_000);
    let s = MemoryStream::new(opts(clock.clone()));
    let s2 = s.clone();
    time_retention(&*s, &clock, &move || {
        s2.run_retention();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_retention_thread_runs() {
    let d = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000_000);
    let mut o = opts(clock.clone());
    o.retention_check_interval_ms = 5;
    let s = EmbeddedStream::open(d.path(), o).unwrap();
    let cfg = TopicConfig {
        partitions: 1,
        segment_bytes: 1024,
        retention_ms: 1000,
        ..TopicConfig::default()
    };
    s.create_topic("t", cfg).await.unwrap();
    for _ in 0..50 {
        s.append(
            "t",
            Some(0),
            vec![Record::new(vec![7u8; 100], 1_000_000_000)],
        )
        .await
        .unwrap();
    }
    clock.advance(10_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let d = s.describe_topic("t").await.unwrap();
        if d.partitions[0].segments == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention thread did not run: {d:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
