//! Values passed through the [`Stream`](crate::Stream) trait.

use bytes::Bytes;

use crate::config::TopicConfig;

/// A record to append: optional key, value, timestamp in ms since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key; records with the same key go to the same partition.
    pub key: Option<Bytes>,
    /// Payload; the stream never interprets it.
    pub value: Bytes,
    /// Producer timestamp (ms).
    pub timestamp_ms: i64,
}

impl Record {
    /// A record without key.
    pub fn new(value: impl Into<Bytes>, timestamp_ms: i64) -> Self {
        Record {
            key: None,
            value: value.into(),
            timestamp_ms,
        }
    }

    /// A record with a key.
    pub fn with_key(key: impl Into<Bytes>, value: impl Into<Bytes>, timestamp_ms: i64) -> Self {
        Record {
            key: Some(key.into()),
            value: value.into(),
            timestamp_ms,
        }
    }

    /// Size counted against `max.message.bytes` and `batch.size`.
    pub fn encoded_size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len()) + self.value.len() + crate::config::RECORD_OVERHEAD
    }
}

/// A record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its offset in the partition.
    pub offset: u64,
    /// Producer timestamp (ms).
    pub timestamp_ms: i64,
    /// Key, if any.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Bytes,
}

/// Acknowledgement of one appended batch (durable under the topic's flush policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    /// Partition written.
    pub partition: u32,
    /// Offset of the first record.
    pub base_offset: u64,
    /// Number of records.
    pub count: u32,
}

/// Consumer fetch settings (Kafka's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// `max.partition.fetch.bytes`: stop adding batches past this many bytes (at least one
    /// batch is always returned so that a large batch cannot stall a consumer).
    pub max_partition_fetch_bytes: usize,
    /// `fetch.min.bytes`: wait for at least this many bytes (up to `fetch_max_wait_ms`).
    pub fetch_min_bytes: usize,
    /// `fetch.max.wait.ms`: longest wait for `fetch_min_bytes`.
    pub fetch_max_wait_ms: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            max_partition_fetch_bytes: 1 << 20,
            fetch_min_bytes: 1,
            fetch_max_wait_ms: 500,
        }
    }
}

impl FetchOptions {
    /// Returns immediately, whatever is there.
    pub fn no_wait() -> Self {
        FetchOptions {
            fetch_min_bytes: 0,
            fetch_max_wait_ms: 0,
            ..Default::default()
        }
    }
}

/// Records fetched from one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchResult {
    /// Records from the requested offset on, in offset order.
    pub records: Vec<StoredRecord>,
    /// Next offset to be written (the end of the log).
    pub high_watermark: u64,
    /// First retained offset.
    pub log_start_offset: u64,
}

/// One partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// First retained offset.
    pub log_start_offset: u64,
    /// Next offset to be written.
    pub high_watermark: u64,
    /// Bytes of log on disk (or in memory).
    pub size_bytes: u64,
    /// Number of segments.
    pub segments: u32,
}

/// A topic's configuration and partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its settings.
    pub config: TopicConfig,
    /// One entry per partition, in partition order.
    pub partitions: Vec<PartitionDescription>,
}

/// A (topic, partition) pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// Builds a pair.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// `partition.assignment.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssignmentStrategy {
    /// Kafka's `range`: per topic, consecutive partitions split among members in member-id
    /// order; the first `partitions % members` members get one more.
    #[default]
    Range,
    /// Kafka's `roundrobin`: all subscribed (topic, partition) pairs in order, dealt to the
    /// members in member-id order, skipping members not subscribed to the topic.
    RoundRobin,
}

impl AssignmentStrategy {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
        }
    }
}

/// A member's request to join a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinGroup {
    /// Group id.
    pub group: String,
    /// Member id to rejoin with; `None` for a new member (an id is generated).
    pub member_id: Option<String>,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// `session.timeout.ms`: the member is dropped when it has not heartbeated for this long.
    pub session_timeout_ms: u64,
    /// Assignment strategy; the group uses the one of its first member.
    pub strategy: AssignmentStrategy,
}

impl JoinGroup {
    /// A new member with default session timeout (45 s) and range assignment.
    pub fn new(group: impl Into<String>, topics: &[&str]) -> Self {
        JoinGroup {
            group: group.into(),
            member_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: 45_000,
            strategy: AssignmentStrategy::Range,
        }
    }
}

/// What a member owns in the current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The member's id (keep it for heartbeats and commits).
    pub member_id: String,
    /// The group's generation; a commit must carry it.
    pub generation: u32,
    /// Partitions the member owns, sorted.
    pub partitions: Vec<TopicPartition>,
}

/// An offset to commit: the next offset the group should read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// Topic and partition.
    pub tp: TopicPartition,
    /// Next offset to consume.
    pub offset: u64,
}

/// A group member as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Owned partitions.
    pub partitions: Vec<TopicPartition>,
}

/// Committed offset and lag of one partition for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic and partition.
    pub tp: TopicPartition,
    /// Committed offset, if any.
    pub committed: Option<u64>,
    /// End of the partition.
    pub high_watermark: u64,
    /// `high_watermark - committed` (or `high_watermark - log_start` when nothing is committed).
    pub lag: u64,
}

/// A consumer group's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// Current generation.
    pub generation: u32,
    /// Assignment strategy in use.
    pub strategy: AssignmentStrategy,
    /// Live members.
    pub members: Vec<MemberDescription>,
    /// Per-partition committed offsets and lag, for every partition of every subscribed or
    /// committed topic.
    pub lag: Vec<PartitionLag>,
}
