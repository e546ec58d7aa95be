//! bongsu's durable partitioned log — Kafka's model, embedded.
//!
//! - [`Stream`]: the small, object-safe trait the rest of bongsu codes against: topics,
//!   append, fetch (long polling), offsets by time, consumer groups and committed offsets.
//! - [`EmbeddedStream`]: the on-disk log (segments of CRC'd, compressed batches with sparse
//!   offset and time indexes, group commit, recovery, retention, a data dir lock).
//! - [`MemoryStream`]: the same semantics in memory.
//! - [`Producer`]: client-side batching (`batch.size`, `linger.ms`) over any stream.
//!
//! The stream never interprets payloads. Topics are never created implicitly.
//! File formats are described byte by byte in docs/formats/stream.md.

mod batch;
mod config;
mod embedded;
mod error;
mod groups;
mod index;
mod log;
mod memory;
mod metrics;
mod partitioner;
mod producer;
mod stream;
mod types;
mod writer;

#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use batch::{decode_batch, encode_batch};
pub use config::{
    default_partitions, Clock, Compression, ManualClock, StreamOptions, SystemClock, TopicConfig,
    TOPIC_CONFIG_KEYS,
};
pub use embedded::EmbeddedStream;
pub use error::{Error, Result};
pub use memory::MemoryStream;
pub use metrics::StreamMetrics;
pub use partitioner::{murmur2, partition_for_key};
pub use producer::{Delivery, Producer, ProducerConfig};
pub use stream::Stream;
pub use types::{
    AppendAck, Assignment, AssignmentStrategy, FetchOptions, FetchResult, GroupDescription,
    JoinGroup, MemberDescription, OffsetCommit, PartitionDescription, PartitionLag, Record,
    StoredRecord, TopicDescription, TopicPartition,
};
