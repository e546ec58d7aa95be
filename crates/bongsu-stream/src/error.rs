//! The stream's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topic does not exist (topics are never created implicitly).
    #[error("unknown topic {0:?}: create it first (topics are not auto-created)")]
    UnknownTopic(String),
    /// A topic with this name already exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// The partition number is outside the topic's partitions.
    #[error("topic {topic:?} has {partitions} partitions, partition {partition} does not exist")]
    UnknownPartition {
        /// Topic name.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// Number of partitions of the topic.
        partitions: u32,
    },
    /// A fetch or seek asked for an offset outside `[log_start_offset, high_watermark]`.
    #[error(
        "offset {offset} is out of range for {topic}/{partition} (log start {log_start}, end {high_watermark}): seek to a valid offset"
    )]
    OffsetOutOfRange {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// Requested offset.
        offset: u64,
        /// First offset still retained.
        log_start: u64,
        /// Next offset to be written.
        high_watermark: u64,
    },
    /// A record is larger than the topic's `max.message.bytes`; nothing of its batch was appended.
    #[error(
        "record of {size} bytes exceeds max.message.bytes ({limit}) of topic {topic:?}: shorten it or raise max.message.bytes"
    )]
    RecordTooLarge {
        /// Topic name.
        topic: String,
        /// Encoded size of the record (key + value + overhead).
        size: usize,
        /// The topic's limit.
        limit: usize,
    },
    /// A topic name or setting is not acceptable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A batch failed validation on read: it is never served.
    #[error("corrupt batch in {path} at byte {position} (offset {offset}): {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the batch in the file.
        position: u64,
        /// Offset the reader was looking for.
        offset: u64,
        /// What failed.
        reason: String,
    },
    /// A file on disk (config, offsets, index) is not in the expected format.
    #[error("bad file {path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A batch or record could not be decoded.
    #[error("cannot decode batch: {0}")]
    Decode(String),
    /// Another process holds the data directory.
    #[error("data dir {0} is in use by another bongsu process")]
    Locked(PathBuf),
    /// The consumer group does not exist.
    #[error("unknown consumer group {0:?}")]
    UnknownGroup(String),
    /// The member is not (or no longer) part of the group: rejoin.
    #[error("unknown member {member:?} in group {group:?}: it was removed (left or missed its session timeout), join again")]
    UnknownMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// A commit carried a generation other than the group's current one.
    #[error("stale generation {given} for group {group:?} (current {current}): heartbeat to learn the new assignment, then commit again")]
    StaleGeneration {
        /// Group id.
        group: String,
        /// Generation the member sent.
        given: u32,
        /// The group's current generation.
        current: u32,
    },
    /// The stream was shut down.
    #[error("the stream is shut down")]
    Shutdown,
    /// An I/O error with the file it concerns.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// File or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with the stream's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
