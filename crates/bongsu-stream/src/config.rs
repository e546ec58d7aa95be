//! Topic settings (Kafka's names and meanings), stream-wide options and the clock.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{io_err, Error, Result};

/// `compression.type`: how batch bodies are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4 block format (`lz4_flex`).
    Lz4,
    /// Zstandard, level 1.
    #[default]
    Zstd,
}

impl Compression {
    pub(crate) fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The Kafka name: `none`, `lz4` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" | "uncompressed" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(Error::InvalidConfig(format!(
                "compression.type {other:?} is not supported: use zstd, lz4 or none"
            ))),
        }
    }
}

/// A topic's settings. Field names serialize to Kafka's dotted names.
///
/// `-1` means "unlimited" for `retention.ms` and `retention.bytes`, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicConfig {
    /// `partitions`: number of partitions (fixed at creation).
    pub partitions: u32,
    /// `retention.ms`: closed segments whose newest record is older than this are deleted.
    #[serde(rename = "retention.ms")]
    pub retention_ms: i64,
    /// `retention.bytes`: per partition, oldest closed segments are deleted while the
    /// partition is larger than this.
    #[serde(rename = "retention.bytes")]
    pub retention_bytes: i64,
    /// `segment.bytes`: the active segment rolls once it would grow past this.
    #[serde(rename = "segment.bytes")]
    pub segment_bytes: u64,
    /// `segment.ms`: the active segment rolls once it is this old (and not empty).
    #[serde(rename = "segment.ms")]
    pub segment_ms: i64,
    /// `flush.ms`: fsync at least this often; `0` means fsync before every acknowledgement.
    #[serde(rename = "flush.ms")]
    pub flush_ms: i64,
    /// `flush.messages`: fsync once this many records are unflushed; `1` means fsync before
    /// every acknowledgement.
    #[serde(rename = "flush.messages")]
    pub flush_messages: i64,
    /// `compression.type`.
    #[serde(rename = "compression.type")]
    pub compression_type: Compression,
    /// `max.message.bytes`: largest accepted record (key + value + 32 bytes of overhead).
    #[serde(rename = "max.message.bytes")]
    pub max_message_bytes: u32,
    /// `index.interval.bytes`: one offset/time index entry per this many bytes of log.
    #[serde(rename = "index.interval.bytes")]
    pub index_interval_bytes: u32,
}

/// Per-record overhead counted against `max.message.bytes`.
pub(crate) const RECORD_OVERHEAD: usize = 32;

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            partitions: default_partitions(),
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            flush_ms: i64::MAX,
            flush_messages: 1,
            compression_type: Compression::Zstd,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
        }
    }
}

/// The number of CPU cores (the default partition count).
pub fn default_partitions() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// The setting names accepted by [`TopicConfig::set`], in file order.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "partitions",
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "flush.ms",
    "flush.messages",
    "compression.type",
    "max.message.bytes",
    "index.interval.bytes",
];

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::InvalidConfig(format!("{key}={value:?} is not a valid number")))
}

impl TopicConfig {
    /// Sets one setting by its Kafka name, e.g. `set("retention.ms", "3600000")`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "partitions" => self.partitions = parse_num(key, value)?,
            "retention.ms" => self.retention_ms = parse_num(key, value)?,
            "retention.bytes" => self.retention_bytes = parse_num(key, value)?,
            "segment.bytes" => self.segment_bytes = parse_num(key, value)?,
            "segment.ms" => self.segment_ms = parse_num(key, value)?,
            "flush.ms" => self.flush_ms = parse_num(key, value)?,
            "flush.messages" => self.flush_messages = parse_num(key, value)?,
            "compression.type" => self.compression_type = value.trim().parse()?,
            "max.message.bytes" => self.max_message_bytes = parse_num(key, value)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_num(key, value)?,
            other => {
                return Err(Error::InvalidConfig(format!(
                    "unknown topic setting {other:?}: use one of {}",
                    TOPIC_CONFIG_KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Reads one setting by its Kafka name.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "partitions" => self.partitions.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "compression.type" => self.compression_type.name().to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            _ => return None,
        })
    }

    /// Checks that every setting is usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        if self.partitions == 0 || self.partitions > 10_000 {
            return bad("partitions must be between 1 and 10000");
        }
        if self.segment_bytes < 1024 || self.segment_bytes > u32::MAX as u64 {
            return bad("segment.bytes must be between 1024 and 4294967295");
        }
        if self.segment_ms <= 0 {
            return bad("segment.ms must be positive");
        }
        if self.retention_ms < -1 || self.retention_bytes < -1 {
            return bad("retention.ms and retention.bytes must be -1 (unlimited) or >= 0");
        }
        if self.flush_ms < 0 || self.flush_messages < 1 {
            return bad("flush.ms must be >= 0 and flush.messages >= 1");
        }
        if self.max_message_bytes < 64 {
            return bad("max.message.bytes must be at least 64");
        }
        if self.index_interval_bytes == 0 {
            return bad("index.interval.bytes must be positive");
        }
        Ok(())
    }

    /// True when every append must be fsynced before it is acknowledged.
    pub fn fsync_before_ack(&self) -> bool {
        self.flush_messages <= 1 || self.flush_ms == 0
    }

    fn to_properties(&self) -> String {
        let mut s = String::new();
        for key in TOPIC_CONFIG_KEYS {
            if let Some(v) = self.get(key) {
                s.push_str(key);
                s.push('=');
                s.push_str(&v);
                s.push('\n');
            }
        }
        s
    }
}

/// Topic config file: magic, version, length, `key=value` lines, CRC-32C. See docs/formats/stream.md.
pub(crate) const TOPIC_CONFIG_MAGIC: &[u8; 4] = b"BSTC";
pub(crate) const TOPIC_CONFIG_VERSION: u16 = 1;

pub(crate) fn encode_topic_config(cfg: &TopicConfig) -> Vec<u8> {
    let body = cfg.to_properties();
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(TOPIC_CONFIG_MAGIC);
    out.extend_from_slice(&TOPIC_CONFIG_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body.as_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode_topic_config(path: &Path, buf: &[u8]) -> Result<TopicConfig> {
    let bad = |reason: &str| Error::BadFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if buf.len() < 16 || &buf[0..4] != TOPIC_CONFIG_MAGIC {
        return Err(bad("not a topic config file (bad magic or too short)"));
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    if version != TOPIC_CONFIG_VERSION {
        return Err(bad(&format!("unsupported topic config version {version}")));
    }
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if buf.len() != 12 + len + 4 {
        return Err(bad("length does not match file size"));
    }
    let crc_at = 12 + len;
    let stored = u32::from_le_bytes([
        buf[crc_at],
        buf[crc_at + 1],
        buf[crc_at + 2],
        buf[crc_at + 3],
    ]);
    if crc32c::crc32c(&buf[..crc_at]) != stored {
        return Err(bad("crc mismatch"));
    }
    let text = std::str::from_utf8(&buf[12..crc_at]).map_err(|_| bad("not utf-8"))?;
    let mut cfg = TopicConfig::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| bad("line without '='"))?;
        cfg.set(k, v)?;
    }
    cfg.validate()?;
    Ok(cfg)
}

pub(crate) fn read_topic_config(path: &Path) -> Result<TopicConfig> {
    let buf = std::fs::read(path).map_err(io_err(path))?;
    decode_topic_config(path, &buf)
}

/// Time source in milliseconds since the Unix epoch; injectable for tests.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Current time in ms.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `start_ms`.
    pub fn new(start_ms: i64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicI64::new(start_ms)))
    }
    /// Moves the clock forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Stream-wide options.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// How often the background retention pass runs (`log.retention.check.interval.ms`);
    /// `0` disables the background pass (call `run_retention` yourself).
    pub retention_check_interval_ms: u64,
    /// Bound of each partition writer's queue, in appends.
    pub writer_queue_depth: usize,
    /// Time source for retention, segment age, flush timing and group sessions.
    pub clock: Arc<dyn Clock>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            retention_check_interval_ms: 300_000,
            writer_queue_depth: 1024,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Checks a topic name: 1..=249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn validate_topic_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "topic name {name:?} is invalid: use 1-249 characters of a-z, A-Z, 0-9, '.', '_', '-'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_config_file_round_trips_and_detects_corruption() {
        let mut cfg = TopicConfig::default();
        cfg.set("retention.bytes", "12345").unwrap();
        cfg.set("compression.type", "lz4").unwrap();
        let buf = encode_topic_config(&cfg);
        let p = Path::new("x");
        assert_eq!(decode_topic_config(p, &buf).unwrap(), cfg);
        let mut bad = buf.clone();
        bad[14] ^= 1;
        assert!(decode_topic_config(p, &bad).is_err());
        assert!(decode_topic_config(p, &buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn unknown_setting_is_refused() {
        let mut cfg = TopicConfig::default();
        let err = cfg.set("retention.minutes", "1").unwrap_err().to_string();
        assert!(err.contains("unknown topic setting"), "{err}");
    }
}
