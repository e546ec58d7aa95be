//! The [`Stream`] trait every backend implements, and helpers they share.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::partitioner::partition_for_key;
use crate::types::{
    AppendAck, Assignment, FetchOptions, FetchResult, GroupDescription, JoinGroup, OffsetCommit,
    Record, TopicDescription,
};

/// bongsu's durable partitioned log: topics, partitions, offsets, consumer groups.
///
/// Topics are never created implicitly: appending to or fetching from an unknown topic is
/// [`Error::UnknownTopic`].
#[async_trait]
pub trait Stream: Send + Sync {
    /// Creates a topic with `config.partitions` partitions.
    async fn create_topic(&self, name: &str, config: TopicConfig) -> Result<()>;
    /// Deletes a topic and all its data.
    async fn delete_topic(&self, name: &str) -> Result<()>;
    /// Topic names, sorted.
    async fn list_topics(&self) -> Result<Vec<String>>;
    /// A topic's settings and per-partition offsets and sizes.
    async fn describe_topic(&self, name: &str) -> Result<TopicDescription>;
    /// Appends `records` as one batch. With `partition == None` the partition comes from the
    /// records' key (all keyed records must map to one partition) or, without keys, round robin.
    /// Resolves once the batch is durable under the topic's flush policy.
    async fn append(
        &self,
        topic: &str,
        partition: Option<u32>,
        records: Vec<Record>,
    ) -> Result<AppendAck>;
    /// Records of `partition` from `offset` on (long polling per `opts`).
    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        opts: FetchOptions,
    ) -> Result<FetchResult>;
    /// The earliest offset whose timestamp is `>= ts_ms`; `None` when no record is that new.
    async fn offsets_for_time(
        &self,
        topic: &str,
        partition: u32,
        ts_ms: i64,
    ) -> Result<Option<u64>>;
    /// Joins (or rejoins) a consumer group; returns the member's assignment.
    async fn join_group(&self, req: JoinGroup) -> Result<Assignment>;
    /// Keeps the member alive and returns its current assignment (which changes after a
    /// rebalance: compare `generation`).
    async fn heartbeat(&self, group: &str, member_id: &str) -> Result<Assignment>;
    /// Leaves the group; its partitions move to the other members.
    async fn leave_group(&self, group: &str, member_id: &str) -> Result<()>;
    /// Commits offsets (durably) for a member of the current generation. A member id of `""`
    /// with generation 0 commits for a group without live members (standalone consumer).
    async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
        offsets: Vec<OffsetCommit>,
    ) -> Result<()>;
    /// The group's committed offsets.
    async fn committed_offsets(&self, group: &str) -> Result<Vec<OffsetCommit>>;
    /// Groups with members or committed offsets.
    async fn list_groups(&self) -> Result<Vec<String>>;
    /// Members, assignment and per-partition lag of a group.
    async fn describe_group(&self, group: &str) -> Result<GroupDescription>;
}

/// Refuses a batch in which any record is over `max.message.bytes` (nothing is appended).
pub(crate) fn check_records(topic: &str, cfg: &TopicConfig, records: &[Record]) -> Result<()> {
    if records.is_empty() {
        return Err(Error::InvalidConfig(
            "an append needs at least one record".into(),
        ));
    }
    let limit = cfg.max_message_bytes as usize;
    if let Some(r) = records.iter().find(|r| r.encoded_size() > limit) {
        return Err(Error::RecordTooLarge {
            topic: topic.to_string(),
            size: r.encoded_size(),
            limit,
        });
    }
    Ok(())
}

/// Refuses a commit naming a topic or partition that does not exist (nothing is committed).
pub(crate) fn check_commit_partitions(
    offsets: &[OffsetCommit],
    partition_count: &dyn Fn(&str) -> Option<u32>,
) -> Result<()> {
    for o in offsets {
        let n =
            partition_count(&o.tp.topic).ok_or_else(|| Error::UnknownTopic(o.tp.topic.clone()))?;
        if o.tp.partition >= n {
            return Err(Error::UnknownPartition {
                topic: o.tp.topic.clone(),
                partition: o.tp.partition,
                partitions: n,
            });
        }
    }
    Ok(())
}

/// Picks the partition of an append.
pub(crate) fn choose_partition(
    topic: &str,
    partitions: u32,
    partition: Option<u32>,
    records: &[Record],
    round_robin: &AtomicU32,
) -> Result<u32> {
    if let Some(p) = partition {
        if p >= partitions {
            return Err(Error::UnknownPartition {
                topic: topic.to_string(),
                partition: p,
                partitions,
            });
        }
        return Ok(p);
    }
    let mut chosen: Option<u32> = None;
    for r in records {
        if let Some(k) = &r.key {
            let p = partition_for_key(k, partitions);
            match chosen {
                None => chosen = Some(p),
                Some(c) if c != p => {
                    return Err(Error::InvalidConfig(
                        "the records of one append have keys of different partitions: pass a partition or use Producer, which groups records by partition".into(),
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(chosen.unwrap_or_else(|| round_robin.fetch_add(1, Ordering::Relaxed) % partitions))
}

/// Long polling: calls `read` until it returns at least `fetch_min_bytes` of records or
/// `fetch_max_wait_ms` passes, waking up whenever the partition's high watermark moves.
pub(crate) async fn long_poll<F, Fut>(
    hwm: &watch::Sender<u64>,
    opts: FetchOptions,
    mut read: F,
) -> Result<FetchResult>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<FetchResult>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_millis(opts.fetch_max_wait_ms);
    loop {
        let mut rx = hwm.subscribe();
        rx.mark_unchanged();
        let res = read().await?;
        let bytes: usize = res
            .records
            .iter()
            .map(|r| 1 + r.value.len() + r.key.as_ref().map_or(0, |k| k.len()))
            .sum();
        if bytes >= opts.fetch_min_bytes || tokio::time::Instant::now() >= deadline {
            return Ok(res);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return Err(Error::Shutdown),
            Err(_) => return read().await,
        }
    }
}
