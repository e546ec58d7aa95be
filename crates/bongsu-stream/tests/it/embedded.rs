//! Embedded-log specifics: lock, persistence, group commit, flush policy, producer, metrics.

use std::sync::Arc;

use bongsu_stream::{
    EmbeddedStream, Error, FetchOptions, JoinGroup, OffsetCommit, Producer, ProducerConfig, Record,
    Stream, StreamOptions, TopicConfig, TopicPartition,
};
use bytes::Bytes;

use crate::common::{open, topic};

#[tokio::test]
async fn second_open_of_a_data_dir_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let err = EmbeddedStream::open(d.path(), StreamOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Locked(_)));
    assert_eq!(
        err.to_string(),
        format!(
            "data dir {} is in use by another bongsu process",
            d.path().display()
        )
    );
    s.shutdown().await;
    // released by shutdown
    let s2 = open(d.path());
    drop(s2);
    // released by drop
    drop(open(d.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_configs_records_and_offsets_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = topic(3, 4096);
    cfg.retention_bytes = 123_456_789;
    cfg.compression_type = bongsu_stream::Compression::Lz4;
    {
        let s = open(d.path());
        s.create_topic("t", cfg.clone()).await.unwrap();
        for i in 0..300u32 {
            s.append(
                "t",
                Some(i % 3),
                vec![Record::new(format!("v{i}"), i as i64)],
            )
            .await
            .unwrap();
        }
        s.commit_offsets(
            "g",
            "",
            0,
            vec![OffsetCommit {
                tp: TopicPartition::new("t", 2),
                offset: 17,
            }],
        )
        .await
        .unwrap();
        // dropped without shutdown
    }
    let s = open(d.path());
    let desc = s.describe_topic("t").await.unwrap();
    assert_eq!(desc.config, cfg);
    for p in 0..3 {
        assert_eq!(desc.partitions[p].high_watermark, 100);
        assert!(desc.partitions[p].segments > 1, "rolled segments");
        let f = s
            .fetch("t", p as u32, 0, FetchOptions::default())
            .await
            .unwrap();
        let want: Vec<String> = (0..100).map(|k| format!("v{}", k * 3 + p)).collect();
        let got: Vec<String> = f
            .records
            .iter()
            .map(|r| String::from_utf8(r.value.to_vec()).unwrap())
            .collect();
        assert_eq!(got, want);
    }
    let c = s.committed_offsets("g").await.unwrap();
    assert_eq!(c[0].offset, 17);
    let g = s.describe_group("g").await.unwrap();
    assert_eq!(g.lag.iter().find(|l| l.tp.partition == 2).unwrap().lag, 83);
    s.delete_topic("t").await.unwrap();
    assert!(!d.path().join("topics/t").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    s.create_topic("t", topic(1, 1 << 30)).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                s.append("t", Some(0), vec![Record::new(format!("{t}-{i}"), 1)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let m = s.metrics();
    assert_eq!(m.batches_appended, 400);
    assert_eq!(m.records_appended, 400);
    assert!(
        m.fsyncs >= 1 && m.fsyncs <= 400,
        "one fsync per group: {m:?}"
    );
    let f = s.fetch("t", 0, 0, FetchOptions::default()).await.unwrap();
    assert_eq!(f.records.len(), 400);
    let m2 = s.metrics();
    assert_eq!(m2.fetches, 1);
    assert!(m2.bytes_out > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_flush_policy_acknowledges_without_fsync_per_append() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let cfg = TopicConfig {
        partitions: 1,
        flush_messages: 1_000_000,
        flush_ms: 3_600_000,
        ..TopicConfig::default()
    };
    s.create_topic("t", cfg).await.unwrap();
    for i in 0..100 {
        s.append("t", Some(0), vec![Record::new(format!("{i}"), 1)])
            .await
            .unwrap();
    }
    assert_eq!(s.metrics().fsyncs, 0);
    s.shutdown().await;
    // shutdown fsynced; the data is there
    let s = open(d.path());
    let f = s.fetch("t", 0, 0, FetchOptions::default()).await.unwrap();
    assert_eq!(f.records.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_ms_fsyncs_in_the_background() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    let cfg = TopicConfig {
        partitions: 1,
        flush_messages: 1_000_000,
        flush_ms: 20,
        ..TopicConfig::default()
    };
    s.create_topic("t", cfg).await.unwrap();
    s.append("t", Some(0), vec![Record::new("x", 1)])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.metrics().fsyncs == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no fsync within flush.ms"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_after_shutdown_fail_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    s.create_topic("t", topic(1, 4096)).await.unwrap();
    s.shutdown().await;
    assert!(matches!(
        s.append("t", Some(0), vec![Record::new("x", 1)]).await,
        Err(Error::Shutdown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_batches_keeps_order_and_routes_keys() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    s.create_topic("t", topic(3, 1 << 20)).await.unwrap();
    let p = Producer::new(
        s.clone() as Arc<dyn Stream>,
        ProducerConfig {
            batch_size: 2048,
            linger_ms: 2,
            ..ProducerConfig::default()
        },
    );
    let mut deliveries = Vec::new();
    for i in 0..1000u32 {
        let key = format!("key-{}", i % 7);
        let r = Record::with_key(key.clone(), Bytes::from(format!("{key}:{i}")), i as i64);
        deliveries.push((key, p.enqueue("t", r).await.unwrap()));
    }
    p.flush().await.unwrap();
    let mut by_key: std::collections::BTreeMap<String, Vec<(u32, u64)>> = Default::default();
    for (k, dl) in deliveries {
        by_key.entry(k).or_default().push(dl.wait().await.unwrap());
    }
    for (k, acks) in &by_key {
        let part = acks[0].0;
        assert!(acks.iter().all(|a| a.0 == part), "key {k} on one partition");
        assert!(acks.windows(2).all(|w| w[0].1 < w[1].1), "key {k} in order");
    }
    let m = s.metrics();
    assert_eq!(m.records_appended, 1000);
    assert!(m.batches_appended < 1000, "records were batched: {m:?}");
    // unknown topic is an error for the sender
    assert!(matches!(
        p.send("nope", Record::new("x", 1)).await,
        Err(Error::UnknownTopic(_))
    ));
    // an oversized record is refused alone; its neighbours are delivered
    let big = p
        .enqueue("t", Record::new(vec![0u8; 2 << 20], 1))
        .await
        .unwrap();
    let small = p.enqueue("t", Record::new("small", 1)).await.unwrap();
    assert!(matches!(
        big.wait().await,
        Err(Error::RecordTooLarge { .. })
    ));
    small.wait().await.unwrap();
    // explicit partitions are honoured and checked
    let to2 = p
        .enqueue_to("t", Some(2), Record::with_key("key-1", "x", 1))
        .await
        .unwrap();
    assert_eq!(to2.wait().await.unwrap().0, 2);
    let bad = p
        .enqueue_to("t", Some(3), Record::new("x", 1))
        .await
        .unwrap();
    assert!(matches!(
        bad.wait().await,
        Err(Error::UnknownPartition { .. })
    ));
    let (part, off) = p.send("t", Record::new("last", 1)).await.unwrap();
    let f = s
        .fetch("t", part, off, FetchOptions::no_wait())
        .await
        .unwrap();
    assert_eq!(f.records[0].value, "last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_refused_for_unknown_topic_and_member() {
    let d = tempfile::tempdir().unwrap();
    let s = open(d.path());
    s.create_topic("t", topic(2, 4096)).await.unwrap();
    let a = s.join_group(JoinGroup::new("g", &["t"])).await.unwrap();
    let c = |t: &str| OffsetCommit {
        tp: TopicPartition::new(t, 0),
        offset: 1,
    };
    assert!(matches!(
        s.commit_offsets("g", &a.member_id, a.generation, vec![c("nope")])
            .await,
        Err(Error::UnknownTopic(_))
    ));
    assert!(matches!(
        s.commit_offsets("g", "stranger", a.generation, vec![c("t")])
            .await,
        Err(Error::UnknownMember { .. })
    ));
    assert!(matches!(
        s.join_group(JoinGroup::new("g", &["nope"])).await,
        Err(Error::UnknownTopic(_))
    ));
}
