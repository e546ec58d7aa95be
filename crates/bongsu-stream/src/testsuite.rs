//! Conformance suite for [`Stream`] implementations.
//!
//! Each function takes a factory returning a fresh, empty stream and panics on a violation.
//! Run [`run_all`] (or single functions) from an implementation's tests; the embedded log,
//! the memory stream and later the Kafka backend all pass the same suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use crate::{
    Error, FetchOptions, JoinGroup, OffsetCommit, Record, Stream, TopicConfig, TopicPartition,
};

/// Makes a fresh, empty stream.
pub type Factory<'a> = &'a (dyn Fn() -> Arc<dyn Stream> + Sync);

fn cfg(partitions: u32) -> TopicConfig {
    TopicConfig {
        partitions,
        ..TopicConfig::default()
    }
}

fn rec(v: &str, ts: i64) -> Record {
    Record::new(Bytes::from(v.to_string()), ts)
}

fn values(r: &[crate::StoredRecord]) -> Vec<String> {
    r.iter()
        .map(|r| String::from_utf8_lossy(&r.value).to_string())
        .collect()
}

/// Runs every test of the suite.
pub async fn run_all(factory: Factory<'_>) {
    topics_lifecycle(factory).await;
    append_and_fetch(factory).await;
    fetch_from_inside_a_batch(factory).await;
    out_of_range(factory).await;
    keys_choose_partitions(factory).await;
    oversized_record_is_refused(factory).await;
    fetch_bytes_limit(factory).await;
    long_poll_wakes_on_append(factory).await;
    offsets_for_time(factory).await;
    compression_codecs(factory).await;
    group_assignment_and_commits(factory).await;
    group_clean_handoff_delivers_once(factory).await;
}

/// Create, list, describe, delete; no auto-creation; bad names and duplicates refused.
pub async fn topics_lifecycle(factory: Factory<'_>) {
    let s = factory();
    assert!(s.list_topics().await.unwrap().is_empty());
    s.create_topic("metrics", cfg(3)).await.unwrap();
    s.create_topic("logs", cfg(1)).await.unwrap();
    assert!(matches!(
        s.create_topic("logs", cfg(1)).await,
        Err(Error::TopicExists(_))
    ));
    assert!(s.create_topic("bad/name", cfg(1)).await.is_err());
    assert_eq!(s.list_topics().await.unwrap(), ["logs", "metrics"]);
    let d = s.describe_topic("metrics").await.unwrap();
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(d.config.partitions, 3);
    assert!(d
        .partitions
        .iter()
        .all(|p| p.high_watermark == 0 && p.log_start_offset == 0));
    // no auto-create
    assert!(matches!(
        s.append("nope", None, vec![rec("x", 1)]).await,
        Err(Error::UnknownTopic(_))
    ));
    assert!(matches!(
        s.fetch("nope", 0, 0, FetchOptions::no_wait()).await,
        Err(Error::UnknownTopic(_))
    ));
    assert!(s.list_topics().await.unwrap().len() == 2);
    s.delete_topic("logs").await.unwrap();
    assert_eq!(s.list_topics().await.unwrap(), ["metrics"]);
    assert!(matches!(
        s.delete_topic("logs").await,
        Err(Error::UnknownTopic(_))
    ));
    // a topic created again after deletion starts empty
    s.append("metrics", Some(0), vec![rec("a", 1)])
        .await
        .unwrap();
    s.delete_topic("metrics").await.unwrap();
    s.create_topic("metrics", cfg(1)).await.unwrap();
    let d = s.describe_topic("metrics").await.unwrap();
    assert_eq!(d.partitions[0].high_watermark, 0);
}

/// Appends get dense offsets; fetch returns them in order, byte for byte.
pub async fn append_and_fetch(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(2)).await.unwrap();
    let a = s
        .append("t", Some(1), vec![rec("a", 10), rec("b", 11)])
        .await
        .unwrap();
    assert_eq!((a.partition, a.base_offset, a.count), (1, 0, 2));
    let mut with_key = Record::with_key("k", "c", 12);
    with_key.value = Bytes::from_static(b"c\0\xffbinary");
    let b = s
        .append("t", Some(1), vec![with_key.clone()])
        .await
        .unwrap();
    assert_eq!(b.base_offset, 2);
    let f = s.fetch("t", 1, 0, FetchOptions::no_wait()).await.unwrap();
    assert_eq!(f.high_watermark, 3);
    assert_eq!(f.log_start_offset, 0);
    assert_eq!(f.records.len(), 3);
    assert_eq!(
        f.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(f.records[0].value, "a");
    assert_eq!(f.records[0].timestamp_ms, 10);
    assert_eq!(f.records[0].key, None);
    assert_eq!(f.records[2].key, with_key.key);
    assert_eq!(f.records[2].value, with_key.value);
    let other = s.fetch("t", 0, 0, FetchOptions::no_wait()).await.unwrap();
    assert!(other.records.is_empty());
    assert_eq!(other.high_watermark, 0);
    // fetch at the end: empty, not an error
    let end = s.fetch("t", 1, 3, FetchOptions::no_wait()).await.unwrap();
    assert!(end.records.is_empty());
    assert!(matches!(
        s.fetch("t", 7, 0, FetchOptions::no_wait()).await,
        Err(Error::UnknownPartition { .. })
    ));
}

/// A fetch that starts inside a batch returns records from exactly that offset on.
pub async fn fetch_from_inside_a_batch(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(1)).await.unwrap();
    let recs: Vec<Record> = (0..10).map(|i| rec(&format!("v{i}"), i)).collect();
    s.append("t", Some(0), recs).await.unwrap();
    for from in 0..=10u64 {
        let f = s
            .fetch("t", 0, from, FetchOptions::no_wait())
            .await
            .unwrap();
        let want: Vec<String> = (from..10).map(|i| format!("v{i}")).collect();
        assert_eq!(values(&f.records), want, "fetch from {from}");
        assert!(f.records.iter().zip(from..).all(|(r, o)| r.offset == o));
    }
}

/// Offsets outside `[log start, end]` are OffsetOutOfRange.
pub async fn out_of_range(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(1)).await.unwrap();
    s.append("t", Some(0), vec![rec("a", 1)]).await.unwrap();
    match s.fetch("t", 0, 2, FetchOptions::no_wait()).await {
        Err(Error::OffsetOutOfRange {
            offset,
            high_watermark,
            ..
        }) => assert_eq!((offset, high_watermark), (2, 1)),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

/// Same key, same partition; explicit partitions are honoured and checked.
pub async fn keys_choose_partitions(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(4)).await.unwrap();
    let mut seen = BTreeSet::new();
    for i in 0..20 {
        let key = format!("host-{}", i % 5);
        let a = s
            .append("t", None, vec![Record::with_key(key.clone(), "v", 1)])
            .await
            .unwrap();
        assert_eq!(a.partition, crate::partition_for_key(key.as_bytes(), 4));
        seen.insert(a.partition);
    }
    assert!(seen.len() > 1, "keys should spread over partitions");
    assert!(matches!(
        s.append("t", Some(4), vec![rec("x", 1)]).await,
        Err(Error::UnknownPartition { .. })
    ));
    // unkeyed appends spread round robin
    let mut parts = BTreeSet::new();
    for _ in 0..8 {
        parts.insert(
            s.append("t", None, vec![rec("x", 1)])
                .await
                .unwrap()
                .partition,
        );
    }
    assert_eq!(parts.len(), 4);
}

/// A record over max.message.bytes is refused and nothing of its batch is appended.
pub async fn oversized_record_is_refused(factory: Factory<'_>) {
    let s = factory();
    let c = TopicConfig {
        partitions: 1,
        max_message_bytes: 1000,
        ..TopicConfig::default()
    };
    s.create_topic("t", c).await.unwrap();
    let big = Record::new(Bytes::from(vec![b'x'; 2000]), 1);
    let err = s
        .append("t", Some(0), vec![rec("ok", 1), big])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::RecordTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("max.message.bytes"));
    let d = s.describe_topic("t").await.unwrap();
    assert_eq!(d.partitions[0].high_watermark, 0);
}

/// max.partition.fetch.bytes bounds a fetch, but at least one batch is returned.
pub async fn fetch_bytes_limit(factory: Factory<'_>) {
    let s = factory();
    s.create_topic(
        "t",
        TopicConfig {
            partitions: 1,
            compression_type: crate::Compression::None,
            ..TopicConfig::default()
        },
    )
    .await
    .unwrap();
    for b in 0..10 {
        let recs: Vec<Record> = (0..10)
            .map(|i| Record::new(Bytes::from(vec![b as u8; 100 + i]), 1))
            .collect();
        s.append("t", Some(0), recs).await.unwrap();
    }
    let opts = FetchOptions {
        max_partition_fetch_bytes: 1,
        ..FetchOptions::no_wait()
    };
    let f = s.fetch("t", 0, 0, opts).await.unwrap();
    assert_eq!(f.records.len(), 10, "exactly one batch");
    let opts = FetchOptions {
        max_partition_fetch_bytes: 3000,
        ..FetchOptions::no_wait()
    };
    let f = s.fetch("t", 0, 5, opts).await.unwrap();
    assert!(f.records.len() < 100 && f.records.len() >= 5);
    assert_eq!(f.records[0].offset, 5);
    let all = s.fetch("t", 0, 0, FetchOptions::default()).await.unwrap();
    assert_eq!(all.records.len(), 100);
}

/// A fetch at the end waits for data (fetch.min.bytes / fetch.max.wait.ms).
pub async fn long_poll_wakes_on_append(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(1)).await.unwrap();
    // nothing arrives: the wait expires with an empty result
    let opts = FetchOptions {
        fetch_max_wait_ms: 20,
        ..FetchOptions::default()
    };
    assert!(s.fetch("t", 0, 0, opts).await.unwrap().records.is_empty());
    // data arrives while the fetch waits
    let s2 = s.clone();
    let waiting = tokio::spawn(async move {
        s2.fetch(
            "t",
            0,
            0,
            FetchOptions {
                fetch_max_wait_ms: 60_000,
                ..FetchOptions::default()
            },
        )
        .await
    });
    tokio::task::yield_now().await;
    s.append("t", Some(0), vec![rec("wake", 1)]).await.unwrap();
    let f = tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .expect("long poll must wake up when data arrives")
        .unwrap()
        .unwrap();
    assert_eq!(values(&f.records), ["wake"]);
}

/// offsets_for_time: earliest offset with timestamp >= target.
pub async fn offsets_for_time(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(1)).await.unwrap();
    s.append(
        "t",
        Some(0),
        vec![rec("a", 100), rec("b", 200), rec("c", 300)],
    )
    .await
    .unwrap();
    s.append("t", Some(0), vec![rec("d", 250), rec("e", 400)])
        .await
        .unwrap();
    assert_eq!(s.offsets_for_time("t", 0, 0).await.unwrap(), Some(0));
    assert_eq!(s.offsets_for_time("t", 0, 100).await.unwrap(), Some(0));
    assert_eq!(s.offsets_for_time("t", 0, 150).await.unwrap(), Some(1));
    assert_eq!(s.offsets_for_time("t", 0, 301).await.unwrap(), Some(4));
    assert_eq!(s.offsets_for_time("t", 0, 400).await.unwrap(), Some(4));
    assert_eq!(s.offsets_for_time("t", 0, 401).await.unwrap(), None);
}

/// Every codec stores and returns the same bytes.
pub async fn compression_codecs(factory: Factory<'_>) {
    let s = factory();
    for (name, c) in [
        ("none", crate::Compression::None),
        ("lz4", crate::Compression::Lz4),
        ("zstd", crate::Compression::Zstd),
    ] {
        s.create_topic(
            name,
            TopicConfig {
                partitions: 1,
                compression_type: c,
                ..TopicConfig::default()
            },
        )
        .await
        .unwrap();
        let recs: Vec<Record> = (0..50)
            .map(|i| {
                Record::with_key(
                    format!("k{i}"),
                    format!("value {i} {}", "x".repeat(i)),
                    i as i64,
                )
            })
            .collect();
        s.append(name, Some(0), recs.clone()).await.unwrap();
        let f = s.fetch(name, 0, 0, FetchOptions::no_wait()).await.unwrap();
        assert_eq!(f.records.len(), 50);
        for (a, b) in f.records.iter().zip(&recs) {
            assert_eq!(
                (&a.key, &a.value, a.timestamp_ms),
                (&b.key, &b.value, b.timestamp_ms)
            );
        }
    }
}

/// Join, assignment cover, rebalance on join and leave, stale generations, commits, lag.
pub async fn group_assignment_and_commits(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(6)).await.unwrap();
    for p in 0..6 {
        s.append("t", Some(p), vec![rec("a", 1), rec("b", 2)])
            .await
            .unwrap();
    }
    let a = s.join_group(JoinGroup::new("g", &["t"])).await.unwrap();
    assert_eq!(a.partitions.len(), 6);
    let b = s.join_group(JoinGroup::new("g", &["t"])).await.unwrap();
    assert!(b.generation > a.generation);
    // a learns the new assignment on its next heartbeat
    let a2 = s.heartbeat("g", &a.member_id).await.unwrap();
    assert_eq!(a2.generation, b.generation);
    let mut all: Vec<TopicPartition> = a2.partitions.clone();
    all.extend(b.partitions.clone());
    all.sort();
    assert_eq!(
        all,
        (0..6)
            .map(|p| TopicPartition::new("t", p))
            .collect::<Vec<_>>()
    );
    assert_eq!(a2.partitions.len(), 3);
    // a commit with the old generation is refused
    let c = |p, o| OffsetCommit {
        tp: TopicPartition::new("t", p),
        offset: o,
    };
    let err = s
        .commit_offsets("g", &a.member_id, a.generation, vec![c(0, 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StaleGeneration { .. }), "{err}");
    s.commit_offsets(
        "g",
        &a.member_id,
        a2.generation,
        vec![c(a2.partitions[0].partition, 1)],
    )
    .await
    .unwrap();
    let committed = s.committed_offsets("g").await.unwrap();
    assert_eq!(committed, vec![c(a2.partitions[0].partition, 1)]);
    let d = s.describe_group("g").await.unwrap();
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.lag.len(), 6);
    let total: u64 = d.lag.iter().map(|l| l.lag).sum();
    assert_eq!(total, 11);
    assert_eq!(s.list_groups().await.unwrap(), ["g"]);
    // leave: the other member takes everything
    s.leave_group("g", &a.member_id).await.unwrap();
    let b2 = s.heartbeat("g", &b.member_id).await.unwrap();
    assert_eq!(b2.partitions.len(), 6);
    assert!(matches!(
        s.heartbeat("g", &a.member_id).await,
        Err(Error::UnknownMember { .. })
    ));
}

/// Commit then leave: the member taking over starts at the committed offset, no record twice.
pub async fn group_clean_handoff_delivers_once(factory: Factory<'_>) {
    let s = factory();
    s.create_topic("t", cfg(2)).await.unwrap();
    for i in 0..20 {
        s.append("t", Some(i % 2), vec![rec(&format!("r{i}"), i as i64)])
            .await
            .unwrap();
    }
    let a = s.join_group(JoinGroup::new("g", &["t"])).await.unwrap();
    let mut seen = Vec::new();
    // a consumes half of each partition and commits
    let mut commits = Vec::new();
    for tp in &a.partitions {
        let f = s
            .fetch("t", tp.partition, 0, FetchOptions::no_wait())
            .await
            .unwrap();
        for r in &f.records[..5] {
            seen.push(values(std::slice::from_ref(r))[0].clone());
        }
        commits.push(OffsetCommit {
            tp: tp.clone(),
            offset: f.records[4].offset + 1,
        });
    }
    s.commit_offsets("g", &a.member_id, a.generation, commits)
        .await
        .unwrap();
    let b = s.join_group(JoinGroup::new("g", &["t"])).await.unwrap();
    s.leave_group("g", &a.member_id).await.unwrap();
    let b = s.heartbeat("g", &b.member_id).await.unwrap();
    assert_eq!(b.partitions.len(), 2);
    let committed = s.committed_offsets("g").await.unwrap();
    for tp in &b.partitions {
        let from = committed
            .iter()
            .find(|c| &c.tp == tp)
            .map(|c| c.offset)
            .unwrap_or(0);
        let f = s
            .fetch("t", tp.partition, from, FetchOptions::no_wait())
            .await
            .unwrap();
        seen.extend(values(&f.records));
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 20, "every record exactly once: {seen:?}");
    assert_eq!(unique.len(), 20);
}
