//! Consumer groups with an injected clock (no sleeps).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bongsu_stream::{
    Assignment, AssignmentStrategy, EmbeddedStream, FetchOptions, JoinGroup, ManualClock,
    MemoryStream, OffsetCommit, Record, Stream, TopicPartition,
};

use crate::common::{opts, topic};

fn join(session_ms: u64, strategy: AssignmentStrategy) -> JoinGroup {
    JoinGroup {
        session_timeout_ms: session_ms,
        strategy,
        ..JoinGroup::new("g", &["t"])
    }
}

/// Consumes every assigned partition from the committed offset to the end; commits if asked.
async fn consume(s: &dyn Stream, a: &Assignment, commit: bool, seen: &mut Vec<String>) {
    let committed: BTreeMap<TopicPartition, u64> = s
        .committed_offsets("g")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.tp, c.offset))
        .collect();
    let mut commits = Vec::new();
    for tp in &a.partitions {
        let from = committed.get(tp).copied().unwrap_or(0);
        let f = s
            .fetch("t", tp.partition, from, FetchOptions::no_wait())
            .await
            .unwrap();
        for r in &f.records {
            seen.push(String::from_utf8(r.value.to_vec()).unwrap());
        }
        commits.push(OffsetCommit {
            tp: tp.clone(),
            offset: f.high_watermark,
        });
    }
    if commit {
        s.commit_offsets("g", &a.member_id, a.generation, commits)
            .await
            .unwrap();
    }
}

async fn dead_member_partitions_move(s: Arc<dyn Stream>, clock: Arc<ManualClock>) {
    s.create_topic("t", topic(6, 1 << 20)).await.unwrap();
    let produce = |n: u32, from: u32| {
        let s = s.clone();
        async move {
            for i in from..from + n {
                s.append("t", Some(i % 6), vec![Record::new(format!("r{i}"), 1)])
                    .await
                    .unwrap();
            }
        }
    };
    produce(60, 0).await;
    let a = s
        .join_group(join(10_000, AssignmentStrategy::Range))
        .await
        .unwrap();
    let b = s
        .join_group(join(10_000, AssignmentStrategy::Range))
        .await
        .unwrap();
    let c = s
        .join_group(join(10_000, AssignmentStrategy::Range))
        .await
        .unwrap();
    let a = s.heartbeat("g", &a.member_id).await.unwrap();
    let b = s.heartbeat("g", &b.member_id).await.unwrap();
    assert_eq!(a.generation, c.generation);
    for m in [&a, &b, &c] {
        assert_eq!(m.partitions.len(), 2, "range: 6 partitions over 3 members");
    }
    let mut seen = Vec::new();
    consume(&*s, &a, true, &mut seen).await;
    consume(&*s, &b, true, &mut seen).await;
    // c reads but dies before committing
    let mut lost_by_c = Vec::new();
    consume(&*s, &c, false, &mut lost_by_c).await;
    produce(60, 60).await;
    // a and b keep heartbeating, c does not
    for _ in 0..3 {
        clock.advance(4_000);
        s.heartbeat("g", &a.member_id).await.unwrap();
        s.heartbeat("g", &b.member_id).await.unwrap();
    }
    // 12 s since c's last heartbeat, over its 10 s session timeout
    let a2 = s.heartbeat("g", &a.member_id).await.unwrap();
    let b2 = s.heartbeat("g", &b.member_id).await.unwrap();
    assert!(a2.generation > a.generation);
    assert_eq!(a2.generation, b2.generation);
    let mut owned: Vec<TopicPartition> = a2
        .partitions
        .iter()
        .chain(&b2.partitions)
        .cloned()
        .collect();
    owned.sort();
    assert_eq!(
        owned,
        (0..6)
            .map(|p| TopicPartition::new("t", p))
            .collect::<Vec<_>>()
    );
    assert!(
        s.heartbeat("g", &c.member_id).await.is_err(),
        "c was dropped"
    );
    let d = s.describe_group("g").await.unwrap();
    assert_eq!(d.members.len(), 2);
    consume(&*s, &a2, true, &mut seen).await;
    consume(&*s, &b2, true, &mut seen).await;
    // nothing lost: every record was delivered to a live member
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), 120);
    // at-least-once: c's uncommitted records were delivered again, nothing else twice
    assert_eq!(seen.len(), 120);
    let d = s.describe_group("g").await.unwrap();
    assert!(d.lag.iter().all(|l| l.lag == 0), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_member_partitions_move_memory() {
    let clock = ManualClock::new(1_000_000);
    let s = MemoryStream::new(opts(clock.clone()));
    dead_member_partitions_move(s, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_member_partitions_move_embedded() {
    let d = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let s = EmbeddedStream::open(d.path(), opts(clock.clone())).unwrap();
    dead_member_partitions_move(s, clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_assignment_over_the_api() {
    let clock = ManualClock::new(0);
    let s = MemoryStream::new(opts(clock));
    s.create_topic("t", topic(5, 1 << 20)).await.unwrap();
    let mut members = Vec::new();
    for id in ["m1", "m2", "m3"] {
        let mut j = join(10_000, AssignmentStrategy::RoundRobin);
        j.member_id = Some(id.to_string());
        members.push(s.join_group(j).await.unwrap());
    }
    let parts = |a: &Assignment| {
        a.partitions
            .iter()
            .map(|tp| tp.partition)
            .collect::<Vec<_>>()
    };
    let m1 = s.heartbeat("g", "m1").await.unwrap();
    let m2 = s.heartbeat("g", "m2").await.unwrap();
    let m3 = s.heartbeat("g", "m3").await.unwrap();
    assert_eq!(parts(&m1), [0, 3]);
    assert_eq!(parts(&m2), [1, 4]);
    assert_eq!(parts(&m3), [2]);
    let d = s.describe_group("g").await.unwrap();
    assert_eq!(d.strategy, AssignmentStrategy::RoundRobin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_generation_commit_after_rebalance_is_refused() {
    let clock = ManualClock::new(0);
    let s = MemoryStream::new(opts(clock));
    s.create_topic("t", topic(2, 1 << 20)).await.unwrap();
    let a = s
        .join_group(join(10_000, AssignmentStrategy::Range))
        .await
        .unwrap();
    let _b = s
        .join_group(join(10_000, AssignmentStrategy::Range))
        .await
        .unwrap();
    let err = s
        .commit_offsets(
            "g",
            &a.member_id,
            a.generation,
            vec![OffsetCommit {
                tp: TopicPartition::new("t", 0),
                offset: 1,
            }],
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stale generation"), "{err}");
    assert!(s.committed_offsets("g").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    {
        let s = EmbeddedStream::open(d.path(), opts(clock.clone())).unwrap();
        s.create_topic("t", topic(2, 1 << 20)).await.unwrap();
        let a = s
            .join_group(join(10_000, AssignmentStrategy::Range))
            .await
            .unwrap();
        for o in 1..=5 {
            s.commit_offsets(
                "g",
                &a.member_id,
                a.generation,
                vec![
                    OffsetCommit {
                        tp: TopicPartition::new("t", 0),
                        offset: o,
                    },
                    OffsetCommit {
                        tp: TopicPartition::new("t", 1),
                        offset: o * 10,
                    },
                ],
            )
            .await
            .unwrap();
        }
    }
    let s = EmbeddedStream::open(d.path(), opts(clock)).unwrap();
    let c = s.committed_offsets("g").await.unwrap();
    assert_eq!(c.iter().map(|c| c.offset).collect::<Vec<_>>(), [5, 50]);
    assert_eq!(s.list_groups().await.unwrap(), ["g"]);
}
